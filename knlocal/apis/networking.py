"""`networking.istio.io/v1` VirtualService: the public API's routes to Knative Services."""

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from knlocal.apis.meta import ObjectMeta, mapping
from knlocal.errors import ManifestError


@dataclass(frozen=True)
class Route:
    """One public-API route: requests matching method and path go to a Knative Service."""

    method: str | None
    path_exact: str | None
    path_prefix: str | None
    service: str

    def matches_path(self, path: str) -> bool:
        """Whether `path` matches this route's URI rule."""
        if self.path_exact is not None:
            return path == self.path_exact
        return self.path_prefix is not None and path.startswith(self.path_prefix)


def parse_routes(meta: ObjectMeta, spec: Mapping[str, Any]) -> Iterator[Route]:
    """The routes of a VirtualService's `spec.http` rules, one per match.

    :raises ManifestError: a rule does not rewrite the authority to a Knative Service's host.
    """
    for index, value in enumerate(spec.get("http") or []):
        path = f"spec.http[{index}]"
        rule = mapping(value, path)
        authority = mapping(rule.get("rewrite"), f"{path}.rewrite").get("authority", "")
        service = str(authority).split(".")[0]
        if not service:
            raise ManifestError(
                f"{meta.where}: {path}.rewrite.authority: expected a Knative Service's host"
                f" (<name>.<namespace>.svc.cluster.local); found {authority!r}"
            )
        for number, match in enumerate(rule.get("match") or [{}]):
            match = mapping(match, f"{path}.match[{number}]")
            uri = mapping(match.get("uri"), f"{path}.match[{number}].uri")
            yield Route(
                method=mapping(match.get("method"), f"{path}.match[{number}].method").get("exact"),
                path_exact=uri.get("exact"),
                path_prefix=uri.get("prefix"),
                service=service,
            )

"""`serving.knative.dev/v1` Service and its revision template (Knative: `pkg/apis/serving/v1`).

The revision template's annotations are carried as written: what the autoscaling annotations
mean, and their ranges, is the autoscaler's (:mod:`knlocal.serving.autoscaler.spec`).
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from knlocal.apis.meta import ObjectMeta, integer, mapping, required, string, string_map
from knlocal.errors import ManifestError

#: The label that keeps a Knative Service off the public ingress: its Route gets only the
#: cluster-local host (knative.dev/networking pkg/apis/networking/register.go, VisibilityLabelKey).
VISIBILITY_LABEL = "networking.knative.dev/visibility"

#: `config-defaults`: container-concurrency-max-limit, revision-timeout-seconds and
#: max-revision-timeout-seconds (knative-semantics.md §1.8, §1.9).
CONTAINER_CONCURRENCY_MAX = 1000
DEFAULT_TIMEOUT_SECONDS = 300
MAX_TIMEOUT_SECONDS = 600


@dataclass(frozen=True)
class Container:
    """One container of a revision template, as the runtime needs it."""

    image: str
    #: `env` as name → value (a `valueFrom` reads as "": no Secrets or ConfigMaps locally).
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RevisionTemplate:
    """`spec.template`: what each revision of the Service runs."""

    #: `spec.template.metadata.annotations`, as written (autoscaling settings live here, §1.3).
    annotations: Mapping[str, str]
    #: `containerConcurrency`: 0 = unlimited, else a hard limit per instance (§1.8).
    container_concurrency: int
    #: `timeoutSeconds`: the cap on a request's whole duration (§1.9).
    timeout_seconds: int
    #: The one serving container (Knative allows sidecars; the local runtime runs one process).
    container: Container


@dataclass(frozen=True)
class KnativeService:
    """A Knative Service (`serving.knative.dev/v1`)."""

    name: str
    namespace: str
    template: RevisionTemplate
    #: Only reachable from inside the cluster (`networking.knative.dev/visibility: cluster-local`).
    cluster_local: bool = False

    @property
    def revision(self) -> str:
        """The revision name Knative gives the first revision: `<name>-00001`."""
        return f"{self.name}-00001"

    @property
    def cluster_host(self) -> str:
        """The Service's cluster-local host name."""
        return f"{self.name}.{self.namespace}.svc.cluster.local"


def parse_service(meta: ObjectMeta, spec: Mapping[str, Any]) -> KnativeService:
    """Read a Knative Service's `spec`, refusing what Knative's webhook refuses.

    :raises ManifestError: naming the file, the Service, the field, what was expected and found.
    """
    where = meta.where
    try:
        template = mapping(required(spec, "template", "spec"), "spec.template")
        template_meta = mapping(template.get("metadata"), "spec.template.metadata")
        template_spec = mapping(required(template, "spec", "spec.template"), "spec.template.spec")
        revision = RevisionTemplate(
            annotations=string_map(
                template_meta.get("annotations"), "spec.template.metadata.annotations"
            ),
            container_concurrency=integer(
                template_spec,
                "containerConcurrency",
                "spec.template.spec",
                0,
                0,
                CONTAINER_CONCURRENCY_MAX,
            ),
            timeout_seconds=integer(
                template_spec,
                "timeoutSeconds",
                "spec.template.spec",
                DEFAULT_TIMEOUT_SECONDS,
                0,
                MAX_TIMEOUT_SECONDS,
            )
            or DEFAULT_TIMEOUT_SECONDS,  # 0 is the default (revision_defaults.go)
            container=_container(template_spec),
        )
    except ManifestError as exc:
        raise ManifestError(f"{where}: {exc}") from None
    return KnativeService(
        name=meta.name,
        namespace=meta.namespace,
        template=revision,
        cluster_local=meta.labels.get(VISIBILITY_LABEL) == "cluster-local",
    )


def _container(template_spec: Mapping[str, Any]) -> Container:
    path = "spec.template.spec.containers"
    containers = required(template_spec, "containers", "spec.template.spec")
    if not isinstance(containers, list) or len(containers) != 1:
        found = len(containers) if isinstance(containers, list) else type(containers).__name__
        raise ManifestError(f"{path}: expected a list of one container; found {found}")
    container = mapping(containers[0], f"{path}[0]")
    env: dict[str, str] = {}
    for index, entry in enumerate(container.get("env") or []):
        entry = mapping(entry, f"{path}[0].env[{index}]")
        name = string(entry, "name", f"{path}[0].env[{index}]")
        if not name:
            raise ManifestError(
                f"{path}[0].env[{index}].name: expected a variable name, found none"
            )
        value = entry.get("value", "")
        env[name] = value if isinstance(value, str) else str(value)
    image = string(container, "image", f"{path}[0]")
    if not image:
        raise ManifestError(f"{path}[0].image: missing required field")
    return Container(image=image, env=env)

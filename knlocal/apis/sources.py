"""`sources.knative.dev/v1` SinkBinding and PingSource (Knative: `pkg/apis/sources/v1`).

What a PingSource's ticks send, and when, is the adapter's (:mod:`knlocal.sources.ping`).
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from knlocal.apis.meta import ObjectMeta, mapping, string, string_map
from knlocal.errors import ManifestError
from knlocal.eventing.delivery import Destination

#: The subject a SinkBinding may bind locally: a Knative Service.
SERVICE_API_VERSION = "serving.knative.dev/v1"


@dataclass(frozen=True)
class SinkBinding:
    """A SinkBinding whose subject is a Knative Service: it gets `K_SINK` from `sink`."""

    name: str
    namespace: str
    #: The Knative Service's name.
    subject: str
    sink: Destination


@dataclass(frozen=True)
class PingSource:
    """A PingSource: a fixed event on a cron schedule."""

    name: str
    namespace: str
    #: The cron expression, without a `CRON_TZ=` prefix.
    schedule: str
    timezone: ZoneInfo | None
    content_type: str | None
    body: bytes
    sink: Destination
    #: `spec.ceOverrides.extensions`.
    extensions: Mapping[str, str] = field(default_factory=dict)

    @property
    def source(self) -> str:
        """The events' `source` (Knative's `v1.PingSourceSource`)."""
        return f"/apis/v1/namespaces/{self.namespace}/pingsources/{self.name}"


def parse_sink_binding(meta: ObjectMeta, spec: Mapping[str, Any]) -> SinkBinding:
    """Read a SinkBinding whose subject is a Knative Service.

    :raises ManifestError: naming the file, the SinkBinding, the field and what was found.
    """
    try:
        subject = mapping(spec.get("subject"), "spec.subject")
        kind = (
            string(subject, "apiVersion", "spec.subject"),
            string(subject, "kind", "spec.subject"),
        )
        if kind != (SERVICE_API_VERSION, "Service"):
            raise ManifestError(
                f"spec.subject: expected a Knative Service ({SERVICE_API_VERSION} Service),"
                f" found {kind[0]} {kind[1]}"
            )
        name = string(subject, "name", "spec.subject")
        if not name:
            raise ManifestError("spec.subject.name: missing required field")
        if spec.get("sink") is None:
            raise ManifestError("spec.sink: missing required field")
        sink = Destination.from_manifest(spec["sink"], field="spec.sink")
    except ManifestError as exc:
        raise ManifestError(f"{meta.where}: {exc}") from None
    return SinkBinding(meta.name, meta.namespace, name, sink)


def parse_ping_source(meta: ObjectMeta, spec: Mapping[str, Any]) -> PingSource:
    """Read a PingSource's spec, refusing what Knative's validation refuses.

    :raises ManifestError: naming the file, the PingSource and the field.
    """
    try:
        schedule, timezone = _schedule(spec)
        data, data_base64 = spec.get("data"), spec.get("dataBase64")
        if data is not None and data_base64 is not None:
            raise ManifestError("expected at most one of spec.data and spec.dataBase64")
        content_type = string(spec, "contentType", "spec") or None
        if data is not None and content_type == "application/json":
            try:
                json.loads(data)
            except (TypeError, json.JSONDecodeError) as exc:
                raise ManifestError(f"spec.data is not JSON ({exc}): {data!r}") from None
        if spec.get("sink") is None:
            raise ManifestError("missing required field 'sink'")
        sink = Destination.from_manifest(spec["sink"], field="spec.sink")
        overrides = mapping(spec.get("ceOverrides"), "spec.ceOverrides")
        extensions = string_map(overrides.get("extensions"), "spec.ceOverrides.extensions")
    except ManifestError as exc:
        raise ManifestError(f"{meta.where}: {exc}") from None
    return PingSource(
        name=meta.name,
        namespace=meta.namespace,
        schedule=schedule,
        timezone=timezone,
        content_type=content_type,
        body=str(data if data is not None else data_base64 or "").encode(),
        sink=sink,
        extensions=extensions,
    )


def _schedule(spec: Mapping[str, Any]) -> tuple[str, ZoneInfo | None]:
    """`spec.schedule` without its `CRON_TZ=` prefix, and the time zone (prefix or timezone)."""
    schedule = str(spec.get("schedule") or "* * * * *")  # Knative's default
    zone_name = spec.get("timezone") or None
    first, _, rest = schedule.partition(" ")
    if first.startswith(("CRON_TZ=", "TZ=")):
        if zone_name:
            raise ManifestError(
                "expected a time zone in spec.timezone or in the schedule, not both;"
                f" found {zone_name!r} and {first!r}"
            )
        zone_name, schedule = first.partition("=")[2], rest.strip()
    timezone = None
    if zone_name:
        try:
            timezone = ZoneInfo(str(zone_name))
        except (ZoneInfoNotFoundError, ValueError):
            raise ManifestError(
                "spec.timezone: expected an IANA time zone (e.g. Europe/Paris);"
                f" found {zone_name!r}"
            ) from None
    five_fields = len(schedule.split()) == 5 or schedule.startswith("@")
    if not five_fields or not croniter.is_valid(schedule):
        raise ManifestError(
            "spec.schedule: expected a cron schedule of 5 fields (e.g. '*/2 * * * *') or a"
            f" descriptor such as @hourly; found {schedule!r}"
        )
    return schedule, timezone

"""PingSource (`sources.knative.dev/v1`): a CloudEvent with a fixed payload, on a cron schedule.

As Knative's multi-tenant ping adapter (eventing `pkg/adapter/mtping/runner.go`) does:

- the schedule is a 5-field cron expression (robfig/cron's standard parser, here croniter),
  optionally prefixed `CRON_TZ=<zone>` (or `TZ=<zone>`); `spec.timezone` is the same as that
  prefix (`AddSchedule`), and without either the runtime's local time zone applies;
- each tick sends one event, binary mode: `type` `dev.knative.sources.ping`, `source`
  `/apis/v1/namespaces/<namespace>/pingsources/<name>`, a new UUID `id`, `time` now,
  `datacontenttype` = `spec.contentType`, the extensions of `spec.ceOverrides` (`makeEvent`);
- the body is `spec.data` as written, or `spec.dataBase64`'s text as written (`makeEvent` passes
  `[]byte(DataBase64)`, it does not decode it); at most one of them;
- each send waits a random 0 to 500 ms first (`cronTick` spreads the ticks), and is retried
  5 times with exponential backoff from 50 ms (`ContextWithRetriesExponentialBackoff`); then
  the tick is given up ("Event is lost"); a later tick is independent.
"""

import asyncio
import json
import logging
import random
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from knlocal.errors import ManifestError
from knlocal.eventing.delivery import Destination
from knlocal.eventing.sender import Target

log = logging.getLogger("knlocal")

#: Knative's `v1.PingSourceEventType`.
EVENT_TYPE = "dev.knative.sources.ping"
#: Retries after the first attempt, and the first backoff (mtping `AddSchedule`).
RETRIES = 5
BACKOFF_SECONDS = 0.05
#: The random wait before each tick's send (mtping `cronTick`).
JITTER_SECONDS = 0.5
#: Statuses the CloudEvents Go SDK's HTTP sender retries (besides transport errors).
RETRIABLE_STATUSES = frozenset({404, 413, 425, 429, 502, 503, 504})
#: Bound on one send (the sdk-go client's default is none; a tick must not block the next).
SEND_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class PingSource:
    """A PingSource, as the runtime needs it."""

    name: str
    namespace: str
    #: The cron expression, without a `CRON_TZ=` prefix.
    schedule: str
    timezone: ZoneInfo | None
    content_type: str | None
    body: bytes
    sink: Destination
    extensions: Mapping[str, str] = field(default_factory=dict)

    @property
    def source(self) -> str:
        """The events' `source` (Knative's `v1.PingSourceSource`)."""
        return f"/apis/v1/namespaces/{self.namespace}/pingsources/{self.name}"

    def next_tick(self, after: datetime) -> datetime:
        """The first scheduled time strictly after `after` (an aware datetime)."""
        start = after.astimezone(self.timezone) if self.timezone else after.astimezone()
        tick: datetime = croniter(self.schedule, start).get_next(datetime)
        return tick

    def event(self, now: datetime) -> tuple[dict[str, str], bytes]:
        """One tick's event in binary mode: its headers and body."""
        headers = {
            "ce-specversion": "1.0",
            "ce-id": str(uuid.uuid4()),
            "ce-source": self.source,
            "ce-type": EVENT_TYPE,
            "ce-time": now.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            **{f"ce-{name}": value for name, value in self.extensions.items()},
        }
        if self.content_type:
            headers["Content-Type"] = self.content_type
        return headers, self.body


def from_manifest(path: Path, name: str, namespace: str, spec: Mapping[str, Any]) -> PingSource:
    """Read a PingSource's spec, refusing what Knative's validation refuses.

    :raises ManifestError: naming the file and the field.
    """
    where = f"{path}: PingSource {namespace}/{name}"
    schedule = str(spec.get("schedule") or "* * * * *")  # Knative's default
    zone_name = spec.get("timezone") or None
    first, _, rest = schedule.partition(" ")
    if first.startswith(("CRON_TZ=", "TZ=")):
        if zone_name:
            raise ManifestError(
                f"{where}: expected a time zone in spec.timezone or in the"
                f" schedule, not both; found {zone_name!r} and {first!r}"
            )
        zone_name, schedule = first.partition("=")[2], rest.strip()
    timezone = None
    if zone_name:
        try:
            timezone = ZoneInfo(str(zone_name))
        except (ZoneInfoNotFoundError, ValueError):
            raise ManifestError(
                f"{where}: expected an IANA time zone (e.g. Europe/Paris); found {zone_name!r}"
            ) from None
    five_fields = len(schedule.split()) == 5 or schedule.startswith("@")
    if not five_fields or not croniter.is_valid(schedule):
        raise ManifestError(
            f"{where}: expected a cron schedule of 5 fields (e.g. '*/2 * * * *') or a descriptor"
            f" such as @hourly; found {schedule!r}"
        )
    data, data_base64 = spec.get("data"), spec.get("dataBase64")
    if data is not None and data_base64 is not None:
        raise ManifestError(f"{where}: expected at most one of spec.data and spec.dataBase64")
    content_type = spec.get("contentType") or None
    if data is not None and content_type == "application/json":
        try:
            json.loads(data)
        except (TypeError, json.JSONDecodeError) as exc:
            raise ManifestError(f"{where}: spec.data is not JSON ({exc}): {data!r}") from None
    if spec.get("sink") is None:
        raise ManifestError(f"{where}: missing required field 'sink'")
    try:
        sink = Destination.from_manifest(spec["sink"], field="spec.sink")
    except ManifestError as exc:
        raise ManifestError(f"{where}: {exc}") from None
    overrides = (spec.get("ceOverrides") or {}).get("extensions") or {}
    return PingSource(
        name=name,
        namespace=namespace,
        schedule=schedule,
        timezone=timezone,
        content_type=content_type,
        body=str(data if data is not None else data_base64 or "").encode(),
        sink=sink,
        extensions={str(k): str(v) for k, v in overrides.items()},
    )


async def send(source: PingSource, target: Target, now: datetime) -> bool:
    """Send one tick's event, with mtping's retries.

    :return: whether the sink acknowledged it (2xx).
    """
    headers, body = source.event(now)
    problem = ""
    for attempt in range(RETRIES + 1):
        if attempt:
            await asyncio.sleep(BACKOFF_SECONDS * 2 ** (attempt - 1))
        reply = await target.send(headers, body, SEND_TIMEOUT_SECONDS)
        if reply.status is not None and 200 <= reply.status < 300:
            return True
        problem = f"HTTP {reply.status}" if reply.status is not None else reply.error
        if reply.status is not None and reply.status not in RETRIABLE_STATUSES:
            break
    log.error(
        "PingSource %s/%s: %s refused the event: %s; this tick is lost",
        source.namespace,
        source.name,
        target.url,
        problem,
    )
    return False


async def run(source: PingSource, target: Target) -> None:
    """Send the events of `source` to `target` at each scheduled time, until cancelled."""
    sending: set[asyncio.Task[bool]] = set()
    try:
        while True:
            tick = source.next_tick(datetime.now(UTC))
            await asyncio.sleep(max(0.0, (tick - datetime.now(UTC)).total_seconds()))
            await asyncio.sleep(random.uniform(0, JITTER_SECONDS))
            # A slow sink must not delay the next tick: each send runs on its own.
            task = asyncio.create_task(send(source, target, tick))
            sending.add(task)
            task.add_done_callback(sending.discard)
    finally:
        for task in sending:
            task.cancel()

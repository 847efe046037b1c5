"""The PingSource adapter: a CloudEvent with a fixed payload, on a cron schedule.

The PingSource itself is read and validated by :mod:`knlocal.apis.sources`. As Knative's
multi-tenant ping adapter (eventing `pkg/adapter/mtping/runner.go`) does:

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
import logging
import random
import uuid
from datetime import UTC, datetime

from croniter import croniter

from knlocal.apis.sources import PingSource
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


def next_tick(source: PingSource, after: datetime) -> datetime:
    """The first scheduled time of `source` strictly after `after` (an aware datetime)."""
    start = after.astimezone(source.timezone) if source.timezone else after.astimezone()
    tick: datetime = croniter(source.schedule, start).get_next(datetime)
    return tick


def make_event(source: PingSource, now: datetime) -> tuple[dict[str, str], bytes]:
    """One tick's event in binary mode: its headers and body (mtping `makeEvent`)."""
    headers = {
        "ce-specversion": "1.0",
        "ce-id": str(uuid.uuid4()),
        "ce-source": source.source,
        "ce-type": EVENT_TYPE,
        "ce-time": now.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        **{f"ce-{name}": value for name, value in source.extensions.items()},
    }
    if source.content_type:
        headers["Content-Type"] = source.content_type
    return headers, source.body


async def send(source: PingSource, target: Target, now: datetime) -> bool:
    """Send one tick's event, with mtping's retries.

    :return: whether the sink acknowledged it (2xx).
    """
    headers, body = make_event(source, now)
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
            tick = next_tick(source, datetime.now(UTC))
            await asyncio.sleep(max(0.0, (tick - datetime.now(UTC)).total_seconds()))
            await asyncio.sleep(random.uniform(0, JITTER_SECONDS))
            # A slow sink must not delay the next tick: each send runs on its own.
            task = asyncio.create_task(send(source, target, tick))
            sending.add(task)
            task.add_done_callback(sending.discard)
    finally:
        for task in sending:
            task.cancel()

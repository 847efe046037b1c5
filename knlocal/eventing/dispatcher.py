"""One dispatcher per Trigger: filter → deliver → reply → retry with backoff → dead-letter → ack.

This is the only place these rules live; every backend gets them. Where Knative's broker classes
disagree (knative-semantics.md §6), the rule of the emulated class applies:

| | MTChannelBasedBroker (Go) | Kafka (Java) |
|---|---|---|
| 2xx with a body that is not a CloudEvent | 502, retried (§2.6) | failed, not retried: DLS |
| default request timeout | none | 600 s (§2.7) |
| loop protection | `knativebrokerttl` (§2.9) | none |
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Protocol

from knlocal.eventing.backends.base import Received, Subscription
from knlocal.eventing.classes import KAFKA_BROKER
from knlocal.eventing.delivery import (
    DeliverySpec,
    backoff_seconds,
    dead_letter_extensions,
    is_retryable,
    is_success,
    total_attempts,
)
from knlocal.eventing.events import (
    BaseCloudEvent,
    InvalidEvent,
    decode_http,
    encode_binary,
    is_cloudevent,
    replace_attributes,
)
from knlocal.eventing.filters import EventFilter, FilterResult

log = logging.getLogger("knlocal.eventing")

#: The loop-protection extension of the MT broker (§2.9).
TTL_EXTENSION = "knativebrokerttl"
#: The Kafka broker's per-request timeout when the delivery spec sets none (§2.7).
KAFKA_DEFAULT_TIMEOUT_SECONDS = 600.0
#: The extension naming the operation an event belongs to (functions/catalog.py): every log
#: line about an event carries it, as the functions' JSON lines do, so that one operation's path
#: can be followed across the runtime and the functions with one grep.
OPERATION_ID_EXTENSION = "operationid"


def _about(event: BaseCloudEvent) -> dict[str, object]:
    """The `extra` of a log line about `event`: its operation id."""
    return {"operationid": event.get_extension(OPERATION_ID_EXTENSION)}


@dataclass(frozen=True)
class Reply:
    """What a destination answered."""

    status: int | None
    headers: Mapping[str, str]
    body: bytes
    #: Transport error or timeout text when `status` is None.
    error: str = ""


class Target(Protocol):
    """A resolved destination (subscriber or dead-letter sink)."""

    #: The URL Knative would report (e.g. in `knativeerrordest`).
    url: str

    async def send(self, headers: Mapping[str, str], body: bytes, timeout: float | None) -> Reply:
        """POST an event; never raise for transport errors, return `Reply(status=None)`."""
        ...


@dataclass
class TriggerStats:
    """Counters a status view and /metrics show."""

    received: int = 0
    filtered_out: int = 0
    delivered: int = 0
    retried: int = 0
    dead_lettered: int = 0
    dropped: int = 0
    in_flight: int = 0


class TriggerDispatcher:
    """Delivers a consumer group's events to a Trigger's subscriber.

    :param name: `<namespace>/<trigger>`, for logs.
    :param namespace: the Trigger's namespace (sent as `Kn-Namespace`, §2.5).
    :param broker_class: the emulated class; selects the rules where classes disagree.
    :param event_filter: the Trigger's filter.
    :param delivery: the effective delivery spec (Trigger's merged with the Broker's).
    :param subscriber: where events go.
    :param dead_letter: where undeliverable events go, or None to drop them.
    :param subscription: the consumer group.
    :param publish_reply: stores a reply event in the broker; raises if it was not stored.
    :param parallelism: deliveries in flight at once (unordered); 1 per key when ordered.
    :param ordered: deliver events with the same ordering key one after another.
    """

    def __init__(
        self,
        *,
        name: str,
        namespace: str,
        broker_class: str,
        event_filter: EventFilter,
        delivery: DeliverySpec,
        subscriber: Target,
        dead_letter: Target | None,
        subscription: Subscription,
        publish_reply: Callable[[BaseCloudEvent], Awaitable[None]],
        parallelism: int = 100,
        ordered: bool = False,
    ) -> None:
        self.name = name
        self.namespace = namespace
        self.broker_class = broker_class
        self.filter = event_filter
        self.delivery = delivery
        self.subscriber = subscriber
        self.dead_letter = dead_letter
        self.subscription = subscription
        self.publish_reply = publish_reply
        self.parallelism = parallelism
        self.ordered = ordered
        self.stats = TriggerStats()
        self._tasks: set[asyncio.Task[None]] = set()
        self._last_by_key: dict[Hashable, asyncio.Task[None]] = {}

    async def run(self) -> None:
        """Receive and dispatch until cancelled."""
        slots = asyncio.Semaphore(self.parallelism)
        while True:
            received = await self.subscription.receive()
            self.stats.received += 1
            await slots.acquire()
            previous = self._last_by_key.get(received.ordering_key) if self.ordered else None
            task = asyncio.create_task(self._dispatch(received, previous, slots))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            if self.ordered:
                self._last_by_key[received.ordering_key] = task
                task.add_done_callback(partial(self._forget, received.ordering_key))

    def _forget(self, key: Hashable, task: "asyncio.Task[None]") -> None:
        if self._last_by_key.get(key) is task:
            del self._last_by_key[key]

    async def stop(self) -> None:
        """Cancel deliveries in flight; their events were not acked and will be redelivered."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _dispatch(
        self, received: Received, previous: asyncio.Task[None] | None, slots: asyncio.Semaphore
    ) -> None:
        try:
            if previous is not None:
                await asyncio.gather(previous, return_exceptions=True)
            await self.handle(received.event)
            await self.subscription.ack(received)
        except asyncio.CancelledError:
            raise
        except Exception:
            # A bug must not stop the trigger; the event stays unacked for redelivery.
            log.exception(
                "%s: dispatch of %s failed (operationid %s)",
                self.name,
                received.event.get_id(),
                received.event.get_extension(OPERATION_ID_EXTENSION),
                extra=_about(received.event),
            )
        finally:
            slots.release()

    async def handle(self, event: BaseCloudEvent) -> None:
        """Filter and deliver one event; return once delivered, dead-lettered or dropped."""
        if self.filter.evaluate(event.get_attributes()) is FilterResult.FAIL:
            self.stats.filtered_out += 1
            return
        self.stats.in_flight += 1
        started = time.monotonic()
        try:
            failure = await self._deliver_with_retries(event)
            if failure is None:
                self.stats.delivered += 1
                if log.isEnabledFor(logging.DEBUG):
                    log.debug(
                        "%s: delivered %s (operationid %s) to %s in %.1f ms",
                        self.name,
                        event.get_id(),
                        event.get_extension(OPERATION_ID_EXTENSION),
                        self.subscriber.url,
                        (time.monotonic() - started) * 1000,
                        extra=_about(event),
                    )
                return
            await self._dead_letter(event, failure)
        finally:
            self.stats.in_flight -= 1

    async def _deliver_with_retries(self, event: BaseCloudEvent) -> Reply | None:
        """Deliver with the spec's retries; return None on success, else the last failure."""
        # §2.9: the MT broker strips its TTL before the subscriber and puts it on the reply.
        ttl = event.get_extension(TTL_EXTENSION)
        outgoing = replace_attributes(event, remove=(TTL_EXTENSION,)) if ttl is not None else event
        headers, body = encode_binary(outgoing)
        headers["Prefer"] = "reply"  # §2.5: always
        headers["Kn-Namespace"] = self.namespace
        attempts = total_attempts(self.delivery)
        failure: Reply | None = None
        for attempt in range(1, attempts + 1):
            if attempt > 1:
                self.stats.retried += 1
                await asyncio.sleep(backoff_seconds(self.delivery, attempt - 1, self.broker_class))
            reply = await self.subscriber.send(headers, body, self._timeout())
            failure, retry = await self._outcome(reply, ttl)
            if failure is None:
                return None
            if not retry:
                return failure
            log.info(
                "%s: delivery %d/%d of %s (operationid %s) failed: %s",
                self.name,
                attempt,
                attempts,
                event.get_id(),
                event.get_extension(OPERATION_ID_EXTENSION),
                failure.status or failure.error,
                extra=_about(event),
            )
        return failure

    async def _outcome(self, reply: Reply, ttl: object) -> tuple[Reply | None, bool]:
        """Classify a response: (None, _) on success, else (failure, retryable)."""
        if reply.status is None or not is_success(reply.status):
            return reply, is_retryable(reply.status)
        # §2.1: a 202 is never a reply; an empty body means no reply.
        if reply.status == 202 or (not reply.body and not is_cloudevent(reply.headers)):
            return None, False
        kafka = self.broker_class == KAFKA_BROKER
        try:
            reply_event = decode_http(reply.headers, reply.body)
        except InvalidEvent as exc:
            # §2.6: MT answers 502 (retried); Kafka fails the delivery without retry.
            bad = Reply(502, {}, str(exc).encode(), error=f"reply is not a CloudEvent: {exc}")
            return bad, not kafka
        if ttl is not None:
            reply_event = replace_attributes(reply_event, {TTL_EXTENSION: ttl})
        try:
            await self.publish_reply(reply_event)
        except Exception as exc:
            return Reply(None, {}, b"", error=f"storing the reply failed: {exc}"), True
        return None, False

    def _timeout(self) -> float | None:
        if self.delivery.timeout is not None:
            return self.delivery.timeout
        return KAFKA_DEFAULT_TIMEOUT_SECONDS if self.broker_class == KAFKA_BROKER else None

    async def _dead_letter(self, event: BaseCloudEvent, failure: Reply) -> None:
        if self.dead_letter is None:
            self.stats.dropped += 1
            log.warning(
                "%s: dropped %s (operationid %s) after %s (no dead-letter sink)",
                self.name,
                event.get_id(),
                event.get_extension(OPERATION_ID_EXTENSION),
                failure.status or failure.error,
                extra=_about(event),
            )
            return
        extensions = dead_letter_extensions(
            destination=self.subscriber.url,
            status=failure.status,
            body=failure.body if failure.status is not None else failure.error.encode(),
            headers=failure.headers,
            broker_class=self.broker_class,
        )
        dead = replace_attributes(event, extensions, remove=(TTL_EXTENSION,))
        headers, body = encode_binary(dead)
        # §2.1: DLS delivery is itself retried, with the same policy.
        for attempt in range(1, total_attempts(self.delivery) + 1):
            if attempt > 1:
                await asyncio.sleep(backoff_seconds(self.delivery, attempt - 1, self.broker_class))
            reply = await self.dead_letter.send(headers, body, self._timeout())
            if reply.status is not None and is_success(reply.status):
                self.stats.dead_lettered += 1
                log.warning(
                    "%s: dead-lettered %s (operationid %s) to %s after %s",
                    self.name,
                    event.get_id(),
                    event.get_extension(OPERATION_ID_EXTENSION),
                    self.dead_letter.url,
                    failure.status or failure.error,
                    extra=_about(event),
                )
                return
            if not is_retryable(reply.status):
                break
        self.stats.dropped += 1
        log.error(
            "%s: dead-letter sink %s refused %s (operationid %s); event dropped",
            self.name,
            self.dead_letter.url,
            event.get_id(),
            event.get_extension(OPERATION_ID_EXTENSION),
            extra=_about(event),
        )

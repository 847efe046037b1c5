"""One dispatcher per Trigger: filter → subscriber → reply to the Broker → dead letter → ack.

Every destination is reached through the one send path (:mod:`knlocal.eventing.sender`), as
Knative's `kncloudevents` `send` does (`pkg/kncloudevents/event_dispatcher.go`): the event goes
to the subscriber, with retries; an answer carrying a CloudEvent (any 2xx, a 202 included) is a
reply, sent to the Broker with the same retries; when either send fails, the *original* event
goes to the dead-letter sink with the error extensions of the destination that failed (the
subscriber, or the Broker for a reply it refused). The subscriber is never called again because
its reply failed (knative-semantics.md §2.6, §2.8 and their corrections).

Where the emulated classes disagree (§6), a field of the :class:`BrokerClass` decides:

| | MTChannelBasedBroker (Go) | Kafka (Java) |
|---|---|---|
| 2xx with a body that is not a CloudEvent | 502, retried (§2.6) | failed, not retried: DLS |
| default request timeout | none | 600 s (§2.7) |
| loop protection | `knativebrokerttl` (§2.9) | none |
| `delivery.format: json` | structured mode to the subscriber (§2.5) | ignored: binary |
"""

import asyncio
import logging
import time
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from functools import partial

from knlocal import tracing
from knlocal.apis.classes import BrokerClass
from knlocal.apis.duck import DeliverySpec
from knlocal.eventing import ttl
from knlocal.eventing.backends.base import Received, Subscription
from knlocal.eventing.correlation import NO_CORRELATION, Correlation
from knlocal.eventing.deadletter import dead_letter_extensions
from knlocal.eventing.events import (
    BaseCloudEvent,
    IncompleteEvent,
    InvalidEvent,
    decode_http,
    encode_binary,
    encode_structured,
    is_cloudevent,
    replace_attributes,
)
from knlocal.eventing.filters import EventFilter, FilterResult
from knlocal.eventing.sender import (
    Check,
    Failure,
    Reply,
    RetryPolicy,
    Sent,
    Target,
    check_status,
    send,
)

log = logging.getLogger("knlocal.eventing")

#: Deliveries in flight per Trigger unless its class says otherwise.
DEFAULT_PARALLELISM = 100


@dataclass
class TriggerStats:
    """Counters a status view and /metrics show."""

    received: int = 0
    filtered_out: int = 0
    delivered: int = 0
    #: Retries of any send: to the subscriber, of a reply, to the dead-letter sink.
    retried: int = 0
    dead_lettered: int = 0
    dropped: int = 0
    in_flight: int = 0


class TriggerDispatcher:
    """Delivers a consumer group's events to a Trigger's subscriber.

    :param name: `<namespace>/<trigger>`, for logs.
    :param namespace: the Trigger's namespace (sent as `Kn-Namespace`, §2.5).
    :param broker_class: the emulated class; its fields decide where classes disagree.
    :param event_filter: the Trigger's filter.
    :param delivery: the effective delivery spec (see `delivery.effective_delivery`).
    :param subscriber: where events go.
    :param dead_letter: where undeliverable events go, or None to drop them.
    :param subscription: the consumer group.
    :param reply: the Broker, where replies go (its ingress, §2.6).
    :param parallelism: deliveries in flight at once (unordered); 1 per key when ordered.
    :param ordered: deliver events with the same ordering key one after another.
    :param broker: the Broker's name, for spans.
    """

    def __init__(
        self,
        *,
        name: str,
        namespace: str,
        broker_class: BrokerClass,
        event_filter: EventFilter,
        delivery: DeliverySpec,
        subscriber: Target,
        dead_letter: Target | None,
        subscription: Subscription,
        reply: Target,
        parallelism: int = DEFAULT_PARALLELISM,
        ordered: bool = False,
        correlation: Correlation = NO_CORRELATION,
        broker: str = "",
    ) -> None:
        self.name = name
        #: The Broker's name: `messaging.destination.name` of the Trigger's spans.
        self.broker_name = broker
        self.namespace = namespace
        self.broker_class = broker_class
        self.filter = event_filter
        self.delivery = delivery
        self.policy = RetryPolicy(delivery, broker_class)
        self.subscriber = subscriber
        self.dead_letter = dead_letter
        self.subscription = subscription
        self.reply = reply
        self.parallelism = parallelism
        self.ordered = ordered
        self.correlation = correlation
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
                "%s: dispatch of %s failed",
                self.name,
                self.correlation.label(received.event),
                extra=self.correlation.extra(received.event),
            )
        finally:
            slots.release()

    async def handle(self, event: BaseCloudEvent) -> None:
        """Filter and deliver one event; return once delivered, dead-lettered or dropped."""
        filtered_ns = time.time_ns()
        if self.filter.evaluate(event.get_attributes()) is FilterResult.FAIL:
            self.stats.filtered_out += 1
            return
        # Traced from here: an event the filter refuses costs no span (they are the most of
        # them: every Trigger sees every event), and is counted in /status instead.
        with tracing.consume_span(self.name, self.broker_name, event, filtered_ns):
            await self._handle(event)

    async def _handle(self, event: BaseCloudEvent) -> None:
        self.stats.in_flight += 1
        started = time.monotonic()
        try:
            if await self._deliver(event):
                self.stats.delivered += 1
                if log.isEnabledFor(logging.DEBUG):
                    log.debug(
                        "%s: delivered %s to %s in %.1f ms",
                        self.name,
                        self.correlation.label(event),
                        self.subscriber.url,
                        (time.monotonic() - started) * 1000,
                        extra=self.correlation.extra(event),
                    )
        finally:
            self.stats.in_flight -= 1

    async def _deliver(self, event: BaseCloudEvent) -> bool:
        """Send to the subscriber, then its reply to the Broker; dead-letter on failure.

        :return: whether the event was delivered (and its reply, if any, stored).
        """
        # §2.9: the MT broker strips its TTL before the subscriber and puts it on the reply.
        outgoing, event_ttl = ttl.strip(event)
        # §2.5: binary mode, unless `delivery.format: json` asks for structured mode.
        encode = encode_structured if self.delivery.format == "json" else encode_binary
        headers, body = encode(outgoing)
        headers["Prefer"] = "reply"  # §2.5: always
        headers["Kn-Namespace"] = self.namespace
        sent = await self._send(self.subscriber, headers, body, event, self._check_subscriber)
        if sent.failure is not None:
            await self._dead_letter(event, self.subscriber.url, sent.failure)
            return False
        reply = self._reply_message(sent.answer, event_ttl)
        if reply is not None:
            replied = await self._send(self.reply, *reply, event, check_status)
            if replied.failure is not None:
                # Corrections to §2.6/§2.8: the Broker refused the reply (e.g. 400 for an
                # exhausted TTL): the original goes to the DLS naming the Broker.
                await self._dead_letter(event, self.reply.url, replied.failure)
                return False
        return True

    async def _send(
        self,
        target: Target,
        headers: Mapping[str, str],
        body: bytes,
        event: BaseCloudEvent,
        check: Check,
    ) -> Sent:
        sent = await send(
            target,
            headers,
            body,
            self.policy,
            check,
            about=f"{self.name}: {self.correlation.label(event)}",
            log_extra=self.correlation.extra(event),
        )
        self.stats.retried += sent.attempts - 1
        return sent

    def _check_subscriber(self, answer: Reply) -> Failure | None:
        """Classify the subscriber's answer as broker-filter's `writeResponse` does (§2.6).

        A failed status fails; a 2xx without body is done; a 2xx whose body is not a
        CloudEvent, or is a malformed one, fails as a 502 (retried only if the class does).
        A well-formed CloudEvent that misses a required attribute passes here: it is sent to
        the Broker as a reply, whose ingress refuses it. Where the class's broker-filter hides
        them, a 502 and a timeout are not reported in the dead letter's extensions.
        """
        hidden = self.broker_class.filter_hop_hides_errors
        failure = check_status(answer)
        if failure is not None and answer.timed_out:
            return Failure(answer, failure.retriable, reported=not hidden)
        if failure is not None or not (answer.body or is_cloudevent(answer.headers)):
            return failure
        try:
            decode_http(answer.headers, answer.body)
        except IncompleteEvent:
            return None
        except InvalidEvent as exc:
            error = f"the subscriber's answer is not a valid CloudEvent: {exc}"
            bad = Reply(502, {}, error.encode(), error=error)
            retriable = self.broker_class.retries_non_event_answer
            return Failure(bad, retriable, reported=not hidden)
        return None

    def _reply_message(
        self, answer: Reply, event_ttl: object | None
    ) -> tuple[Mapping[str, str], bytes] | None:
        """The reply to send to the Broker, or None when the answer carries no event.

        Any 2xx carrying a CloudEvent is a reply, a 202 included: Knative's dispatcher does
        not look at the status (`executeRequest`; corrections to §2.1/§2.6).
        """
        if not is_cloudevent(answer.headers):
            return None
        try:
            reply = decode_http(answer.headers, answer.body)
        except IncompleteEvent:
            # Sent as it came: the Broker's ingress validates it (and refuses it, §2.2).
            return answer.headers, answer.body
        return encode_binary(ttl.reattach(reply, event_ttl))

    async def _dead_letter(self, event: BaseCloudEvent, destination: str, failure: Failure) -> None:
        """Send the original event, with the error extensions, to the dead-letter sink."""
        answer = failure.answer
        with tracing.dead_letter_span(self.name, destination, answer.status):
            await self._send_dead_letter(event, destination, failure)

    async def _send_dead_letter(
        self, event: BaseCloudEvent, destination: str, failure: Failure
    ) -> None:
        answer = failure.answer
        if self.dead_letter is None:
            self.stats.dropped += 1
            log.warning(
                "%s: dropped %s after %s from %s (no dead-letter sink)",
                self.name,
                self.correlation.label(event),
                answer.status or answer.error,
                destination,
                extra=self.correlation.extra(event),
            )
            return
        extensions = (
            dead_letter_extensions(
                destination=destination,
                status=answer.status,
                body=answer.body if answer.status is not None else answer.error.encode(),
                headers=answer.headers,
                broker_class=self.broker_class,
            )
            if failure.reported
            else {}
        )
        dead = replace_attributes(event, extensions, remove=(ttl.TTL_EXTENSION,))
        headers, body = encode_binary(dead)
        # §2.1: DLS delivery is itself retried, with the same policy.
        sent = await self._send(self.dead_letter, headers, body, event, check_status)
        if sent.failure is None:
            self.stats.dead_lettered += 1
            log.warning(
                "%s: dead-lettered %s to %s after %s from %s",
                self.name,
                self.correlation.label(event),
                self.dead_letter.url,
                answer.status or answer.error,
                destination,
                extra=self.correlation.extra(event),
            )
            return
        self.stats.dropped += 1
        log.error(
            "%s: dead-letter sink %s refused %s; event dropped",
            self.name,
            self.dead_letter.url,
            self.correlation.label(event),
            extra=self.correlation.extra(event),
        )

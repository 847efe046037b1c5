"""The NATS JetStream backend: the channel-based broker over a NatsJetStreamChannel (§3.4).

The Broker is an MTChannelBasedBroker whose channel template names a ``NatsJetStreamChannel``;
the MT broker's rules (TTL, reply path, backoff formulas) apply above this backend unchanged.
The layout is eventing-natss's, so the ``nats`` CLI shows what we store:

- the Broker's channel is ``<broker>-kne-trigger`` (the MT broker's name for it); its JetStream
  stream is ``KN_<NAMESPACE>__<CHANNEL>`` (upper case) on the subject ``<ns>.<channel>._knative``,
  file storage;
- events in binary content mode: ``ce-*`` NATS headers, the data as the payload;
- :meth:`NatsBackend.publish` returns once JetStream acknowledged the message (PubAck), so the
  ingress answers 202 only for stored events, and 503 otherwise (§2.2);
- one durable pull consumer per Trigger, named after its consumer group, explicit acks,
  starting at the stream's end when new.

**Retries do not multiply** (§3.4, knative-extensions/eventing-natss#457): eventing-natss lets
JetStream redeliver up to ``maxDeliver`` times, and each redelivery runs the subscription's
``retry`` again, so an event failing for good is attempted ``maxDeliver * (1 + retry)`` times.
Here the dispatcher runs the Trigger's ``1 + retry`` attempts and then acks (delivered or
dead-lettered); JetStream only redelivers what a crashed consumer never finished. The consumer
has no ``maxDeliver`` limit (JetStream never drops an event on its own), and while an event is in
the dispatcher's hands the subscription tells JetStream it is in progress every
``ACK_WAIT_SECONDS / 3``, so long backoffs never expire the ack wait into a second, parallel
round of attempts.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Final

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StorageType, StreamConfig

from knlocal.apis.eventing import Broker
from knlocal.errors import BackendError
from knlocal.eventing.backends.base import NO_ATTRIBUTES, BrokerBackend, Received, Subscription
from knlocal.eventing.events import BaseCloudEvent, InvalidEvent, decode_http, encode_binary

log = logging.getLogger("knlocal.eventing")

#: Messages handed to the dispatcher and not yet acknowledged, per consumer.
MAX_UNACKED: Final = 1000
#: Messages one pull asks for at most.
FETCH_BATCH: Final = 100
#: How long one pull waits for messages.
FETCH_TIMEOUT_SECONDS: Final = 1.0
#: JetStream's ack wait: after a crash, unfinished events come back after at most this long.
ACK_WAIT_SECONDS: Final = 6.0
#: How long a publish keeps trying while NATS is away before the ingress answers 503; as Knative's
#: Kafka receiver waits `delivery.timeout.ms` (§3.1), a restart costs latency, not events. A
#: retried publish whose first PubAck was lost is stored twice: at least once, as everywhere.
DELIVERY_TIMEOUT_SECONDS: Final = 60.0
#: Bound on one attempt's wait for the PubAck.
PUBACK_TIMEOUT_SECONDS: Final = 5.0
#: Pause between attempts.
RETRY_SECONDS: Final = 0.5
_FAILURES: Final = (NatsError, ConnectionError, OSError, asyncio.TimeoutError)


def channel_name(broker: Broker) -> str:
    """The MT broker's channel for a Broker (``<name>-kne-trigger``)."""
    return f"{broker.name}-kne-trigger"


def stream_name(broker: Broker) -> str:
    """eventing-natss's stream of the Broker's channel."""
    return f"KN_{broker.namespace}__{channel_name(broker)}".upper()


def subject(broker: Broker) -> str:
    """eventing-natss's subject of the Broker's channel."""
    return f"{broker.namespace}.{channel_name(broker)}._knative"


class NatsBackend(BrokerBackend):
    """A Broker's events in one JetStream stream; see the module docstring."""

    system = "nats"

    _client: Client
    _js: JetStreamContext

    @property
    def url(self) -> str:
        """NATS's address: the runtime's setting, not config-nats's cluster URL."""
        return self.settings.nats_url

    async def open(self) -> None:
        """Connect and create the stream if needed.

        :raises BackendError: NATS cannot be reached or has no JetStream.
        """
        self.stream = stream_name(self.broker)
        self.subject = subject(self.broker)
        try:
            self._client = await nats.connect(
                self.url,
                connect_timeout=5,
                allow_reconnect=True,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.5,
                error_cb=_log_error,
            )
            self._js = self._client.jetstream()
            await self._js.add_stream(
                StreamConfig(name=self.stream, subjects=[self.subject], storage=StorageType.FILE)
            )
        except _FAILURES as exc:
            with contextlib.suppress(*_FAILURES, AttributeError):
                await self._client.close()
            raise BackendError(
                f"cannot reach NATS JetStream at {self.url} ({exc!r}) for Broker"
                f" {self.broker.namespace}/{self.broker.name}: start it with `make nats`, or set"
                " NATS_URL to a running nats-server with JetStream"
            ) from exc

    async def publish(self, event: BaseCloudEvent) -> None:
        """See :meth:`BrokerBackend.publish`: returns once JetStream stored the message."""
        headers, body = encode_binary(event)
        deadline = time.monotonic() + DELIVERY_TIMEOUT_SECONDS
        while True:
            try:
                await self._js.publish(
                    self.subject, body, timeout=PUBACK_TIMEOUT_SECONDS, headers=headers
                )
                return
            except _FAILURES as exc:
                if time.monotonic() + RETRY_SECONDS > deadline:
                    raise BackendError(
                        f"JetStream at {self.url} did not store it: {exc!r}"
                    ) from exc
            await asyncio.sleep(RETRY_SECONDS)

    async def subscribe(
        self, group: str, ordered: bool, attributes: Mapping[str, str] = NO_ATTRIBUTES
    ) -> Subscription:
        """Bind the Trigger's durable consumer (created at the stream's end when new)."""
        config = ConsumerConfig(
            durable_name=group,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.NEW,
            ack_wait=ACK_WAIT_SECONDS,
            max_deliver=-1,
            max_ack_pending=MAX_UNACKED,
        )
        try:
            pull = await self._js.pull_subscribe(
                self.subject, durable=group, stream=self.stream, config=config
            )
        except _FAILURES as exc:
            raise BackendError(
                f"JetStream at {self.url}: cannot open consumer {group}: {exc!r}"
            ) from exc
        return NatsSubscription(group, pull)

    async def close(self) -> None:
        """See :meth:`BrokerBackend.close`."""
        with contextlib.suppress(*_FAILURES):
            await self._client.close()


async def _log_error(exc: Exception) -> None:
    # nats-py reports each failed reconnect here; the ingress's 503s report what matters.
    log.debug("NATS: %r", exc)


class NatsSubscription(Subscription):
    """A Trigger's durable pull consumer, pulled by a task of its own."""

    def __init__(self, group: str, pull: JetStreamContext.PullSubscription) -> None:
        self.group = group
        self.pull = pull
        self._received: asyncio.Queue[Received] = asyncio.Queue()
        #: By stream sequence: one entry per message until it is acked (or handed back).
        self._unacked: dict[int, Msg] = {}
        self._tasks = [asyncio.create_task(self._fetch()), asyncio.create_task(self._heartbeat())]

    async def _fetch(self) -> None:
        while True:
            if len(self._unacked) >= MAX_UNACKED:
                await asyncio.sleep(0.01)
                continue
            try:
                messages = await self.pull.fetch(
                    min(FETCH_BATCH, MAX_UNACKED - len(self._unacked)),
                    timeout=FETCH_TIMEOUT_SECONDS,
                )
            except TimeoutError:
                continue
            except _FAILURES as exc:
                log.debug("consumer %s: fetch failed (%r); retrying", self.group, exc)
                await asyncio.sleep(0.5)
                continue
            for message in messages:
                try:
                    event = decode_http(dict(message.headers or {}), message.data)
                except InvalidEvent as exc:
                    log.warning("consumer %s: dropping a non-CloudEvent: %s", self.group, exc)
                    with contextlib.suppress(*_FAILURES):
                        await message.term()
                    continue
                self._unacked[message.metadata.sequence.stream] = message
                self._received.put_nowait(
                    Received(event, event.get_extension("partitionkey"), message)
                )

    async def _heartbeat(self) -> None:
        # Keeps JetStream from redelivering what the dispatcher is still retrying (module doc).
        while True:
            await asyncio.sleep(ACK_WAIT_SECONDS / 3)
            for message in list(self._unacked.values()):
                with contextlib.suppress(*_FAILURES):
                    await message.in_progress()

    async def receive(self) -> Received:
        """See :meth:`Subscription.receive`."""
        return await self._received.get()

    async def ack(self, received: Received) -> None:
        """See :meth:`Subscription.ack`; a lost ack means one redelivery after the ack wait."""
        message: Msg = received.token
        self._unacked.pop(message.metadata.sequence.stream, None)
        try:
            await message.ack()
        except _FAILURES as exc:
            log.warning("consumer %s: ack lost (%r); JetStream will redeliver", self.group, exc)

    async def close(self) -> None:
        """See :meth:`Subscription.close`: unacked events are handed back (nak) at once."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for message in list(self._unacked.values()):
            with contextlib.suppress(*_FAILURES):
                await message.nak()
        self._unacked.clear()
        with contextlib.suppress(*_FAILURES):
            await self.pull.unsubscribe()

"""The RabbitMQ backend: Knative's RabbitMQ broker (eventing-rabbitmq) on a real RabbitMQ.

The layout is Knative's (knative-semantics.md §3.3), so RabbitMQ's own tools show what we store:

- one durable **headers exchange** per Broker, ``b.<namespace>.<name>`` (Knative appends the
  Broker's uid, which a local Broker has not);
- events as persistent messages whose AMQP headers are the CloudEvent's attributes by name
  (``type``, ``source``, ``id``, extensions…), the data as the body and ``datacontenttype`` as the
  content type: what eventing-rabbitmq's ingress writes and its bindings match on;
- publisher confirms: :meth:`RabbitMQBackend.publish` returns once RabbitMQ confirmed the message,
  so the ingress answers 202 only for stored events, and 503 otherwise (§2.2);
- one durable queue per Trigger, named after its consumer group, of the RabbitmqBrokerConfig's
  `queueType`, bound to the exchange with ``x-match: all`` on the Trigger's `filter.attributes`
  (eventing-rabbitmq `pkg/rabbit/binding.go`, with its ``x-knative-trigger`` label), so RabbitMQ
  routes only matching events to the queue. An attribute whose value is ``""`` (any value, §2.1)
  is left out of the binding, and the dispatcher still applies the whole filter (new-style
  `filters` dialects RabbitMQ cannot express, and that presence check);
- the queue's prefetch is 1 for an ordered Trigger (`parallelism` 1, §3.3), so RabbitMQ hands
  out one event at a time and the queue's order is the delivery order;
- manual acknowledgements: an event not acknowledged when its consumer's channel closes (or the
  runtime dies) is requeued by RabbitMQ and delivered again (at least once).

aio-pika's robust connection reconnects after RabbitMQ restarts and restores the exchange, the
queues, their bindings and consumers; acknowledgements of messages delivered on the lost channel
are void, RabbitMQ redelivers those messages.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import quote, urlsplit, urlunsplit

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)
from aiormq.exceptions import AMQPError, ChannelPreconditionFailed

from knlocal.apis.eventing import Broker
from knlocal.errors import BackendError
from knlocal.eventing.backends.base import NO_ATTRIBUTES, BrokerBackend, Received, Subscription
from knlocal.eventing.events import BaseCloudEvent, InvalidEvent, decode_http, encode_binary

log = logging.getLogger("knlocal.eventing")

#: Messages handed to the dispatcher and not yet acknowledged, per queue (the channel's prefetch).
MAX_UNACKED: Final = 1000
#: How long a publish keeps trying while RabbitMQ is away (restarting takes ~15 s here) before
#: the ingress answers 503; as Knative's Kafka receiver waits `delivery.timeout.ms` (§3.1), a
#: restart costs latency, not events. A retried publish whose first confirm was lost is stored
#: twice: at least once, as everywhere.
DELIVERY_TIMEOUT_SECONDS: Final = 60.0
#: Bound on one attempt's wait for the confirm.
CONFIRM_TIMEOUT_SECONDS: Final = 5.0
#: Pause between attempts, and between aio-pika's reconnection attempts.
RETRY_SECONDS: Final = 0.5
#: eventing-rabbitmq's default queue type (`RabbitmqBrokerConfig.spec.queueType`, §3.3).
QUEUE_TYPE: Final = "quorum"
#: The binding argument naming the Trigger (eventing-rabbitmq `rabbit.BindingKey`); RabbitMQ's
#: headers exchange does not match on arguments starting with ``x-``.
TRIGGER_BINDING_KEY: Final = "x-knative-trigger"
#: AMQP exceptions and lost connections, as aio-pika raises them (aiormq raises RuntimeError for
#: a closed channel or connection).
_FAILURES: Final = (AMQPError, ConnectionError, OSError, asyncio.TimeoutError, RuntimeError)


def exchange_name(broker: Broker) -> str:
    """The headers exchange of a Broker (eventing-rabbitmq's ``b.<ns>.<name>``, without uid)."""
    return f"b.{broker.namespace}.{broker.name}"


def binding_arguments(group: str, attributes: Mapping[str, str]) -> dict[str, Any]:
    """The headers-exchange binding of a Trigger's queue: all of its exact attributes."""
    exact = {name: value for name, value in attributes.items() if value != ""}
    return {**exact, "x-match": "all", TRIGGER_BINDING_KEY: group}


def to_message(event: BaseCloudEvent) -> aio_pika.Message:
    """An event as eventing-rabbitmq stores it: attributes as headers, data as the body."""
    headers, body = encode_binary(event)
    attributes = {k.removeprefix("ce-"): v for k, v in headers.items() if k.startswith("ce-")}
    content_type = headers.get("content-type")
    if content_type is not None:
        attributes["content-type"] = content_type
    return aio_pika.Message(
        body,
        headers=dict(attributes),
        content_type=content_type,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=event.get_id(),
    )


def from_message(message: AbstractIncomingMessage) -> BaseCloudEvent:
    """The event of a message :func:`to_message` wrote.

    :raises InvalidEvent: the message is not a CloudEvent.
    """
    headers = {}
    for key, value in (message.headers or {}).items():
        text = value.decode() if isinstance(value, bytes) else str(value)
        if key == "content-type":
            headers[key] = text
        # RabbitMQ's own headers (a quorum queue's `x-delivery-count`) are not attributes:
        # attribute names are lower-case letters and digits only.
        elif key.isalnum() and key.islower():
            headers[f"ce-{key}"] = text
    return decode_http(headers, message.body)


class RabbitMQBackend(BrokerBackend):
    """A Broker's events in a headers exchange, a queue per Trigger; see the module docstring."""

    system = "rabbitmq"

    _connection: AbstractRobustConnection
    _channel: AbstractChannel
    _exchange: AbstractExchange

    @property
    def url(self) -> str:
        """RabbitMQ's address: the runtime's setting (the cluster's RabbitmqCluster locally),
        with the RabbitmqBrokerConfig's vhost when it names one."""
        vhost = self.config.get("vhost", "/")
        parts = urlsplit(self.settings.rabbitmq_url)
        if vhost == "/" and parts.path in ("", "/"):
            return self.settings.rabbitmq_url
        return urlunsplit(parts._replace(path="/" + quote(vhost, safe="")))

    @property
    def queue_type(self) -> str:
        """The RabbitmqBrokerConfig's `queueType` (§3.3)."""
        return self.config.get("queueType", QUEUE_TYPE)

    async def open(self) -> None:
        """Connect and declare the Broker's exchange.

        :raises BackendError: RabbitMQ cannot be reached.
        """
        self.exchange = exchange_name(self.broker)
        try:
            self._connection = await aio_pika.connect_robust(
                self.url, timeout=5, reconnect_interval=RETRY_SECONDS
            )
            self._channel = await self._connection.channel(publisher_confirms=True)
            self._exchange = await self._channel.declare_exchange(
                self.exchange, aio_pika.ExchangeType.HEADERS, durable=True
            )
        except _FAILURES as exc:
            raise BackendError(
                f"cannot reach RabbitMQ at {self.url} ({exc!r}) for Broker"
                f" {self.broker.namespace}/{self.broker.name}: start it with `make rabbitmq`,"
                " or set RABBITMQ_URL to a running RabbitMQ"
            ) from exc

    async def publish(self, event: BaseCloudEvent) -> None:
        """See :meth:`BrokerBackend.publish`: returns once RabbitMQ confirmed the message."""
        message = to_message(event)
        deadline = time.monotonic() + DELIVERY_TIMEOUT_SECONDS
        while True:
            try:
                await self._exchange.publish(
                    message, routing_key="", timeout=CONFIRM_TIMEOUT_SECONDS
                )
                return
            except _FAILURES as exc:
                if time.monotonic() + RETRY_SECONDS > deadline:
                    raise BackendError(f"RabbitMQ at {self.url} did not confirm: {exc!r}") from exc
            await asyncio.sleep(RETRY_SECONDS)

    async def subscribe(
        self, group: str, ordered: bool, attributes: Mapping[str, str] = NO_ATTRIBUTES
    ) -> Subscription:
        """Declare the Trigger's queue, bind it on `attributes` and consume it.

        A queue delivers in order; `ordered` hands out one event at a time (prefetch 1).
        """
        try:
            channel = await self._queue_channel(ordered)
            try:
                queue = await channel.declare_queue(
                    group, durable=True, arguments={"x-queue-type": self.queue_type}
                )
            except ChannelPreconditionFailed as exc:
                # A queue's type cannot change (§3.3: eventing-rabbitmq's Queue is immutable):
                # keep the one there, with its events, and say how to change it.
                log.warning(
                    "queue %s exists with other arguments than queueType %s (%s); using it as"
                    " it is: delete it (no consumer running) to have it declared anew",
                    group,
                    self.queue_type,
                    exc,
                )
                channel = await self._queue_channel(ordered)
                queue = await channel.declare_queue(group, passive=True)
            await queue.bind(self.exchange, arguments=binding_arguments(group, attributes))
        except _FAILURES as exc:
            raise BackendError(
                f"RabbitMQ at {self.url}: cannot open {self.queue_type} queue {group}: {exc!r}"
            ) from exc
        subscription = RabbitMQSubscription(channel, queue)
        await subscription.start()
        return subscription

    async def _queue_channel(self, ordered: bool) -> AbstractChannel:
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=1 if ordered else MAX_UNACKED)
        return channel

    async def close(self) -> None:
        """See :meth:`BrokerBackend.close`."""
        with contextlib.suppress(*_FAILURES):
            await self._connection.close()


class RabbitMQSubscription(Subscription):
    """A Trigger's queue, consumed on a channel of its own."""

    def __init__(self, channel: AbstractChannel, queue: AbstractQueue) -> None:
        self.channel = channel
        self.queue = queue
        self._received: asyncio.Queue[Received] = asyncio.Queue()
        self._tag = ""

    async def start(self) -> None:
        """Start consuming with manual acknowledgements."""
        self._tag = await self.queue.consume(self._on_message, no_ack=False)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        try:
            event = from_message(message)
        except InvalidEvent as exc:
            # Nothing can deliver it; Knative's dispatcher drops it too.
            log.warning(
                "queue %s: dropping a message that is not a CloudEvent: %s", self.queue.name, exc
            )
            await message.ack()
            return
        # The queue is the unit of order (§3.3): an ordered Trigger takes its events one by one.
        self._received.put_nowait(Received(event, self.queue.name, message))

    async def receive(self) -> Received:
        """See :meth:`Subscription.receive`."""
        return await self._received.get()

    async def ack(self, received: Received) -> None:
        """See :meth:`Subscription.ack`; on a channel lost since, RabbitMQ redelivers instead."""
        message: AbstractIncomingMessage = received.token
        try:
            await message.ack()
        except _FAILURES as exc:
            log.warning("queue %s: ack lost (%r); RabbitMQ will redeliver", self.queue.name, exc)

    async def close(self) -> None:
        """See :meth:`Subscription.close`: closing the channel requeues what was not acked."""
        with contextlib.suppress(*_FAILURES):
            await self.channel.close()

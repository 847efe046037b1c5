"""The runtime's side of the Kafka backend: publish and subscribe through the data-plane
processes, on the runtime's event loop, with no Kafka client in the runtime's interpreter.

:class:`KafkaBackend` runs two processes (:mod:`~knlocal.eventing.backends.kafka.supervisor`):
the receiver (the producer) and the dispatcher (the Triggers' consumer groups). A publish is
encoded here (binary mode, key = `partitionkey`), sent to the receiver, and returns once Kafka
acknowledged it. A subscription's records arrive undecoded from the dispatcher, are decoded
here and queued for :meth:`KafkaSubscription.receive`; acknowledgements go back, and the
dispatcher commits them in order. The dispatcher drops beforehand the records the Trigger's
`filter.attributes` cannot match (:mod:`.prefilter`); they only come as a count. When a
process dies the runtime starts it again: publishes waiting on the receiver fail (BackendError:
the ingress answers 503), and the dispatcher's members join their groups again, which redeliver
whatever was not committed (§3.1, §5). The `rebalance` fault asks a member to do the same
without dying (:meth:`KafkaSubscription.redeliver_uncommitted`).
"""

import asyncio
import itertools
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from knlocal.errors import BackendError
from knlocal.eventing.backends.base import NO_ATTRIBUTES, BrokerBackend, Received, Subscription
from knlocal.eventing.backends.kafka.config import topic_name, topic_settings
from knlocal.eventing.backends.kafka.group import Record
from knlocal.eventing.backends.kafka.supervisor import DataPlaneProcess
from knlocal.eventing.backends.kafka.wire import Message
from knlocal.eventing.events import BaseCloudEvent, InvalidEvent, decode_kafka, encode_kafka

log = logging.getLogger("knlocal.eventing")

RECEIVER_MODULE = "knlocal.eventing.backends.kafka.receiver"
DISPATCHER_MODULE = "knlocal.eventing.backends.kafka.dispatcher"

T = TypeVar("T")


@dataclass(frozen=True)
class _Position:
    """Where a record is: the :attr:`Received.token` of its event."""

    #: The dispatcher's incarnation it came from: acknowledgements to an earlier one are void.
    incarnation: int
    partition: int
    offset: int
    #: The member's assignment it was fetched under (the dispatcher checks it).
    epoch: int


class KafkaBackend(BrokerBackend):
    """A Broker's events in one Kafka topic; see the package docstring.

    :ivar topic: the Broker's topic, set by :meth:`open`.
    """

    system = "kafka"

    topic: str

    @property
    def servers(self) -> str:
        """The Kafka address: the runtime's setting, not the ConfigMap's cluster address."""
        return self.settings.kafka_bootstrap_servers

    async def open(self) -> None:
        """Start the receiver (which creates the topic if needed), then the dispatcher.

        :raises ConfigError: the ConfigMap's topic settings are missing or not numbers.
        :raises BackendError: Kafka cannot be reached or refused the topic.
        """
        self.topic = topic_name(self.broker)
        settings = topic_settings(self.broker, self.config)
        where = f"Broker {self.broker.namespace}/{self.broker.name}"
        self._numbers = itertools.count()
        self._published: dict[int, asyncio.Future[None]] = {}
        #: The requests waiting on the dispatcher, by the answer's name and number: each
        #: one's future, and the answer it gets if the dispatcher exits first.
        self._answers: dict[tuple[str, int], tuple[asyncio.Future[Any], Any]] = {}
        self._subscriptions: dict[int, KafkaSubscription] = {}
        self.receiver = DataPlaneProcess(
            RECEIVER_MODULE,
            f"Kafka receiver of {where}",
            ("open", self.servers, self.topic, settings, where),
            self._from_receiver,
            on_restart=lambda: None,
            on_exit=self._receiver_exited,
        )
        (_, partitions) = await self.receiver.start()
        self.dispatcher = DataPlaneProcess(
            DISPATCHER_MODULE,
            f"Kafka dispatcher of {where}",
            ("open", self.servers, self.topic, partitions),
            self._from_dispatcher,
            on_restart=self._dispatcher_restarted,
            on_exit=self._dispatcher_exited,
        )
        try:
            await self.dispatcher.start()
        except BaseException:
            await self.receiver.stop(("close",))
            raise

    async def publish(self, event: BaseCloudEvent) -> None:
        """Produce the event; return once Kafka acknowledged it (`acks=all`).

        :raises BackendError: Kafka did not store it within the delivery timeout, or the
            receiver process is down.
        """
        if not self.receiver.running:
            raise BackendError(
                f"could not send event {event.get_id()} to Kafka at {self.servers}: the"
                " receiver process is starting again"
            )
        headers, key, value = encode_kafka(event)
        number = next(self._numbers)
        stored: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._published[number] = stored
        self.receiver.send(("publish", number, headers, key, value))
        try:
            await stored
        finally:
            self._published.pop(number, None)

    def _from_receiver(self, message: Message) -> None:
        for number, error in message[1]:
            stored = self._published.pop(number, None)
            if stored is None or stored.done():
                continue  # the publisher was cancelled; Kafka stored the event anyway
            if error is None:
                stored.set_result(None)
            else:
                stored.set_exception(
                    BackendError(
                        f"Kafka at {self.servers} did not store the event in {self.topic}: {error}"
                    )
                )

    def _receiver_exited(self) -> None:
        waiting, self._published = self._published, {}
        for stored in waiting.values():
            if not stored.done():
                stored.set_exception(
                    BackendError(
                        f"the Kafka receiver process of {self.topic} exited before Kafka"
                        " acknowledged the event; it may or may not be stored"
                    )
                )

    async def subscribe(
        self, group: str, ordered: bool, attributes: Mapping[str, str] = NO_ATTRIBUTES
    ) -> Subscription:
        """Join consumer group `group`; its position is fixed before this returns.

        A new group starts at the end of the topic (§3.1); an existing one resumes where it
        committed (:class:`~knlocal.eventing.backends.kafka.dispatcher.GroupStarter`).

        :param ordered: not used here: the dispatcher keeps per-partition order with
            :attr:`Received.ordering_key`, which is the partition.
        :param attributes: the Trigger's `filter.attributes`: the dispatcher process drops the
            records they cannot match (:mod:`knlocal.eventing.backends.kafka.prefilter`).
        :raises BackendError: Kafka refused to set the group's starting offsets.
        """
        subscription = KafkaSubscription(self, next(self._numbers), group, dict(attributes))
        error = await self._ask(
            ("subscribe", subscription.number, group, subscription.attributes),
            "subscribed",
            down="the Kafka dispatcher process exited; it is starting again",
        )
        if error is not None:
            raise BackendError(error)
        self._subscriptions[subscription.number] = subscription
        return subscription

    async def _ask(self, message: Message, answer: str, down: T) -> T:
        """Send the dispatcher `message` (its second item numbers the request) and wait for
        the `answer` message with that number; return the answer's third item (None if it
        has none), or `down` if the dispatcher is down or exits first."""
        if not self.dispatcher.running:
            return down
        key = (answer, message[1])
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._answers[key] = (future, down)
        self.dispatcher.send(message)
        try:
            return await future
        finally:
            self._answers.pop(key, None)

    def _from_dispatcher(self, message: Message) -> None:
        if message[0] == "records":
            subscription = self._subscriptions.get(message[1])
            if subscription is not None:
                _, _, records, again, prefiltered = message
                subscription.take(self.dispatcher.incarnation, records, again, prefiltered)
            return
        waiting = self._answers.get((message[0], message[1]))
        if waiting is not None and not waiting[0].done():
            waiting[0].set_result(message[2] if len(message) > 2 else None)

    def _dispatcher_exited(self) -> None:
        for future, down in list(self._answers.values()):
            if not future.done():
                future.set_result(down)

    def _dispatcher_restarted(self) -> None:
        # The new process knows no member: join every group again. What the old one handed
        # over and was not committed comes again; acknowledgements of it are void.
        for subscription in self._subscriptions.values():
            self.dispatcher.send(
                ("subscribe", subscription.number, subscription.group, subscription.attributes)
            )

    async def close(self) -> None:
        """Close every subscription, then stop the dispatcher and the receiver."""
        await asyncio.gather(*(s.close() for s in list(self._subscriptions.values())))
        await self.dispatcher.stop(("shutdown",))
        await self.receiver.stop(("close",))


class KafkaSubscription(Subscription):
    """A Trigger's consumer group, whose member runs in the dispatcher process.

    :param backend: the Broker's backend.
    :param number: its number in the dispatcher's messages.
    :param group: the consumer group, ``knative-trigger-<namespace>-<name>``.
    :param attributes: the Trigger's `filter.attributes`, for the dispatcher's prefilter.
    """

    def __init__(
        self, backend: KafkaBackend, number: int, group: str, attributes: dict[str, str]
    ) -> None:
        self.backend = backend
        self.number = number
        self.group = group
        self.attributes = attributes
        # Unbounded as a type, bounded by MAX_UNACKED: the member fetches nothing more while
        # that many records are handed over and not acknowledged.
        self._queue: asyncio.Queue[Received] = asyncio.Queue()
        self._acks: list[tuple[int, int, int]] = []
        #: Records handed over again after :meth:`redeliver_uncommitted` (the `rebalance`
        #: fault's count, knlocal/eventing/faults.py).
        self.redelivered = 0

    def take(self, incarnation: int, records: list[Record], again: int, prefiltered: int) -> None:
        """Decode records from the dispatcher and queue them (on the loop).

        :param again: how many of them the member hands over again after a rewind.
        :param prefiltered: how many records the dispatcher dropped since its last message.
        """
        self.redelivered += again
        self.prefiltered += prefiltered
        for partition, offset, epoch, headers, key, value in records:
            position = _Position(incarnation, partition, offset, epoch)
            try:
                event = decode_kafka(headers, key, value)
            except InvalidEvent as exc:
                # §3.1: Knative's dispatcher discards records that are not CloudEvents.
                log.warning(
                    "%s: skipping partition %d offset %d: %s", self.group, partition, offset, exc
                )
                self._acknowledge(position)
                continue
            self._queue.put_nowait(Received(event, partition, position))

    async def receive(self) -> Received:
        """See :meth:`Subscription.receive`; `ordering_key` is the partition."""
        return await self._queue.get()

    async def ack(self, received: Received) -> None:
        """Send the acknowledgement to the dispatcher, which commits in order."""
        self._acknowledge(received.token)

    def _acknowledge(self, position: _Position) -> None:
        if position.incarnation != self.backend.dispatcher.incarnation:
            return  # handed out by a dispatcher process that died: the new one redelivers it
        if not self._acks:
            asyncio.get_running_loop().call_soon(self._send_acks)
        self._acks.append((position.partition, position.offset, position.epoch))

    def _send_acks(self) -> None:
        # One message for the acknowledgements of a loop iteration, not one per event.
        acks, self._acks = self._acks, []
        self.backend.dispatcher.send(("acks", self.number, acks))

    async def close(self) -> None:
        """Commit what is acknowledged in order, leave the group.

        Records not acknowledged stay uncommitted: the group's next member gets them again.
        """
        if self.backend._subscriptions.pop(self.number, None) is not None:
            await self.backend._ask(("close", self.number), "closed", down=None)

    async def redeliver_uncommitted(self) -> int:
        """Act out a rebalance in which the member loses its partitions and gets them back.

        The `rebalance` fault's hook (:class:`knlocal.eventing.faults.Redelivering`). As after
        a member missed its session (`on_partitions_lost`, §3.1), nothing more is committed:
        the member goes back to the last committed offsets, so every record handed over since,
        acknowledged or not, is delivered again. The rewind starts a new assignment epoch, so
        acknowledgements of the records handed over before it are void, as those to a
        dispatcher process that died are (:class:`_Position`).

        Records the prefilter dropped come again too, and are dropped again: they count in
        the return value, not in :attr:`redelivered` (records handed over again).

        :return: how many records the rewind puts back (each comes again); 0 once closed, or
            while the dispatcher process is down (its restart redelivers them anyway).
        """
        if self.number not in self.backend._subscriptions:
            return 0
        request = next(self.backend._numbers)
        return await self.backend._ask(("rewind", request, self.number), "rewound", down=0)

"""The Kafka backend: Knative's Kafka broker (eventing-kafka-broker) on a real Kafka.

The layout is Knative's (knative-semantics.md §3.1), so a cluster's tools read what we write:

- one topic per Broker, ``knative-broker-<namespace>-<name>``, created on open with the
  partitions, replication factor and ``default.topic.config.*`` of the Broker's ConfigMap;
- events in binary content mode: ``ce_*`` headers, ``content-type``, key = ``partitionkey``;
- a producer with ``acks=all``: :meth:`KafkaBackend.publish` returns once Kafka acknowledged the
  record, so the ingress answers 202 only for stored events, and 503 otherwise (§2.2);
- one consumer group per Trigger, ``knative-trigger-<namespace>-<name>``, which starts at the end
  of the topic when new (§3.1); offsets are committed by hand and in order, only up to the first
  record not yet acknowledged, so whatever was not handled comes back after a crash (§3.1, §5).

Threads: kafka-python's clients block. The producer is thread-safe: ``send`` appends the record
to a batch and returns; kafka-python's I/O thread calls back once the batch is acknowledged, and
the callbacks of a batch wake the asyncio loop once (:class:`_Settler`). Each subscription has
one poll thread, the only thread that calls its consumer; it hands records to the loop in
batches and applies the acknowledgements the loop queues for it.
"""

import asyncio
import collections
import contextlib
import logging
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import OffsetSpec
from kafka.consumer.subscription_state import AsyncConsumerRebalanceListener
from kafka.coordinator.assignors.sticky.sticky_assignor import StickyPartitionAssignor
from kafka.errors import KafkaError, NoError, RetriableError, TopicAlreadyExistsError
from kafka.structs import OffsetAndMetadata

from knlocal.errors import BackendError, ConfigError
from knlocal.eventing.backends.base import NO_ATTRIBUTES, BrokerBackend, Received, Subscription
from knlocal.eventing.events import BaseCloudEvent, InvalidEvent, decode_kafka, encode_kafka
from knlocal.manifests import Broker

log = logging.getLogger("knlocal.eventing")

#: ConfigMap keys of the Kafka broker (`kafka-broker-config`, §3.1).
PARTITIONS_KEY: Final = "default.topic.partitions"
REPLICATION_FACTOR_KEY: Final = "default.topic.replication.factor"
TOPIC_CONFIG_PREFIX: Final = "default.topic.config."

#: Records handed to the dispatcher and not yet acknowledged, per subscription. At this bound the
#: consumer stops fetching until acknowledgements come back: the bound on the receive queue.
MAX_UNACKED: Final = 1000
#: Records one poll returns at most (Knative's dispatcher uses 50; bigger batches cost less
#: Python per record, and MAX_UNACKED bounds what is in flight anyway).
MAX_POLL_RECORDS: Final = 500
#: How long a poll waits for records before acknowledgements are applied and committed.
POLL_TIMEOUT_MS: Final = 100
#: Pause after a poll that returned records, so that under load each poll returns a batch: each
#: poll costs kafka-python several hand-offs between threads, whatever it returns. Measured
#: here, 300 events/s to four consumer groups: 741 polls instead of 1014 for 7200 records (0.64
#: instead of 0.83 cores, one noisy run each); 20 ms showed no gain on top in the runtime.
#: Costs at most this much latency per hop.
POLL_BATCH_SECONDS: Final = 0.005
#: Least time between two commits of a subscription: a commit is a round trip to Kafka that the
#: poll thread waits for; under load, committing after every poll would delay every fetch. A
#: crash redelivers at most this much acknowledged work (at least once, §3.1).
COMMIT_INTERVAL_SECONDS: Final = 0.1
#: Bound on connecting, admin requests and commits; Kafka runs on loopback.
REQUEST_TIMEOUT_MS: Final = 5000
#: Knative's receiver gives a record this long to be stored before the ingress answers 503
#: (`delivery.timeout.ms`, §3.1): a Kafka restart within it costs latency, not events.
DELIVERY_TIMEOUT_MS: Final = 120_000
#: Knative's producer sends at once (`linger.ms=0`); a few ms let a burst share one request per
#: partition instead of one request per event, for at most that much latency per hop.
LINGER_MS: Final = 5

_T = TypeVar("_T")


def topic_name(broker: Broker) -> str:
    """The topic of a Broker, named as Knative names it (§3.1)."""
    return f"knative-broker-{broker.namespace}-{broker.name}"


class KafkaBackend(BrokerBackend):
    """A Broker's events in one Kafka topic; see the module docstring.

    :ivar topic: the Broker's topic, set by :meth:`open`.
    """

    topic: str
    _admin: KafkaAdminClient
    _producer: KafkaProducer
    _partitions: list[TopicPartition]

    @property
    def servers(self) -> str:
        """The Kafka address: the runtime's setting, not the ConfigMap's cluster address."""
        return self.settings.kafka_bootstrap_servers

    async def open(self) -> None:
        """Create the topic if needed and connect the producer.

        :raises ConfigError: the ConfigMap's topic settings are missing or not numbers.
        :raises BackendError: Kafka cannot be reached or refused the topic.
        """
        # kafka-python logs each retried connection attempt at ERROR, ten times a second per
        # client while Kafka is down; this backend reports what matters itself (warnings, and
        # the 503s of the ingress).
        logging.getLogger("kafka").setLevel(logging.CRITICAL)
        self.topic = topic_name(self.broker)
        self._settler = _Settler(asyncio.get_running_loop())
        self._subscriptions: set[KafkaSubscription] = set()
        # Serializes admin requests: subscriptions may be opened from several tasks at once.
        self._admin_lock = threading.Lock()
        await asyncio.to_thread(self._open, self._topic_settings())

    def _topic_settings(self) -> dict[str, Any]:
        where = f"ConfigMap {(self.broker.config or {}).get('name', '?')} of Broker"
        where += f" {self.broker.namespace}/{self.broker.name}"
        numbers = {}
        for key in (PARTITIONS_KEY, REPLICATION_FACTOR_KEY):
            value = self.config.get(key)
            if value is None or not str(value).isdigit() or int(value) < 1:
                raise ConfigError(
                    f"{where}: {key} must be a whole number of at least 1; found {value!r}"
                )
            numbers[key] = int(value)
        return {
            "num_partitions": numbers[PARTITIONS_KEY],
            "replication_factor": numbers[REPLICATION_FACTOR_KEY],
            "configs": {
                key.removeprefix(TOPIC_CONFIG_PREFIX): str(value)
                for key, value in self.config.items()
                if key.startswith(TOPIC_CONFIG_PREFIX)
            },
        }

    def client_config(self, client_id: str) -> dict[str, Any]:
        """The settings every kafka-python client of this backend shares.

        :param client_id: how Kafka's logs name the client.
        :return: keyword arguments for a kafka-python client.
        """
        return {
            "bootstrap_servers": self.servers,
            "client_id": client_id,
            "bootstrap_timeout_ms": REQUEST_TIMEOUT_MS,
            # Reconnect within a second after Kafka restarts (kafka-python's default backs
            # off up to 30 s).
            "reconnect_backoff_max_ms": 1000,
        }

    def _open(self, topic_settings: dict[str, Any]) -> None:
        client_id = f"knlocal-{self.topic}"
        try:
            # A plain connect first: it fails at once where kafka-python would retry until
            # its bootstrap timeout, and leave its sockets open.
            _connect_any(self.servers)
            self._admin = KafkaAdminClient(**self.client_config(client_id))
        except (OSError, KafkaError) as exc:
            raise BackendError(
                f"cannot reach Kafka at {self.servers} ({exc}) for Broker"
                f" {self.broker.namespace}/{self.broker.name}: start it with `make kafka`, or"
                " set KAFKA_BOOTSTRAP_SERVERS to a running Kafka"
            ) from exc

        def create() -> None:
            # Knative leaves an existing topic as it is.
            with contextlib.suppress(TopicAlreadyExistsError):
                self._admin.create_topics(
                    {self.topic: topic_settings},
                    timeout_ms=REQUEST_TIMEOUT_MS,
                    wait_for_metadata=True,
                )

        self.retrying(create, f"creating topic {self.topic}")
        self._producer = KafkaProducer(
            **self.client_config(client_id),
            # Knative's receiver (§3.1): acks=all, no idempotence, retries until the delivery
            # timeout; so a record is acknowledged only once every in-sync replica has it.
            acks="all",
            enable_idempotence=False,
            delivery_timeout_ms=DELIVERY_TIMEOUT_MS,
            linger_ms=LINGER_MS,
        )
        # Also loads the topic's metadata, so that `send` never waits for it on the loop.
        partitions = self.retrying(
            lambda: self._producer.partitions_for(self.topic), f"reading topic {self.topic}"
        )
        self._partitions = [TopicPartition(self.topic, p) for p in sorted(partitions)]

    def retrying(self, call: Callable[[], _T], what: str) -> _T:
        """Run a blocking client call, retrying Kafka's retriable errors for a few seconds.

        A fresh Kafka answers "coordinator not available" until its offsets topic exists.

        :param call: the call, run in the calling thread.
        :param what: what it does, for the error message.
        :return: what the call returned.
        :raises BackendError: the call failed for good.
        """
        deadline = time.monotonic() + REQUEST_TIMEOUT_MS / 1000
        while True:
            try:
                return call()
            except RetriableError as exc:
                if time.monotonic() >= deadline:
                    raise BackendError(f"{what} on Kafka at {self.servers} failed: {exc}") from exc
                time.sleep(0.1)
            except KafkaError as exc:
                raise BackendError(f"{what} on Kafka at {self.servers} failed: {exc}") from exc

    async def publish(self, event: BaseCloudEvent) -> None:
        """Produce the event; return once Kafka acknowledged it (`acks=all`).

        :raises BackendError: Kafka did not store it within the delivery timeout.
        """
        headers, key, value = encode_kafka(event)
        stored: asyncio.Future[None] = self._settler.loop.create_future()
        try:
            sent = self._producer.send(self.topic, value=value, key=key, headers=headers)
        except KafkaError as exc:
            raise BackendError(
                f"could not send event {event.get_id()} to Kafka at {self.servers}: {exc}"
            ) from exc
        sent.add_callback(lambda _: self._settler.settle(stored, None))
        sent.add_errback(lambda exc: self._settler.settle(stored, exc))
        try:
            await stored
        except KafkaError as exc:
            raise BackendError(
                f"Kafka at {self.servers} did not store event {event.get_id()} in"
                f" {self.topic}: {exc}"
            ) from exc

    async def subscribe(
        self, group: str, ordered: bool, attributes: Mapping[str, str] = NO_ATTRIBUTES
    ) -> Subscription:
        """Join consumer group `group`; its position is fixed before this returns.

        A new group starts at the end of the topic, as a new Trigger does in Knative (§3.1,
        `auto.offset.reset=latest`, offsets initialized by the controller): the end offsets are
        committed now, so an event published right after this returns is delivered even though
        the consumer joins the group later. An existing group resumes where it committed.

        :param ordered: not used here: the dispatcher keeps per-partition order with
            :attr:`Received.ordering_key`, which is the partition.
        :raises BackendError: Kafka refused to set the group's starting offsets.
        """
        await asyncio.to_thread(self._start_new_group_at_end, group)
        subscription = KafkaSubscription(self, group, asyncio.get_running_loop())
        await asyncio.to_thread(subscription.start)
        self._subscriptions.add(subscription)
        return subscription

    def _start_new_group_at_end(self, group: str) -> None:
        with self._admin_lock:
            committed = self.retrying(
                lambda: self._admin.list_group_offsets({group: self._partitions})[group],
                f"reading the offsets of consumer group {group}",
            )
            new = {
                tp: OffsetSpec.LATEST
                for tp in self._partitions
                if tp not in committed or committed[tp].offset < 0
            }
            if not new:
                return
            results = self.retrying(
                lambda: self._admin.reset_group_offsets(group, new),
                f"setting the starting offsets of consumer group {group}",
            )
        failed = {
            tp.partition: r["error"].__name__
            for tp, r in results.items()
            if r["error"] is not NoError
        }
        if failed:
            raise BackendError(
                f"could not set the starting offsets of consumer group {group} on Kafka at"
                f" {self.servers}: {failed}; is another runtime consuming it right now?"
            )

    async def close(self) -> None:
        """Close every subscription (at once: each may wait for Kafka), then the producer."""
        await asyncio.gather(*(s.close() for s in list(self._subscriptions)))
        await asyncio.to_thread(self._close_clients)

    def _close_clients(self) -> None:
        self._producer.close(timeout=REQUEST_TIMEOUT_MS / 1000)
        self._admin.close()


def _connect_any(servers: str) -> None:
    """Open and close a TCP connection to the first of `servers` that accepts one.

    :raises OSError: none accepts a connection.
    """
    error = OSError(f"no bootstrap server in {servers!r}")
    for server in servers.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            socket.create_connection((host, int(port)), timeout=REQUEST_TIMEOUT_MS / 1000).close()
            return
        except (OSError, ValueError) as exc:
            error = OSError(f"{server.strip()}: {exc}")
    raise error


class _Settler:
    """Resolves the loop's futures from kafka-python's I/O thread, waking the loop once per batch.

    Kafka acknowledges records a batch at a time; one `call_soon_threadsafe` per record would
    cost a system call and a fight for the GIL each.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._settled: collections.deque[tuple[asyncio.Future[None], BaseException | None]]
        self._settled = collections.deque()
        self._lock = threading.Lock()
        self._scheduled = False

    def settle(self, future: "asyncio.Future[None]", error: BaseException | None) -> None:
        """Resolve `future` on the loop (from any thread): with `error`, or with None."""
        self._settled.append((future, error))
        with self._lock:
            if self._scheduled:
                return
            self._scheduled = True
        self.loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        with self._lock:
            self._scheduled = False
        while self._settled:
            future, error = self._settled.popleft()
            if future.done():
                continue  # the publisher was cancelled; Kafka may store the event anyway
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)


@dataclass(frozen=True)
class _Position:
    """Where a record is: the :attr:`Received.token` of its event."""

    partition: TopicPartition
    offset: int
    #: The assignment it was fetched under; acknowledgements from an older one are void.
    epoch: int


@dataclass
class _PartitionState:
    """What a subscription tracks of one assigned partition."""

    epoch: int
    #: The offset after the last record handed over.
    next_offset: int
    #: Offsets handed over and not acknowledged yet.
    pending: set[int] = field(default_factory=set)
    committed: int = -1

    def commit_position(self) -> int:
        """The offset to commit: every record before it was acknowledged.

        "Even unordered, the offset commit is ordered" (§3.1): a record acknowledged out of
        order is committed only once every record before it is acknowledged too.
        """
        return min(self.pending) if self.pending else self.next_offset


class KafkaSubscription(Subscription):
    """A Trigger's consumer group member, with its poll thread.

    :param backend: the Broker's backend.
    :param group: the consumer group, ``knative-trigger-<namespace>-<name>``.
    :param loop: the loop that receives and acknowledges.
    """

    def __init__(self, backend: KafkaBackend, group: str, loop: asyncio.AbstractEventLoop) -> None:
        self.backend = backend
        self.group = group
        self._loop = loop
        # Unbounded as a type, bounded by MAX_UNACKED: the poll thread fetches nothing more
        # while that many records are handed over and not acknowledged.
        self._queue: asyncio.Queue[Received] = asyncio.Queue()
        self._acks: queue.SimpleQueue[_Position] = queue.SimpleQueue()
        self._acked = threading.Event()
        self._stopping = threading.Event()
        # Guards the state below: the poll thread and the consumer's I/O thread (rebalance
        # callbacks) both change it. Never held while calling a blocking consumer method.
        self._lock = threading.Lock()
        self._partitions: dict[TopicPartition, _PartitionState] = {}
        self._epoch = 0
        self._unacked = 0
        self._consumer: KafkaConsumer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Create the consumer, join the group and start the poll thread (blocking).

        :raises BackendError: Kafka cannot be reached.
        """
        try:
            self._consumer = KafkaConsumer(
                **self.backend.client_config(f"knlocal-{self.group}"),
                group_id=self.group,
                # §3.1: manual commits, `latest` for a group without offsets, StickyAssignor.
                enable_auto_commit=False,
                auto_offset_reset="latest",
                partition_assignment_strategy=(StickyPartitionAssignor,),
                max_poll_records=MAX_POLL_RECORDS,
                # A member that died without leaving (kill -9) holds its partitions this long.
                session_timeout_ms=10_000,
                heartbeat_interval_ms=3_000,
            )
        except KafkaError as exc:
            raise BackendError(
                f"cannot reach Kafka at {self.backend.servers} for consumer group {self.group}:"
                f" {exc}"
            ) from exc
        consumer = self._consumer
        consumer.subscribe([self.backend.topic], listener=_CommitOnRevoke(self))
        # Load the topic's partitions now, before the first poll joins the group: joined with
        # no metadata yet, the member gets an empty assignment (the assignor warns) and the
        # metadata that arrives next makes the whole group rebalance once more.
        self.backend.retrying(consumer.topics, f"reading topic {self.backend.topic}")
        self._thread = threading.Thread(target=self._run, name=self.group, daemon=True)
        self._thread.start()

    async def receive(self) -> Received:
        """See :meth:`Subscription.receive`; `ordering_key` is the partition."""
        return await self._queue.get()

    async def ack(self, received: Received) -> None:
        """Queue the acknowledgement for the poll thread, which commits in order."""
        self._acks.put(received.token)
        self._acked.set()

    async def close(self) -> None:
        """Commit what is acknowledged in order, leave the group, stop the poll thread.

        Records not acknowledged stay uncommitted: the group's next member gets them again.
        """
        self._stopping.set()
        self._acked.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)
        self.backend._subscriptions.discard(self)

    # -- the poll thread ------------------------------------------------------------------------

    def _run(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        next_commit = 0.0
        while not self._stopping.is_set():
            try:
                offsets = self._apply_acks()
                if offsets and time.monotonic() >= next_commit:
                    next_commit = time.monotonic() + COMMIT_INTERVAL_SECONDS
                    self._commit(offsets)
                room = MAX_UNACKED - self._unacked
                if room > 0:
                    consumer.resume(*consumer.paused())
                    records = consumer.poll(
                        timeout_ms=POLL_TIMEOUT_MS, max_records=min(room, MAX_POLL_RECORDS)
                    )
                else:
                    # Backpressure: keep polling (group membership) without fetching until the
                    # dispatcher acknowledges some of what it holds.
                    consumer.pause(*consumer.assignment())
                    records = consumer.poll(timeout_ms=0)
                    self._acked.wait(POLL_TIMEOUT_MS / 1000)
                    self._acked.clear()
                self._hand_over(records)
                if records:
                    self._stopping.wait(POLL_BATCH_SECONDS)  # busy: let the next poll batch
            except KafkaError as exc:
                log.warning("%s: Kafka consumer error (%s); retrying", self.group, exc)
                self._stopping.wait(1.0)
            except Exception:
                # A bug must not silently stop the Trigger; what was not acknowledged stays.
                log.exception("%s: poll loop failed; retrying", self.group)
                self._stopping.wait(1.0)
        try:
            self._commit(self._apply_acks())
            consumer.close(autocommit=False, timeout_ms=REQUEST_TIMEOUT_MS)
        except KafkaError as exc:
            log.warning("%s: closing the Kafka consumer failed: %s", self.group, exc)

    def _hand_over(self, records: Mapping[TopicPartition, list[Any]]) -> None:
        """Decode records and queue them for the loop, tracking each as pending."""
        decoded: list[tuple[TopicPartition, int, BaseCloudEvent | None]] = []
        for tp, batch in records.items():
            for record in batch:
                try:
                    event: BaseCloudEvent | None = decode_kafka(
                        record.headers, record.key, record.value
                    )
                except InvalidEvent as exc:
                    # §3.1: Knative's dispatcher discards records that are not CloudEvents.
                    log.warning("%s: skipping %s offset %d: %s", self.group, tp, record.offset, exc)
                    event = None
                decoded.append((tp, record.offset, event))
        received = []
        with self._lock:
            for tp, offset, event in decoded:
                state = self._partitions.get(tp)
                if state is None:
                    # The group's position was this record's offset (or a gap before it).
                    state = _PartitionState(self._epoch, offset, committed=offset)
                    self._partitions[tp] = state
                state.next_offset = offset + 1
                if event is not None:
                    state.pending.add(offset)
                    received.append(
                        Received(event, tp.partition, _Position(tp, offset, state.epoch))
                    )
            self._unacked += len(received)
        if received:
            self._loop.call_soon_threadsafe(self._enqueue, received)

    def _enqueue(self, received: list[Received]) -> None:
        for item in received:
            self._queue.put_nowait(item)

    def _apply_acks(self) -> dict[TopicPartition, OffsetAndMetadata]:
        """Apply queued acknowledgements; return the offsets that can now be committed."""
        with self._lock:
            self._take_acks()
            return self._committable(self._partitions)

    def _take_acks(self) -> None:
        """Apply queued acknowledgements to the partition state (the caller holds the lock)."""
        while True:
            try:
                position = self._acks.get_nowait()
            except queue.Empty:
                return
            state = self._partitions.get(position.partition)
            if state is None or state.epoch != position.epoch:
                continue  # revoked since: the partition's new owner delivers it again
            if position.offset in state.pending:
                state.pending.remove(position.offset)
                self._unacked -= 1

    @staticmethod
    def _committable(
        states: Mapping[TopicPartition, _PartitionState],
    ) -> dict[TopicPartition, OffsetAndMetadata]:
        offsets = {}
        for tp, state in states.items():
            position = state.commit_position()
            if position > state.committed:
                offsets[tp] = OffsetAndMetadata(position, "", -1)
        return offsets

    def _commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        if not offsets:
            return
        assert self._consumer is not None
        try:
            self._consumer.commit(offsets, timeout_ms=REQUEST_TIMEOUT_MS)
        except KafkaError as exc:
            # Kept uncommitted: the next round tries again (or a crash redelivers them).
            log.warning("%s: committing offsets failed (%s); will retry", self.group, exc)
            return
        with self._lock:
            for tp, offset in offsets.items():
                state = self._partitions.get(tp)
                if state is not None:
                    state.committed = max(state.committed, offset.offset)

    def _release(
        self, partitions: Iterable[TopicPartition]
    ) -> dict[TopicPartition, OffsetAndMetadata]:
        """Forget revoked partitions; return their offsets that can still be committed."""
        with self._lock:
            self._take_acks()
            self._epoch += 1
            released = {tp: s for tp in partitions if (s := self._partitions.pop(tp, None))}
            self._unacked -= sum(len(s.pending) for s in released.values())
            return self._committable(released)


class _CommitOnRevoke(AsyncConsumerRebalanceListener):  # type: ignore[misc]
    """On a rebalance, commit what is acknowledged in order before the partitions move.

    kafka-python runs this on the consumer's I/O thread, where blocking calls are forbidden:
    it awaits the asynchronous commit instead.
    """

    def __init__(self, subscription: KafkaSubscription) -> None:
        self.subscription = subscription

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """Commit the revoked partitions' acknowledged prefix, then forget them."""
        offsets = self.subscription._release(revoked)
        consumer = self.subscription._consumer
        if offsets and consumer is not None:
            try:
                await consumer.commit_async(offsets)
            except KafkaError as exc:
                log.warning(
                    "%s: commit on rebalance failed (%s); those records come again",
                    self.subscription.group,
                    exc,
                )

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        """Nothing to do: a partition's state starts with its first record."""

    async def on_partitions_lost(self, lost: set[TopicPartition]) -> None:
        """Forget the partitions without committing: the group already gave them away."""
        self.subscription._release(lost)

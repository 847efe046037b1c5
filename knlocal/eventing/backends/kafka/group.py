"""A Trigger's consumer group member in the Kafka dispatcher process, with its poll thread.

One poll thread per member is the only thread that calls its consumer: it fetches records,
drops those the Trigger's `filter.attributes` cannot match (:mod:`.prefilter`: handled here,
never sent), hands the others to the runtime in one message per poll (undecoded: the runtime
decodes and applies the full filter), applies the
acknowledgements the runtime sends back, and commits in order — only up to the first record not
yet acknowledged, so whatever was not handled comes back after a crash (knative-semantics.md
§3.1, §5). kafka-python's own I/O thread runs the rebalance callbacks. The `rebalance` fault's
rewinds (:meth:`GroupMember.rewind`) run on the poll thread too.
"""

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.subscription_state import AsyncConsumerRebalanceListener
from kafka.coordinator.assignors.sticky.sticky_assignor import StickyPartitionAssignor
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from knlocal.errors import BackendError
from knlocal.eventing.backends.kafka.config import (
    COMMIT_INTERVAL_SECONDS,
    MAX_POLL_RECORDS,
    MAX_UNACKED,
    POLL_BATCH_SECONDS,
    POLL_TIMEOUT_MS,
    PREFILTER_REPORT_SECONDS,
    REQUEST_TIMEOUT_MS,
    client_config,
    retrying,
)
from knlocal.eventing.backends.kafka.prefilter import ADMIT_ALL, Prefilter

log = logging.getLogger("knlocal.eventing")

#: A record as the runtime gets it: partition, offset, assignment epoch, headers, key, value.
Record = tuple[int, int, int, list[tuple[str, bytes]], bytes | None, bytes | None]
#: An acknowledgement from the runtime: partition, offset, assignment epoch.
Ack = tuple[int, int, int]


@dataclass
class PartitionState:
    """What a member tracks of one assigned partition."""

    #: The assignment it was fetched under; acknowledgements from an older one are void.
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


class GroupMember:
    """One consumer of a Trigger's group, handing records to `emit`.

    :param servers: the Kafka address.
    :param topic: the Broker's topic.
    :param group: the consumer group, ``knative-trigger-<namespace>-<name>``.
    :param emit: called from the poll thread with each poll's records handed over, how many of
        them are handed over again after a :meth:`rewind`, and how many records the prefilter
        dropped since the last call (at least every PREFILTER_REPORT_SECONDS while it drops).
    :param prefilter: the Trigger's `filter.attributes`, judged on each record's headers.
    """

    def __init__(
        self,
        servers: str,
        topic: str,
        group: str,
        emit: Callable[[list[Record], int, int], None],
        prefilter: Prefilter = ADMIT_ALL,
    ) -> None:
        self.servers = servers
        self.topic = topic
        self.group = group
        self._emit = emit
        self._prefilter = prefilter
        #: Records the prefilter dropped that the runtime was not told of yet, and when to.
        self._prefiltered = 0
        self._report_at = 0.0
        self._acks: queue.SimpleQueue[Ack] = queue.SimpleQueue()
        self._acked = threading.Event()
        self._stopping = threading.Event()
        # Guards the state below: the poll thread and the consumer's I/O thread (rebalance
        # callbacks) both change it. Never held while calling a blocking consumer method.
        self._lock = threading.Lock()
        self._partitions: dict[int, PartitionState] = {}
        self._epoch = 0
        self._unacked = 0
        #: Rewinds asked by :meth:`rewind`, for the poll thread to do: each one's answer.
        self._rewinds: queue.SimpleQueue[Callable[[int], None]] = queue.SimpleQueue()
        #: Per partition, the offset a rewind went back from: records below it come again.
        self._redeliver_below: dict[int, int] = {}
        self.consumer: KafkaConsumer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Create the consumer, subscribe and start the poll thread (blocking).

        :raises BackendError: Kafka cannot be reached.
        """
        try:
            self.consumer = KafkaConsumer(
                **client_config(self.servers, f"knlocal-{self.group}"),
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
                f"cannot reach Kafka at {self.servers} for consumer group {self.group}: {exc}"
            ) from exc
        consumer = self.consumer
        consumer.subscribe([self.topic], listener=_CommitOnRevoke(self))
        # Load the topic's partitions now, before the first poll joins the group: joined with
        # no metadata yet, the member gets an empty assignment (the assignor warns) and the
        # metadata that arrives next makes the whole group rebalance once more.
        retrying(self.servers, consumer.topics, f"reading topic {self.topic}")
        self._thread = threading.Thread(target=self._run, name=self.group, daemon=True)
        self._thread.start()

    def acknowledge(self, acks: Iterable[Ack]) -> None:
        """Queue acknowledgements for the poll thread (from any thread)."""
        for ack in acks:
            self._acks.put(ack)
        self._acked.set()

    def rewind(self, done: Callable[[int], None]) -> None:
        """Act out a rebalance in which this member loses its partitions and gets them back.

        The `rebalance` fault's hook (knlocal/eventing/faults.py), from any thread. As after a
        member missed its session (`on_partitions_lost`, §3.1), nothing more is committed: the
        poll thread seeks every assigned partition back to its last committed offset, so each
        record handed over since, acknowledged or not, is delivered again; a new epoch voids
        the acknowledgements of the records handed over before.

        :param done: called from the poll thread with how many records come again (0 when the
            member closes first).
        """
        self._rewinds.put(done)
        self._acked.set()  # wakes a poll thread waiting out backpressure

    def close(self) -> None:
        """Commit what is acknowledged in order, leave the group, stop the poll thread.

        Records not acknowledged stay uncommitted: the group's next member gets them again.
        """
        self._stopping.set()
        self._acked.set()
        if self._thread is not None:
            self._thread.join()
        while not self._rewinds.empty():
            self._rewinds.get_nowait()(0)  # not done: the group's next member redelivers

    # -- the poll thread ------------------------------------------------------------------------

    def _run(self) -> None:
        consumer = self.consumer
        assert consumer is not None
        next_commit = 0.0
        while not self._stopping.is_set():
            try:
                self._serve_rewinds(consumer)
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
                    # runtime acknowledges some of what it holds.
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
        if self._prefiltered:
            self._report([], 0)
        try:
            self._commit(self._apply_acks())
            consumer.close(autocommit=False, timeout_ms=REQUEST_TIMEOUT_MS)
        except KafkaError as exc:
            log.warning("%s: closing the Kafka consumer failed: %s", self.group, exc)

    def _serve_rewinds(self, consumer: KafkaConsumer) -> None:
        """Do the rewinds :meth:`rewind` asked for."""
        while not self._rewinds.empty():
            done = self._rewinds.get_nowait()
            rewound = 0
            for partition, state in self._forget(consumer.assignment()).items():
                with contextlib.suppress(ValueError):  # revoked meanwhile: its owner redelivers
                    consumer.seek(TopicPartition(self.topic, partition), state.committed)
                    self._redeliver_below[partition] = state.next_offset
                    rewound += state.next_offset - state.committed
            done(rewound)

    def _hand_over(self, records: Mapping[TopicPartition, list[Any]]) -> None:
        """Track each record the prefilter admits as pending and send them all to the runtime
        at once; a record it drops is handled here: never pending, so commits pass it."""
        handed: list[Record] = []
        again = 0
        dropped = 0
        with self._lock:
            for tp, batch in records.items():
                state = self._partitions.get(tp.partition)
                for record in batch:
                    if state is None:
                        # The group's position was this record's offset (or a gap before it).
                        state = PartitionState(self._epoch, record.offset, committed=record.offset)
                        self._partitions[tp.partition] = state
                    state.next_offset = record.offset + 1
                    if not self._prefilter.admits(record.headers, record.key):
                        dropped += 1
                        continue
                    state.pending.add(record.offset)
                    if record.offset < self._redeliver_below.get(tp.partition, -1):
                        again += 1
                    handed.append(
                        (tp.partition, record.offset, state.epoch, record.headers, record.key,
                         record.value)
                    )  # fmt: skip
            self._unacked += len(handed)
        self._prefiltered += dropped
        if handed or (self._prefiltered and time.monotonic() >= self._report_at):
            self._report(handed, again)

    def _report(self, handed: list[Record], again: int) -> None:
        """Emit `handed` with the count of records prefiltered since the last report."""
        prefiltered, self._prefiltered = self._prefiltered, 0
        self._report_at = time.monotonic() + PREFILTER_REPORT_SECONDS
        self._emit(handed, again, prefiltered)

    def _apply_acks(self) -> dict[TopicPartition, OffsetAndMetadata]:
        """Apply queued acknowledgements; return the offsets that can now be committed."""
        with self._lock:
            self._take_acks()
            return self._committable(self._partitions)

    def _take_acks(self) -> None:
        """Apply queued acknowledgements to the partition state (the caller holds the lock)."""
        while True:
            try:
                partition, offset, epoch = self._acks.get_nowait()
            except queue.Empty:
                return
            state = self._partitions.get(partition)
            if state is None or state.epoch != epoch:
                continue  # revoked since: the partition's new owner delivers it again
            if offset in state.pending:
                state.pending.remove(offset)
                self._unacked -= 1

    def _committable(
        self, states: Mapping[int, PartitionState]
    ) -> dict[TopicPartition, OffsetAndMetadata]:
        offsets = {}
        for partition, state in states.items():
            position = state.commit_position()
            if position > state.committed:
                offsets[TopicPartition(self.topic, partition)] = OffsetAndMetadata(position, "", -1)
        return offsets

    def _commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        if not offsets:
            return
        assert self.consumer is not None
        try:
            self.consumer.commit(offsets, timeout_ms=REQUEST_TIMEOUT_MS)
        except KafkaError as exc:
            # Kept uncommitted: the next round tries again (or a crash redelivers them).
            log.warning("%s: committing offsets failed (%s); will retry", self.group, exc)
            return
        with self._lock:
            for tp, offset in offsets.items():
                state = self._partitions.get(tp.partition)
                if state is not None:
                    state.committed = max(state.committed, offset.offset)

    def release(
        self, partitions: Iterable[TopicPartition]
    ) -> dict[TopicPartition, OffsetAndMetadata]:
        """Forget revoked partitions; return their offsets that can still be committed."""
        return self._committable(self._forget(partitions))

    def _forget(self, partitions: Iterable[TopicPartition]) -> dict[int, PartitionState]:
        """Drop the state of `partitions` (a new epoch voids their pending acks); return it."""
        with self._lock:
            self._take_acks()
            self._epoch += 1
            forgotten = {
                tp.partition: s
                for tp in partitions
                if (s := self._partitions.pop(tp.partition, None))
            }
            self._unacked -= sum(len(s.pending) for s in forgotten.values())
            return forgotten


class _CommitOnRevoke(AsyncConsumerRebalanceListener):  # type: ignore[misc]
    """On a rebalance, commit what is acknowledged in order before the partitions move.

    kafka-python runs this on the consumer's I/O thread, where blocking calls are forbidden:
    it awaits the asynchronous commit instead.
    """

    def __init__(self, member: GroupMember) -> None:
        self.member = member

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """Commit the revoked partitions' acknowledged prefix, then forget them."""
        offsets = self.member.release(revoked)
        consumer = self.member.consumer
        if offsets and consumer is not None:
            try:
                await consumer.commit_async(offsets)
            except KafkaError as exc:
                log.warning(
                    "%s: commit on rebalance failed (%s); those records come again",
                    self.member.group,
                    exc,
                )

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        """Nothing to do: a partition's state starts with its first record."""

    async def on_partitions_lost(self, lost: set[TopicPartition]) -> None:
        """Forget the partitions without committing: the group already gave them away."""
        self.member.release(lost)

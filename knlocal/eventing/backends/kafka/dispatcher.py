"""The Kafka dispatcher process: the Triggers' consumer groups, as Knative's
`kafka-broker-dispatcher`.

`python -m knlocal.eventing.backends.kafka.dispatcher <fd>`, started by the runtime
(:mod:`knlocal.eventing.backends.kafka.supervisor`). For each subscription the runtime opens it
joins the Trigger's consumer group (a new group starts at the end of the topic, §3.1), drops
the records the Trigger's `filter.attributes` cannot match (as Knative's dispatcher filters
before delivering, §3.1; :mod:`knlocal.eventing.backends.kafka.prefilter`), hands the others
to the runtime, which applies the full filter, delivers and dead-letters them
(:mod:`knlocal.eventing.dispatcher`, the one copy of Knative's delivery rules for every
backend), and commits the offsets the runtime acknowledges, in order
(:mod:`knlocal.eventing.backends.kafka.group`).

Threads: the main thread reads the runtime's frames and routes acknowledgements and the
`rebalance` fault's rewinds to the members;
opening and closing a member run on threads of their own (each waits for Kafka); each member
has its poll thread, which sends its records to the runtime, one frame per poll.
"""

import logging
import sys
import threading
from collections.abc import Callable

from kafka import KafkaAdminClient, TopicPartition
from kafka.admin import OffsetSpec
from kafka.errors import KafkaError, NoError

from knlocal.errors import BackendError
from knlocal.eventing.backends.kafka.config import client_config, connect_any, retrying
from knlocal.eventing.backends.kafka.group import GroupMember, Record
from knlocal.eventing.backends.kafka.prefilter import Prefilter
from knlocal.eventing.backends.kafka.wire import Channel, Message, run_process

log = logging.getLogger("knlocal.eventing")


class GroupStarter:
    """Sets where new consumer groups start; one admin request at a time.

    :param admin: the admin client.
    :param servers: the Kafka address, for messages.
    :param partitions: the topic's partitions.
    """

    def __init__(self, admin: KafkaAdminClient, servers: str, partitions: list[TopicPartition]):
        self.admin = admin
        self.servers = servers
        self.partitions = partitions
        self._lock = threading.Lock()

    def start_new_group_at_end(self, group: str) -> None:
        """A new group starts at the end of the topic, as a new Trigger does in Knative (§3.1,
        `auto.offset.reset=latest`, offsets initialized by the controller): the end offsets are
        committed now, so an event published right after the runtime subscribed is delivered
        even though the consumer joins the group later. An existing group resumes where it
        committed.

        :raises BackendError: Kafka refused to set the group's starting offsets.
        """
        with self._lock:
            committed = retrying(
                self.servers,
                lambda: self.admin.list_group_offsets({group: self.partitions})[group],
                f"reading the offsets of consumer group {group}",
            )
            new = {
                tp: OffsetSpec.LATEST
                for tp in self.partitions
                if tp not in committed or committed[tp].offset < 0
            }
            if not new:
                return
            results = retrying(
                self.servers,
                lambda: self.admin.reset_group_offsets(group, new),
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


class Dispatcher:
    """The members this process runs, by the runtime's subscription number.

    :param channel: the link to the runtime.
    :param servers: the Kafka address.
    :param topic: the Broker's topic.
    :param starter: sets new groups' starting offsets.
    """

    def __init__(self, channel: Channel, servers: str, topic: str, starter: GroupStarter) -> None:
        self.channel = channel
        self.servers = servers
        self.topic = topic
        self.starter = starter
        self.members: dict[int, GroupMember] = {}

    def handle(self, message: Message) -> bool:
        """Act on one message of the runtime; False once asked to shut down."""
        kind = message[0]
        if kind == "acks":
            member = self.members.get(message[1])
            if member is not None:
                member.acknowledge(message[2])
        elif kind == "rewind":
            self._rewind(message[1], message[2])
        elif kind == "subscribe":
            _in_thread(self._subscribe, message[1], message[2], message[3])
        elif kind == "close":
            _in_thread(self._close, message[1])
        elif kind == "shutdown":
            self.shutdown()
            return False
        return True

    def _rewind(self, request: int, ident: int) -> None:
        """Have member `ident` act out a rebalance; answer how many records come again."""

        def done(rewound: int) -> None:
            self.channel.send([("rewound", request, rewound)])

        member = self.members.get(ident)
        if member is None:
            done(0)  # not joined (again) yet: nothing was handed over
        else:
            member.rewind(done)

    def _subscribe(self, ident: int, group: str, attributes: dict[str, str]) -> None:
        def emit(records: list[Record], again: int, prefiltered: int) -> None:
            self.channel.send([("records", ident, records, again, prefiltered)])

        member = GroupMember(self.servers, self.topic, group, emit, Prefilter.of(attributes))
        try:
            self.starter.start_new_group_at_end(group)
            self.members[ident] = member
            member.start()
        except BackendError as exc:
            self.members.pop(ident, None)
            member.close()  # answers the rewinds asked meanwhile
            self.channel.send([("subscribed", ident, str(exc))])
            return
        self.channel.send([("subscribed", ident, None)])

    def _close(self, ident: int) -> None:
        member = self.members.pop(ident, None)
        if member is not None:
            member.close()
        self.channel.send([("closed", ident)])

    def shutdown(self) -> None:
        """Close every member at once (each may wait for Kafka to commit and leave)."""
        closing = [_in_thread(m.close) for m in self.members.values()]
        for thread in closing:
            thread.join()
        self.members.clear()


def _in_thread(target: Callable[..., None], *args: object) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


def serve(channel: Channel, opening: Message) -> int:
    """Open as `opening` says, then run members until the runtime shuts down or goes away."""
    _, servers, topic, partitions = opening
    try:
        connect_any(servers)
        admin = KafkaAdminClient(**client_config(servers, f"knlocal-dispatcher-{topic}"))
    except (OSError, KafkaError) as exc:
        channel.send([("failed", f"cannot reach Kafka at {servers} ({exc})")])
        return 1
    starter = GroupStarter(admin, servers, [TopicPartition(topic, p) for p in partitions])
    dispatcher = Dispatcher(channel, servers, topic, starter)
    channel.send([("opened",)])
    running = True
    while running and (messages := channel.receive()) is not None:
        for message in messages:
            running = running and dispatcher.handle(message)
    if running:
        # The runtime is gone: commit what it acknowledged and leave the groups, so that the
        # next runtime's members get the partitions without waiting for the session timeout.
        dispatcher.shutdown()
    admin.close()
    return 0


if __name__ == "__main__":
    sys.exit(run_process(sys.argv, serve))

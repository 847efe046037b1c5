"""The Kafka backend against a real Kafka: what is Kafka-specific (knative-semantics.md §3.1).

What every backend must do is in tests/conformance/test_broker_backends.py. Here: the topic and
its settings, the records as an independent Kafka client sees them, where a new consumer group
starts, offsets committed only over an acknowledged prefix (also across a rebalance), the bound
on unacknowledged records, and the errors a user gets for a bad ConfigMap or an absent Kafka.

Each test uses a Broker of its own (so a topic of its own) on the shared Kafka (`make kafka`) and
deletes its topic and groups afterwards.
"""

import asyncio
import os
import signal
import threading
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import pytest
from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType

from knlocal.apis.eventing import Broker
from knlocal.errors import BackendError, ConfigError
from knlocal.eventing.backends.base import Received, Subscription
from knlocal.eventing.backends.kafka import MAX_UNACKED, KafkaBackend, topic_name
from knlocal.eventing.backends.kafka.supervisor import DataPlaneProcess
from knlocal.eventing.classes import KAFKA_BROKER
from knlocal.eventing.delivery import ObjectRef
from knlocal.process import free_port
from knlocal.settings import Settings
from tests.servers import drop_kafka, require_kafka

NAMESPACE = "default"
#: The Broker's `spec.config`: the ConfigMap of its topic settings.
CONFIG_REF = ObjectRef("v1", "ConfigMap", "kafka-broker-config", NAMESPACE)
#: The brokers/kafka/ ConfigMap's topic settings, with fewer partitions where a test needs
#: events spread over them.
CONFIG = {"default.topic.partitions": "3", "default.topic.replication.factor": "1"}
WAIT_SECONDS = 20.0


def event(event_id: str, data: dict[str, Any] | None = None, **extensions: str) -> CloudEvent:
    """A CloudEvent as a producer would send it."""
    attributes = {"id": event_id, "source": "/kafka-test", "type": "dev.test.a", **extensions}
    if data is not None:
        attributes["datacontenttype"] = "application/json"
    return CloudEvent(attributes, data)


@pytest.fixture
def settings() -> Settings:
    """The runtime's settings, with the shared Kafka running."""
    return require_kafka()


@pytest.fixture
def broker(settings: Settings) -> Iterator[Broker]:
    """A Broker of this test's own; its topic and the test's groups are deleted afterwards."""
    name = f"kafka-test-{uuid.uuid4().hex[:10]}"
    broker = Broker(name, NAMESPACE, KAFKA_BROKER, CONFIG_REF, None)
    yield broker
    drop_kafka(settings.kafka_bootstrap_servers, [topic_name(broker)], [group(broker, "a")])


def group(broker: Broker, trigger: str) -> str:
    """The consumer group of a Trigger of `broker` (§3.1)."""
    return f"knative-trigger-{NAMESPACE}-{broker.name}-{trigger}"


@asynccontextmanager
async def opened(
    broker: Broker, settings: Settings, config: Mapping[str, str] = CONFIG
) -> AsyncIterator[KafkaBackend]:
    """An open backend, closed afterwards."""
    backend = KafkaBackend(broker, config, settings)
    await backend.open()
    try:
        yield backend
    finally:
        await backend.close()


async def receive(subscription: Subscription, count: int) -> list[Received]:
    """Receive `count` events (bounded wait)."""
    return [await asyncio.wait_for(subscription.receive(), WAIT_SECONDS) for _ in range(count)]


async def nothing_more(subscription: Subscription, seconds: float = 1.5) -> None:
    """Assert no event arrives within `seconds`."""
    with pytest.raises(TimeoutError):
        extra = await asyncio.wait_for(subscription.receive(), seconds)
        pytest.fail(f"unexpected event {extra.event.get_id()}")


def committed(settings: Settings, group_id: str, partition: TopicPartition) -> int:
    """The offset `group_id` committed for `partition` (-1: none), read by a separate client."""
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    try:
        offsets = admin.list_group_offsets({group_id: [partition]})[group_id]
    finally:
        admin.close()
    offset: int = offsets[partition].offset
    return offset


async def committed_becomes(
    settings: Settings, group_id: str, partition: TopicPartition, wanted: int
) -> None:
    """Wait until the group's committed offset is `wanted` (the poll thread commits in rounds)."""
    deadline = asyncio.get_running_loop().time() + WAIT_SECONDS
    while (found := await asyncio.to_thread(committed, settings, group_id, partition)) != wanted:
        assert asyncio.get_running_loop().time() < deadline, f"committed {found}, not {wanted}"
        await asyncio.sleep(0.1)


@pytest.mark.kafka
def test_s3_1_topic_is_created_with_the_configmap_settings(
    broker: Broker, settings: Settings
) -> None:
    """`knative-broker-<ns>-<name>`, partitions, replication and `default.topic.config.*`."""
    config = {**CONFIG, "default.topic.config.retention.ms": "3600000"}

    async def scenario() -> None:
        async with opened(broker, settings, config) as backend:
            assert backend.topic == f"knative-broker-{NAMESPACE}-{broker.name}"

    asyncio.run(scenario())
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    try:
        [described] = admin.describe_topics([topic_name(broker)])
        resource = ConfigResource(ConfigResourceType.TOPIC, topic_name(broker))
        # Only settings that differ from the broker's defaults are listed.
        modified = admin.describe_configs([resource])["topic"][topic_name(broker)]
    finally:
        admin.close()
    partitions = described["partitions"]
    assert len(partitions) == 3
    assert {len(p["replica_nodes"]) for p in partitions} == {1}
    assert modified["retention.ms"]["value"] == "3600000"


@pytest.mark.kafka
def test_s3_1_records_are_binary_mode_cloudevents_for_an_independent_consumer(
    broker: Broker, settings: Settings
) -> None:
    """Read back with plain kafka-python and the SDK's Kafka binding: `ce_` headers, key, data."""
    sent = [
        event("with-key", {"name": "Ada"}, partitionkey="user-1", color="blue"),
        event("no-key", {"name": "Grace", "n": [1, 2]}),
        event("no-data"),
    ]

    async def scenario() -> None:
        async with opened(broker, settings) as backend:
            for item in sent:
                await backend.publish(item)

    asyncio.run(scenario())
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=5000,
    )
    consumer.assign([TopicPartition(topic_name(broker), p) for p in range(3)])
    try:
        records = {}
        for record in consumer:
            headers = dict(record.headers)
            records[headers["ce_id"].decode()] = record
            if len(records) == len(sent):
                break
    finally:
        consumer.close()
    assert sorted(records) == sorted(e.get_id() for e in sent)
    for original in sent:
        record = records[original.get_id()]
        headers = dict(record.headers)
        # Binary content mode (§3.1): every attribute a `ce_` header, no structured envelope.
        assert {"ce_specversion", "ce_id", "ce_source", "ce_type"} <= set(headers)
        assert headers["ce_specversion"] == b"1.0"
        assert all(name.startswith("ce_") or name == "content-type" for name in headers)
        message = ce_kafka.KafkaMessage(headers=headers, key=record.key, value=record.value)
        decoded = ce_kafka.from_binary(message, JSONFormat())
        assert decoded.get_id() == original.get_id()
        assert decoded.get_type() == original.get_type()
        assert decoded.get_data() == original.get_data()
        if original.get_data() is not None:
            assert headers["content-type"] == b"application/json"
            assert record.value is not None
    keyed = records["with-key"]
    assert keyed.key == b"user-1"  # the `partitionkey` extension is the record key
    assert dict(keyed.headers)["ce_color"] == b"blue"
    assert records["no-key"].key is None


@pytest.mark.kafka
def test_s3_1_new_group_starts_at_the_end_and_misses_nothing_after_subscribe(
    broker: Broker, settings: Settings
) -> None:
    """A new Trigger skips what was stored before it; it gets what is published right after."""

    async def scenario() -> None:
        async with opened(broker, settings) as backend:
            await backend.publish(event("before"))
            subscription = await backend.subscribe(group(broker, "a"), ordered=False)
            await backend.publish(event("after"))  # before the consumer has even joined
            [received] = await receive(subscription, 1)
            assert received.event.get_id() == "after"
            await subscription.ack(received)
            await nothing_more(subscription)
        leftovers = [t.name for t in threading.enumerate() if broker.name in t.name]
        assert leftovers == [], "close() must stop every thread of the backend"

    asyncio.run(scenario())


@pytest.mark.kafka
def test_s3_1_offsets_are_committed_only_over_the_acknowledged_prefix(
    broker: Broker, settings: Settings
) -> None:
    """Acks out of order commit nothing past the first unacknowledged record (§3.1)."""

    async def scenario() -> None:
        async with opened(broker, settings) as backend:
            subscription = await backend.subscribe(group(broker, "a"), ordered=False)
            for i in range(5):
                await backend.publish(event(f"e{i}", partitionkey="same"))
            received = await receive(subscription, 5)
            assert [r.event.get_id() for r in received] == [f"e{i}" for i in range(5)]
            # One partition key, one partition: the ordering key is that partition.
            assert len({r.ordering_key for r in received}) == 1
            partition = TopicPartition(backend.topic, received[0].ordering_key)
            first = await asyncio.to_thread(committed, settings, group(broker, "a"), partition)
            for index in (1, 2, 4):
                await subscription.ack(received[index])
            await asyncio.sleep(0.5)  # several commit rounds
            assert (
                await asyncio.to_thread(committed, settings, group(broker, "a"), partition) == first
            )
            await subscription.ack(received[0])  # e0..e2 acknowledged: commit up to e3
            await committed_becomes(settings, group(broker, "a"), partition, first + 3)
            await subscription.ack(received[3])  # all acknowledged
            await committed_becomes(settings, group(broker, "a"), partition, first + 5)

    asyncio.run(scenario())


@pytest.mark.kafka
def test_s3_1_rebalance_commits_the_acknowledged_prefix_and_redelivers_the_rest(
    broker: Broker, settings: Settings
) -> None:
    """A second member joins: what the first acknowledged is not delivered again; the rest is."""

    async def scenario() -> None:
        async with opened(broker, settings) as backend:
            first = await backend.subscribe(group(broker, "a"), ordered=False)
            for i in range(4):
                await backend.publish(event(f"e{i}", partitionkey="same"))
            received = await receive(first, 4)
            await first.ack(received[0])
            await first.ack(received[1])
            await asyncio.sleep(0.5)  # the acknowledgements reach the poll thread
            second = await backend.subscribe(group(broker, "a"), ordered=False)
            again: list[str] = []

            async def collect(subscription: Subscription) -> None:
                while True:
                    item = await subscription.receive()
                    again.append(item.event.get_id())
                    await subscription.ack(item)

            collectors = [asyncio.create_task(collect(s)) for s in (first, second)]
            try:
                await asyncio.sleep(0)
                deadline = asyncio.get_running_loop().time() + WAIT_SECONDS
                while sorted(again) != ["e2", "e3"]:
                    assert asyncio.get_running_loop().time() < deadline, again
                    await asyncio.sleep(0.1)
                await asyncio.sleep(1.5)
                assert sorted(again) == ["e2", "e3"]
            finally:
                for collector in collectors:
                    collector.cancel()

    asyncio.run(scenario())


@pytest.mark.kafka
def test_unacknowledged_records_are_bounded(broker: Broker, settings: Settings) -> None:
    """At MAX_UNACKED records handed over and not acked, fetching stops until acks come back."""

    async def scenario() -> None:
        async with opened(broker, settings) as backend:
            subscription = await backend.subscribe(group(broker, "a"), ordered=False)
            await asyncio.gather(
                *(backend.publish(event(f"e{i}")) for i in range(MAX_UNACKED + 50))
            )
            held = await receive(subscription, MAX_UNACKED)
            await nothing_more(subscription)
            for item in held[:50]:
                await subscription.ack(item)
            await receive(subscription, 50)
            await nothing_more(subscription)

    asyncio.run(scenario())


def test_unreachable_kafka_names_the_address_and_how_to_start_it() -> None:
    """No Kafka: a BackendError saying where it was looked for and to run `make kafka`."""
    address = f"127.0.0.1:{free_port()}"
    broker = Broker("default", NAMESPACE, KAFKA_BROKER, CONFIG_REF, None)
    backend = KafkaBackend(broker, CONFIG, Settings(kafka_bootstrap_servers=address))
    with pytest.raises(BackendError) as raised:
        asyncio.run(backend.open())
    assert address in str(raised.value)
    assert "make kafka" in str(raised.value)


@pytest.mark.parametrize(
    ("config", "found"),
    [
        ({"default.topic.replication.factor": "1"}, "default.topic.partitions"),
        ({**CONFIG, "default.topic.partitions": "ten"}, "'ten'"),
        ({**CONFIG, "default.topic.replication.factor": "0"}, "'0'"),
    ],
    ids=["missing", "not-a-number", "zero"],
)
def test_configmap_topic_settings_must_be_positive_numbers(
    config: Mapping[str, str], found: str
) -> None:
    """A bad `kafka-broker-config` fails at start, naming the ConfigMap, the key and the value."""
    broker = Broker("default", NAMESPACE, KAFKA_BROKER, CONFIG_REF, None)
    backend = KafkaBackend(broker, config, Settings(kafka_bootstrap_servers="127.0.0.1:1"))
    with pytest.raises(ConfigError) as raised:
        asyncio.run(backend.open())
    assert "kafka-broker-config" in str(raised.value)
    assert found in str(raised.value)


@pytest.mark.kafka
def test_data_plane_processes_killed_are_restarted_and_redeliver_what_was_not_acknowledged(
    broker: Broker, settings: Settings
) -> None:
    """SIGKILL of the dispatcher: started again, its group redelivers the unacknowledged record
    (after the dead member's session timeout); SIGKILL of the receiver: a publish waiting on it
    fails (the ingress's 503), and publishing works again once it is back (§3.1, §5)."""

    async def back(process: DataPlaneProcess, before: int) -> None:
        deadline = asyncio.get_running_loop().time() + 40
        while not (process.running and process.incarnation > before):
            assert asyncio.get_running_loop().time() < deadline, f"{process.what} not restarted"
            await asyncio.sleep(0.1)

    async def scenario() -> None:
        async with opened(broker, settings) as backend:
            subscription = await backend.subscribe(group(broker, "a"), ordered=False)
            await backend.publish(event("e1"))
            [first] = await receive(subscription, 1)
            assert backend.dispatcher.process is not None
            os.kill(backend.dispatcher.process.pid, signal.SIGKILL)
            await back(backend.dispatcher, 1)
            await subscription.ack(first)  # handed out by the dead process: void
            again = await asyncio.wait_for(subscription.receive(), 40)
            assert again.event.get_id() == "e1"
            await subscription.ack(again)
            assert backend.receiver.process is not None
            os.kill(backend.receiver.process.pid, signal.SIGKILL)
            with pytest.raises(BackendError):
                await backend.publish(event("while-down"))
            await back(backend.receiver, 1)
            await backend.publish(event("e2"))
            received = await asyncio.wait_for(subscription.receive(), 40)
            # "while-down" may or may not have been stored before the kill: at most once more.
            while received.event.get_id() == "while-down":
                received = await asyncio.wait_for(subscription.receive(), 40)
            assert received.event.get_id() == "e2"

    asyncio.run(scenario())

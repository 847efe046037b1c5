"""The Kafka dispatcher's prefilter against the full filter, over tricky records (no server).

The prefilter (knlocal/eventing/backends/kafka/prefilter.py) drops in the dispatcher process the
records a Trigger's `filter.attributes` cannot match, as Knative's dispatcher filters before it
delivers (knative-semantics.md §3.1, `RecordDispatcherImpl.java`). It must never drop what the
runtime's full filter (§2.3, knlocal/eventing/filters.py) would accept, under either class's
rules: every record below is decoded as the runtime decodes it and filtered by both classes.
The last tests run the prefilter in the dispatcher process on the shared Kafka (as
test_kafka.py: a Broker of their own, deleted after): ordered commits pass the records it drops.
"""

import asyncio
from typing import Any

import pytest
from cloudevents.core.v1.event import CloudEvent
from kafka import TopicPartition

from knlocal.apis.classes import KAFKA_BROKER, MT_CHANNEL_BASED_BROKER
from knlocal.apis.eventing import Broker
from knlocal.apis.filters import TriggerFilters
from knlocal.eventing.backends.kafka import KafkaSubscription
from knlocal.eventing.backends.kafka.prefilter import Prefilter
from knlocal.eventing.events import InvalidEvent, decode_kafka, encode_kafka
from knlocal.eventing.filters import FilterResult, build_trigger_filter
from knlocal.settings import Settings
from tests.knlocal.eventing.backends.test_kafka import (
    WAIT_SECONDS,
    broker,
    committed_becomes,
    event,
    group,
    nothing_more,
    opened,
    receive,
    settings,
)

__all__ = ["broker", "settings"]  # fixtures

Record = tuple[list[tuple[str, Any]], bytes | None, bytes | None]

REQUIRED = [("ce_specversion", b"1.0"), ("ce_id", b"1"), ("ce_source", b"/s"), ("ce_type", b"t")]


def encoded(**extra: Any) -> Record:
    """An SDK event (type t, source /s, id 1) as the Kafka backend publishes it."""
    return encode_kafka(CloudEvent({"type": "t", "source": "/s", "id": "1", **extra}, None))


RECORDS: dict[str, Record] = {
    "non-string extensions": encoded(
        myext="v", num=5, flag=True, ratio=1.5, partitionkey="k", subject="sub"
    ),
    "datacontenttype with parameters": (
        [*REQUIRED, ("content-type", b"text/plain; charset=utf-8")],
        None,
        b"hi",
    ),
    "upper-case header names": (
        [("CE_Type", b"t"), ("ce_source", b"/s"), ("Ce_Id", b"1"), ("Content-Type", b"text/x")],
        None,
        b"x",
    ),
    "duplicate header: the last wins": ([*REQUIRED, ("ce_type", b"x")], None, None),
    "names equal once lowercased: the later wins": (
        [*REQUIRED, ("CE_TYPE", b"x")],
        None,
        None,
    ),
    "ce_datacontenttype and content-type": (
        [*REQUIRED, ("content-type", b"text/a"), ("ce_datacontenttype", b"text/b")],
        None,
        b"x",
    ),
    "key over ce_partitionkey": ([*REQUIRED, ("ce_partitionkey", b"other")], b"k", None),
    "ce_partitionkey without key": ([*REQUIRED, ("ce_partitionkey", b"k")], None, None),
    "no specversion nor id: filled in": (
        [("ce_source", b"/s"), ("ce_type", b"t")],
        None,
        None,
    ),
    "not UTF-8": ([*REQUIRED, ("ce_myext", b"\xff")], None, None),
    "header without a value": ([*REQUIRED, ("ce_myext", None)], None, None),
    "percent sign kept as is": ([*REQUIRED, ("ce_myext", b"a%20b")], None, None),
    "non-ASCII value": ([*REQUIRED, ("ce_myext", "é".encode())], None, None),
    "empty extension": ([*REQUIRED, ("ce_myext", b"")], None, None),
    "empty subject: invalid": ([*REQUIRED, ("ce_subject", b"")], None, None),
    "CloudEvents 0.3": (
        [("ce_specversion", b"0.3"), *REQUIRED[1:], ("ce_schemaurl", b"http://s")],
        None,
        None,
    ),
    "structured mode": (
        [("content-type", b"application/cloudevents+json")],
        None,
        b'{"specversion": "1.0", "id": "1", "source": "/s", "type": "t", "myext": "v"}',
    ),
    "with a time": encoded(time=CloudEvent({"type": "t", "source": "/s"}).get_time()),
}

FILTERS: list[dict[str, str]] = [
    {"type": "t"},
    {"type": "x"},
    {"type": "T"},
    {"Type": "t"},
    {"myext": "v"},
    {"myext": ""},
    {"myext": "a b"},
    {"myext": "a%20b"},
    {"myext": "é"},
    {"missing": "x"},
    {"missing": ""},
    {"num": "5"},
    {"flag": "true"},
    {"flag": "True"},
    {"ratio": "1.5"},
    {"subject": "sub"},
    {"datacontenttype": "text/plain; charset=utf-8"},
    {"datacontenttype": "text/b"},
    {"datacontenttype": "text/x"},
    {"datamediatype": "text/plain"},
    {"partitionkey": "k"},
    {"partitionkey": "other"},
    {"specversion": "1.0"},
    {"specversion": "0.3"},
    {"id": "1"},
    {"id": "2"},
    {"schemaurl": "http://s"},
    {"dataschema": "http://s"},
    {"time": "2024-01-02T03:04:05Z"},
    {"type": "t", "myext": "nope"},
    {"source": "/s", "type": "t"},
]


def full_filter_accepts(attributes: dict[str, str], record: Record) -> bool:
    """Whether the runtime delivers the record's event to a Trigger with these attributes,
    under either class (a record that does not decode is skipped: never delivered)."""
    try:
        event = decode_kafka(*record)
    except InvalidEvent:
        return False
    filters = TriggerFilters(attributes=attributes)
    return any(
        build_trigger_filter(filters, broker_class).evaluate(event.get_attributes())
        is not FilterResult.FAIL
        for broker_class in (KAFKA_BROKER, MT_CHANNEL_BASED_BROKER)
    )


@pytest.mark.parametrize("record", RECORDS.values(), ids=RECORDS.keys())
@pytest.mark.parametrize("attributes", FILTERS, ids=str)
def test_s3_1_the_prefilter_never_drops_what_the_full_filter_accepts(
    attributes: dict[str, str], record: Record
) -> None:
    if full_filter_accepts(attributes, record):
        assert Prefilter.of(attributes).admits(record[0], record[1])


# (filter.attributes, record, admitted): what the prefilter decides, so that it does drop.
DECISIONS = [
    ({"type": "t"}, "non-string extensions", True),
    ({"type": "x"}, "non-string extensions", False),
    ({"type": "T"}, "non-string extensions", False),
    ({"Type": "t"}, "non-string extensions", False),
    ({"num": "5"}, "non-string extensions", True),
    ({"flag": "true"}, "non-string extensions", True),
    ({"flag": "True"}, "non-string extensions", False),
    ({"missing": "x"}, "non-string extensions", False),
    ({"missing": ""}, "non-string extensions", True),
    ({"type": "t", "myext": "nope"}, "non-string extensions", False),
    ({"type": "t"}, "upper-case header names", True),
    ({"datacontenttype": "text/x"}, "upper-case header names", True),
    ({"type": "t"}, "duplicate header: the last wins", False),
    ({"type": "x"}, "names equal once lowercased: the later wins", True),
    ({"datacontenttype": "text/b"}, "ce_datacontenttype and content-type", True),
    ({"partitionkey": "k"}, "key over ce_partitionkey", True),
    ({"partitionkey": "other"}, "key over ce_partitionkey", False),
    ({"specversion": "1.0"}, "no specversion nor id: filled in", True),
    ({"id": "2"}, "no specversion nor id: filled in", True),
    ({"myext": "a b"}, "percent sign kept as is", False),
    ({"myext": "a%20b"}, "percent sign kept as is", True),
    ({"myext": "é"}, "non-ASCII value", True),
    ({"myext": "x"}, "structured mode", True),
    ({"time": "2024-01-02T03:04:05Z"}, "with a time", True),
]


@pytest.mark.parametrize(("attributes", "name", "admitted"), DECISIONS, ids=str)
def test_s3_1_the_prefilter_drops_records_its_headers_refute(
    attributes: dict[str, str], name: str, admitted: bool
) -> None:
    headers, key, _ = RECORDS[name]
    assert Prefilter.of(attributes).admits(headers, key) is admitted


def test_without_filter_attributes_every_record_is_admitted() -> None:
    assert all(Prefilter.of({}).admits(h, k) for h, k, _ in RECORDS.values())


# --- In the dispatcher process, against the shared Kafka ------------------------------------

WANTED = {"type": "dev.test.wanted"}


async def prefiltered_becomes(subscription: KafkaSubscription, wanted: int) -> None:
    """Wait until the dispatcher reported `wanted` prefiltered records (it reports in rounds)."""
    deadline = asyncio.get_running_loop().time() + WAIT_SECONDS
    while subscription.prefiltered != wanted:
        assert asyncio.get_running_loop().time() < deadline, subscription.prefiltered
        await asyncio.sleep(0.1)


@pytest.mark.kafka
def test_s3_1_records_the_filter_refutes_never_reach_the_runtime_and_are_committed_in_order(
    broker: Broker, settings: Settings
) -> None:
    """o0, w1, o2 on one partition, the Trigger wants w: only w1 is handed over, o0 and o2 are
    counted; the commit passes o0 at once, and o2 only once w1 is acknowledged."""

    async def scenario() -> None:
        async with opened(broker, settings) as backend:
            subscription = await backend.subscribe(group(broker, "a"), False, WANTED)
            assert isinstance(subscription, KafkaSubscription)
            for i, kind in enumerate(("other", "wanted", "other")):
                await backend.publish(event(f"e{i}", partitionkey="same", type=f"dev.test.{kind}"))
            [wanted] = await receive(subscription, 1)
            assert wanted.event.get_id() == "e1"
            await nothing_more(subscription)
            await prefiltered_becomes(subscription, 2)
            partition = TopicPartition(backend.topic, wanted.ordering_key)
            await committed_becomes(settings, group(broker, "a"), partition, wanted.token.offset)
            await subscription.ack(wanted)
            await committed_becomes(
                settings, group(broker, "a"), partition, wanted.token.offset + 2
            )

    asyncio.run(scenario())


@pytest.mark.kafka
def test_s3_1_a_rewind_brings_back_prefiltered_records_to_the_prefilter_only(
    broker: Broker, settings: Settings
) -> None:
    """w0, o1, w2 handed over and not acknowledged: the rewind puts 3 records back, the
    runtime gets w0 and w2 again (`redelivered` 2), o1 is dropped again."""

    async def scenario() -> None:
        async with opened(broker, settings) as backend:
            subscription = await backend.subscribe(group(broker, "a"), False, WANTED)
            assert isinstance(subscription, KafkaSubscription)
            for i, kind in enumerate(("wanted", "other", "wanted")):
                await backend.publish(event(f"e{i}", partitionkey="same", type=f"dev.test.{kind}"))
            first = await receive(subscription, 2)

            assert await subscription.redeliver_uncommitted() == 3

            again = await receive(subscription, 2)
            assert [r.event.get_id() for r in again] == [r.event.get_id() for r in first]
            assert subscription.redelivered == 2
            await prefiltered_becomes(subscription, 2)
            await nothing_more(subscription)

    asyncio.run(scenario())

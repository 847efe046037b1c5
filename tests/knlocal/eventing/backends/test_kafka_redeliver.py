"""The Kafka backend's rebalance hook, `redeliver_uncommitted`, against the shared Kafka.

The `rebalance` fault (knlocal/eventing/faults.py) acts out what Kafka does when a member loses
its partitions (knative-semantics.md §3.1, `on_partitions_lost`): nothing more is committed, and
the group's next owner starts at the last committed offset, so every record handed over since is
delivered again. Each test has a Broker of its own (see test_kafka.py) and deletes it after.
"""

import asyncio

import pytest
from kafka import TopicPartition

from knlocal.apis.eventing import Broker
from knlocal.eventing.backends.kafka import MAX_UNACKED, KafkaSubscription
from knlocal.settings import Settings
from tests.knlocal.eventing.backends.test_kafka import (
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


@pytest.mark.kafka
def test_s3_1_a_rewind_redelivers_since_the_last_commit_and_voids_the_old_acks(
    broker: Broker, settings: Settings
) -> None:
    """e0, e1 committed; e2, e3 delivered and not acknowledged: a rewind delivers e2 and e3
    again; acks from before the rewind commit nothing, the new ones do."""

    async def scenario() -> None:
        async with opened(broker, settings) as backend:
            subscription = await backend.subscribe(group(broker, "a"), ordered=False)
            assert isinstance(subscription, KafkaSubscription)
            for i in range(4):
                await backend.publish(event(f"e{i}", partitionkey="same"))
            first = await receive(subscription, 4)
            partition = TopicPartition(backend.topic, first[0].ordering_key)
            start = first[0].token.offset
            for received in first[:2]:
                await subscription.ack(received)
            await committed_becomes(settings, group(broker, "a"), partition, start + 2)

            rewound = await subscription.redeliver_uncommitted()

            assert rewound == 2
            again = await receive(subscription, 2)
            assert [r.event.get_id() for r in again] == ["e2", "e3"]
            assert subscription.redelivered == 2
            for received in first[2:]:  # from before the rewind: void
                await subscription.ack(received)
            await asyncio.sleep(0.5)  # several commit rounds
            await committed_becomes(settings, group(broker, "a"), partition, start + 2)
            for received in again:
                await subscription.ack(received)
            await committed_becomes(settings, group(broker, "a"), partition, start + 4)
            await nothing_more(subscription, 1.0)

    asyncio.run(scenario())


@pytest.mark.kafka
def test_s3_1_a_rewind_under_backpressure_redelivers_what_the_paused_member_held(
    broker: Broker, settings: Settings
) -> None:
    """MAX_UNACKED records held, none acknowledged, the member paused: the rewind wakes it,
    and the same records come again, counted once each."""

    async def scenario() -> None:
        async with opened(broker, settings) as backend:
            subscription = await backend.subscribe(group(broker, "a"), ordered=False)
            assert isinstance(subscription, KafkaSubscription)
            await asyncio.gather(
                *(
                    backend.publish(event(f"e{i}", partitionkey="same"))
                    for i in range(MAX_UNACKED + 50)
                )
            )
            held = await receive(subscription, MAX_UNACKED)
            await nothing_more(subscription)

            rewound = await subscription.redeliver_uncommitted()

            assert rewound == MAX_UNACKED
            again = await receive(subscription, MAX_UNACKED)
            assert [r.event.get_id() for r in again] == [r.event.get_id() for r in held]
            assert subscription.redelivered == MAX_UNACKED
            await nothing_more(subscription)

    asyncio.run(scenario())


@pytest.mark.kafka
def test_a_closed_subscription_rewinds_nothing(broker: Broker, settings: Settings) -> None:
    """After close, a late `rebalance` fault puts nothing back and does not wait."""

    async def scenario() -> None:
        async with opened(broker, settings) as backend:
            subscription = await backend.subscribe(group(broker, "a"), ordered=False)
            assert isinstance(subscription, KafkaSubscription)
            await backend.publish(event("e0"))
            await receive(subscription, 1)
            await subscription.close()

            assert await asyncio.wait_for(subscription.redeliver_uncommitted(), 5) == 0
            assert subscription.redelivered == 0

    asyncio.run(scenario())

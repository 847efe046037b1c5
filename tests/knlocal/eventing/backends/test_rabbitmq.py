"""The RabbitMQ backend's layout, read back with a plain aio-pika client (§3.3).

On the shared RabbitMQ (`make rabbitmq`), with a Broker and queue of each test's own.
"""

import asyncio
import uuid
from collections.abc import Iterator

import aio_pika
import pytest
from aiormq.exceptions import ChannelPreconditionFailed
from cloudevents.core.v1.event import CloudEvent

from knlocal.apis.classes import RABBITMQ_BROKER
from knlocal.apis.eventing import Broker
from knlocal.eventing.backends.rabbitmq import RabbitMQBackend, exchange_name
from knlocal.settings import Settings
from tests.servers import drop_rabbitmq, require_rabbitmq


@pytest.fixture
def broker() -> Iterator[Broker]:
    """A Broker of the test's own; its exchange and queue are deleted afterwards."""
    settings = require_rabbitmq()
    broker = Broker(f"bindings-{uuid.uuid4().hex[:10]}", "default", RABBITMQ_BROKER, None, None)
    yield broker
    drop_rabbitmq(settings.rabbitmq_url, [exchange_name(broker)], [queue_name(broker)])


def queue_name(broker: Broker) -> str:
    """The test's Trigger queue."""
    return f"knative-trigger-default-{broker.name}"


def event(event_id: str, type_: str, **extensions: str) -> CloudEvent:
    """A CloudEvent of `type_`."""
    return CloudEvent({"id": event_id, "type": type_, "source": "/test", **extensions})


def test_s3_3_trigger_queue_is_bound_on_its_filter_attributes(broker: Broker) -> None:
    """Only events whose headers match every exact `filter.attributes` value reach the queue.

    An attribute filtered on `""` (any value, §2.1) is not in the binding: RabbitMQ lets events
    without it through, and the dispatcher's filter drops them.
    """
    settings = Settings.from_env()

    async def scenario() -> None:
        backend = RabbitMQBackend(broker, {"queueType": "classic"}, settings)
        await backend.open()
        try:
            subscription = await backend.subscribe(
                queue_name(broker),
                ordered=True,
                attributes={"type": "user.created", "region": "eu", "tenant": ""},
            )
            # Stop consuming: the queue keeps what RabbitMQ routes to it, for the plain client.
            await subscription.close()
            await backend.publish(event("match", "user.created", region="eu", tenant="a"))
            await backend.publish(event("other-type", "user.deleted", region="eu"))
            await backend.publish(event("other-region", "user.created", region="us"))
            await backend.publish(event("no-tenant", "user.created", region="eu"))
        finally:
            await backend.close()
        connection = await aio_pika.connect(settings.rabbitmq_url)
        try:
            channel = await connection.channel()
            queue = await channel.declare_queue(queue_name(broker), passive=True)
            ids = []
            while (message := await queue.get(fail=False, timeout=5)) is not None:
                ids.append((message.headers or {}).get("id"))
                await message.ack()
            assert ids == ["match", "no-tenant"]
            # RabbitmqBrokerConfig.queueType: an equivalent declaration is accepted, another
            # type refused.
            await channel.declare_queue(
                queue_name(broker), durable=True, arguments={"x-queue-type": "classic"}
            )
            with pytest.raises(ChannelPreconditionFailed):
                await channel.declare_queue(
                    queue_name(broker), durable=True, arguments={"x-queue-type": "quorum"}
                )
        finally:
            await connection.close()

    asyncio.run(scenario())

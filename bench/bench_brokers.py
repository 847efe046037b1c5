"""Benchmark of the RabbitMQ and NATS JetStream backends beside their plain clients, same run.

For each backend, on the shared server (`make rabbitmq`, `make nats`), with a Broker of its own
(deleted afterwards):

1. **backend**: events/s through the backend end to end: `publish` (CloudEvents encoding,
   publisher confirms / PubAck) from CONCURRENCY concurrent publishers, one subscription that
   receives (decoding) and acknowledges every event;
2. **plain client**, same run, same bytes, same concurrency: aio-pika / nats-py alone, one
   consumer acking each message, no CloudEvents.

3. **runtime**: `knlocal burst` at 100 users/s for SECONDS through `knlocal run` with
   BROKER=rabbitmq and BROKER=nats, each on a private server of its own (tools/rabbitmq.sh,
   tools/nats.sh on free ports), and BROKER=inmemory as the baseline (bench/bench_kafka.py's
   measurement, warmed up): `POST /users` latency and time to `completed`.

RabbitMQ also gets pika (blocking, publisher confirms, one publisher: pika has no concurrency
within a connection) when it is installed, the measurement behind choosing aio-pika.
The result goes to bench/results/brokers-<date-time>.json, with the command.
"""

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import aio_pika
import nats
from cloudevents.core.v1.event import CloudEvent
from nats.js.api import StreamConfig

from bench.bench_kafka import through_runtime
from knlocal.apis import loader
from knlocal.apis.classes import MT_CHANNEL_BASED_BROKER, RABBITMQ_BROKER
from knlocal.apis.eventing import Broker
from knlocal.eventing.backends import registry
from knlocal.eventing.backends.nats import stream_name
from knlocal.eventing.backends.rabbitmq import exchange_name
from knlocal.eventing.events import encode_binary
from knlocal.settings import Settings
from knuser_tools.burst import machine_info
from tests.servers import PrivateServer

RESULTS = Path(__file__).parent / "results"
#: The runtime's setting naming each server (tests/knlocal/test_broker_faults.py's).
URL_VARIABLE = {"rabbitmq": "RABBITMQ_URL", "nats": "NATS_URL"}


def manifest_config(kind: str) -> Mapping[str, str]:
    """The Broker's config as brokers/<kind>/ declares it (RabbitMQ: its queueType)."""
    system = loader.load(Settings(broker=kind, manifests=Path(__file__).parents[1]))
    [broker] = system.brokers.values()
    return system.broker_config(broker)


def make_event(index: int) -> CloudEvent:
    """An event shaped like the flow's (a small JSON payload)."""
    return CloudEvent(
        {
            "id": f"bench-{index}",
            "source": "/bench",
            "type": "dev.bench.v1",
            "datacontenttype": "application/json",
        },
        {"operationId": str(uuid.uuid4()), "name": "Ada Lovelace"},
    )


async def pace(count: int, concurrency: int, send: Callable[[int], Awaitable[object]]) -> None:
    """Send `count` items from `concurrency` tasks."""
    indexes = iter(range(count))

    async def worker() -> None:
        for index in indexes:
            await send(index)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def backend_rate(kind: str, count: int, concurrency: int) -> float:
    """Events/s through the backend, publish to ack."""
    name = f"bench-{uuid.uuid4().hex[:8]}"
    broker_class = RABBITMQ_BROKER if kind == "rabbitmq" else MT_CHANNEL_BASED_BROKER
    broker = Broker(name, "default", broker_class, None, None)
    backend = registry.create(broker, manifest_config(kind), Settings.from_env())
    await backend.open()
    subscription = await backend.subscribe(f"knative-trigger-default-{name}", ordered=False)
    events = [make_event(i) for i in range(count)]

    async def consume() -> None:
        for _ in range(count):
            await subscription.ack(await subscription.receive())

    started = time.monotonic()
    consumer = asyncio.create_task(consume())
    await pace(count, concurrency, lambda i: backend.publish(events[i]))
    await consumer
    elapsed = time.monotonic() - started
    await subscription.close()
    await backend.close()
    await cleanup(kind, broker, name)
    return count / elapsed


async def cleanup(kind: str, broker: Broker, name: str) -> None:
    """Delete the Broker's exchange and queue, or its stream."""
    settings = Settings.from_env()
    if kind == "rabbitmq":
        connection = await aio_pika.connect(settings.rabbitmq_url)
        channel = await connection.channel()
        await channel.queue_delete(f"knative-trigger-default-{name}")
        await channel.exchange_delete(exchange_name(broker))
        await connection.close()
    else:
        client = await nats.connect(settings.nats_url)
        await client.jetstream().delete_stream(stream_name(broker))
        await client.close()


async def plain_rabbitmq(count: int, concurrency: int) -> float:
    """aio-pika alone: same bytes, confirms, one consumer acking each message."""
    headers, body = encode_binary(make_event(0))
    name = f"bench-plain-{uuid.uuid4().hex[:8]}"
    connection = await aio_pika.connect(Settings.from_env().rabbitmq_url)
    channel = await connection.channel(publisher_confirms=True)
    exchange = await channel.declare_exchange(name, aio_pika.ExchangeType.HEADERS)
    consumer_channel = await connection.channel()
    await consumer_channel.set_qos(prefetch_count=1000)
    queue = await consumer_channel.declare_queue(
        name, durable=True, arguments={"x-queue-type": manifest_config("rabbitmq")["queueType"]}
    )
    await queue.bind(name, arguments={"x-match": "all"})
    received = 0
    done = asyncio.Event()

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        nonlocal received
        await message.ack()
        received += 1
        if received == count:
            done.set()

    await queue.consume(on_message)
    started = time.monotonic()
    await pace(
        count,
        concurrency,
        lambda _: exchange.publish(
            aio_pika.Message(
                body, headers=dict(headers), delivery_mode=aio_pika.DeliveryMode.PERSISTENT
            ),
            routing_key="",
        ),
    )
    await done.wait()
    elapsed = time.monotonic() - started
    await queue.delete(if_unused=False, if_empty=False)
    await exchange.delete()
    await connection.close()
    return count / elapsed


def pika_publish_rate(count: int) -> float | None:
    """pika alone, publish with confirms (blocking, one at a time): publishes/s."""
    try:
        import pika  # type: ignore[import-untyped]  # optional: only for the pick
    except ImportError:
        return None
    _, body = encode_binary(make_event(0))
    connection = pika.BlockingConnection(pika.URLParameters(Settings.from_env().rabbitmq_url))
    channel = connection.channel()
    channel.confirm_delivery()
    name = f"bench-pika-{uuid.uuid4().hex[:8]}"
    channel.queue_declare(name, durable=True, arguments={"x-queue-type": "quorum"})
    started = time.monotonic()
    for _ in range(count):
        channel.basic_publish("", name, body, pika.BasicProperties(delivery_mode=2))
    elapsed = time.monotonic() - started
    channel.queue_delete(name)
    connection.close()
    return count / elapsed


async def aio_pika_serial_publish_rate(count: int) -> float:
    """aio-pika, publish with confirms one at a time: the same measure as pika's."""
    _, body = encode_binary(make_event(0))
    connection = await aio_pika.connect(Settings.from_env().rabbitmq_url)
    channel = await connection.channel(publisher_confirms=True)
    name = f"bench-serial-{uuid.uuid4().hex[:8]}"
    queue = await channel.declare_queue(name, durable=True, arguments={"x-queue-type": "quorum"})
    started = time.monotonic()
    for _ in range(count):
        await channel.default_exchange.publish(
            aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT), name
        )
    elapsed = time.monotonic() - started
    await queue.delete(if_unused=False, if_empty=False)
    await connection.close()
    return count / elapsed


async def plain_nats(count: int, concurrency: int) -> float:
    """nats-py alone: same bytes, PubAck, one pull consumer acking each message."""
    headers, body = encode_binary(make_event(0))
    name = f"BENCH_{uuid.uuid4().hex[:8]}"
    client = await nats.connect(Settings.from_env().nats_url)
    js = client.jetstream()
    await js.add_stream(StreamConfig(name=name, subjects=[f"{name}.x"]))
    pull = await js.pull_subscribe(f"{name}.x", durable="c", stream=name)
    received = 0

    async def consume() -> None:
        nonlocal received
        while received < count:
            try:
                messages = await pull.fetch(100, timeout=1)
            except TimeoutError:  # nats' own, or a bare one fetch raises at its deadline
                continue
            for message in messages:
                await message.ack()
                received += 1

    started = time.monotonic()
    consumer = asyncio.create_task(consume())
    await pace(count, concurrency, lambda _: js.publish(f"{name}.x", body, headers=headers))
    await consumer
    elapsed = time.monotonic() - started
    await js.delete_stream(name)
    await client.close()
    return count / elapsed


def runtime_burst(kind: str, seconds: float) -> dict[str, Any]:
    """100 users/s through `knlocal run` on `kind`; RabbitMQ and NATS on a private server, so
    that what the burst leaves unfinished in the durable queues is not left on the shared one."""
    if kind not in URL_VARIABLE:
        return through_runtime(kind, None, 100.0, seconds)
    server = PrivateServer(kind)
    server.start()
    saved = os.environ.get(URL_VARIABLE[kind])
    os.environ[URL_VARIABLE[kind]] = server.url
    try:
        return through_runtime(kind, None, 100.0, seconds)
    finally:
        if saved is None:
            del os.environ[URL_VARIABLE[kind]]
        else:
            os.environ[URL_VARIABLE[kind]] = saved
        server.stop()


async def main(count: int, concurrency: int, seconds: float) -> dict[str, Any]:
    """Every measurement, in one run."""
    loadavg_before = os.getloadavg()
    result: dict[str, Any] = {
        "command": " ".join(sys.argv),
        "events": count,
        "concurrency": concurrency,
        "rabbitmq": {
            "backend_events_per_s": await backend_rate("rabbitmq", count, concurrency),
            "aio_pika_events_per_s": await plain_rabbitmq(count, concurrency),
            "aio_pika_serial_publish_per_s": await aio_pika_serial_publish_rate(count // 4),
            "pika_serial_publish_per_s": pika_publish_rate(count // 4),
        },
        "nats": {
            "backend_events_per_s": await backend_rate("nats", count, concurrency),
            "nats_py_events_per_s": await plain_nats(count, concurrency),
        },
    }
    if seconds > 0:
        # BROKER=inmemory is the same run's baseline; Kafka's is `make bench` (bench_kafka.py).
        for kind in ("inmemory", "rabbitmq", "nats"):
            result.setdefault(kind, {})["runtime_100_per_s"] = await asyncio.to_thread(
                runtime_burst, kind, seconds
            )
    result["machine"] = machine_info(loadavg_before, os.getloadavg())
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=3000, help="events per measurement")
    parser.add_argument("--concurrency", type=int, default=64, help="publishers in flight")
    parser.add_argument(
        "--seconds", type=float, default=20.0, help="runtime burst at 100 users/s; 0: skip"
    )
    args = parser.parse_args()
    outcome = asyncio.run(main(args.n, args.concurrency, args.seconds))
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"brokers-{time.strftime('%Y-%m-%dT%H%M%S')}.json"
    path.write_text(json.dumps(outcome, indent=2) + "\n")
    print(json.dumps(outcome, indent=2))
    print(f"written to {path}")

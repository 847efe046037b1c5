"""`BROKER=rabbitmq` and `BROKER=nats` end to end, with the events read back from the real server.

`knlocal run` (what `make run` execs) on the shared server (`make rabbitmq`, `make nats`): Ada
Lovelace completes, `root` fails with its reason, and a plain client (aio-pika, nats-py; not our
backend) sees the flow's events where Knative's layout puts them: RabbitMQ's headers exchange
b.default.default (§3.3), or the JetStream stream KN_DEFAULT__DEFAULT-KNE-TRIGGER (§3.4).
"""

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import aio_pika
import nats
import pytest
from nats.js.api import ConsumerConfig, DeliverPolicy

from knlocal.apis.loader import load
from knlocal.settings import Settings
from knuser_tools.runtime import KnuserRuntime
from tests.servers import forget_broker_state, require_shared

#: The events one user creation puts on the Broker (triggers/), by type.
FLOW_TYPES = {
    "dev.knuser.user.creation.requested.v1",
    "dev.knuser.user.created.v1",
    "dev.knuser.user.approval.decided.v1",
}
WAIT_SECONDS = 30.0


@pytest.fixture(scope="module", params=["rabbitmq", "nats"])
def runtime(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KnuserRuntime]:
    """`knlocal run` with BROKER=rabbitmq, then BROKER=nats, on the shared servers."""
    kind: str = request.param
    settings = require_shared(kind)
    # The manifests' fixed names: what another runtime left on the shared server would be
    # consumed (or refused, if declared otherwise) by this one.
    url = settings.rabbitmq_url if kind == "rabbitmq" else settings.nats_url
    forget_broker_state(kind, url, "default", [t.name for t in load(Settings()).triggers])
    with KnuserRuntime(tmp_path_factory.mktemp(f"{kind}-e2e"), {"BROKER": kind}) as process:
        yield process


def finished(runtime: KnuserRuntime, operation_id: str) -> Any:
    """The operation once it is no longer pending (bounded)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while (operation := runtime.operation(operation_id))["status"] == "pending":
        assert time.monotonic() < deadline, f"operation {operation_id} still pending"
        time.sleep(0.05)
    return operation


def test_s3_3_s3_4_ada_completes_and_root_fails_with_its_reason(runtime: KnuserRuntime) -> None:
    """The two canonical requests, on each backend."""
    status, ada = runtime.create_user("Ada Lovelace")
    assert status == 202
    status, root = runtime.create_user("root")
    assert status == 202
    done = finished(runtime, ada["id"])
    assert done["status"] == "completed"
    assert done["result"]["user"]["name"] == "Ada Lovelace"
    failed = finished(runtime, root["id"])
    assert failed["status"] == "failed"
    assert failed["error"]["reason"] == "user rejected: the name 'root' is reserved"


async def _rabbitmq_events(url: str, runtime: KnuserRuntime) -> list[dict[str, Any]]:
    # A queue of the test's own on the Broker's exchange sees what the Broker stores from now on.
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue("", exclusive=True)
        await queue.bind("b.default.default", arguments={"x-match": "all"})
        status, ada = await asyncio.to_thread(runtime.create_user, "Ada Lovelace")
        assert status == 202
        await asyncio.to_thread(finished, runtime, ada["id"])
        headers: list[dict[str, Any]] = []
        while (message := await queue.get(fail=False, timeout=5)) is not None:
            headers.append({k: str(v) for k, v in (message.headers or {}).items()})
            await message.ack()
        # Knative's layout: each Trigger has its own durable queue.
        for trigger in ("user-create", "user-approve", "operation-update"):
            await channel.declare_queue(f"knative-trigger-default-{trigger}", passive=True)
        return [h for h in headers if h.get("operationid") == ada["id"]]
    finally:
        await connection.close()


async def _nats_events(url: str, runtime: KnuserRuntime) -> list[dict[str, Any]]:
    client = await nats.connect(url)
    try:
        js = client.jetstream()
        stream = "KN_DEFAULT__DEFAULT-KNE-TRIGGER"
        start = (await js.stream_info(stream)).state.last_seq + 1
        status, ada = await asyncio.to_thread(runtime.create_user, "Ada Lovelace")
        assert status == 202
        await asyncio.to_thread(finished, runtime, ada["id"])
        # An ephemeral consumer of the test's own, from before the POST: what the stream stored.
        config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=start)
        pull = await js.pull_subscribe(
            "default.default-kne-trigger._knative", stream=stream, config=config
        )
        headers: list[dict[str, Any]] = []
        try:
            while True:
                for message in await pull.fetch(100, timeout=2):
                    headers.append(dict(message.headers or {}))
                    await message.ack()
        except TimeoutError:  # nats' own, or a bare one fetch raises at its deadline
            pass
        return [
            {k.removeprefix("ce-"): v for k, v in h.items()}
            for h in headers
            if h.get("ce-operationid") == ada["id"]
        ]
    finally:
        await client.close()


def test_s3_3_s3_4_a_plain_client_reads_the_events_in_the_server(runtime: KnuserRuntime) -> None:
    """The flow's events are stored in the real server, in Knative's layout, readable by anyone."""
    settings = Settings.from_env(runtime.env)
    if settings.broker == "rabbitmq":
        events = asyncio.run(_rabbitmq_events(settings.rabbitmq_url, runtime))
    else:
        events = asyncio.run(_nats_events(settings.nats_url, runtime))
    assert {event["type"] for event in events} >= FLOW_TYPES, events
    assert all(event["source"] and event["id"] for event in events)

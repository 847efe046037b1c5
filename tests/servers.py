"""The servers tests need: the shared ones, private ones, and cleanup with the plain clients.

- :func:`require_server` and :func:`require_kafka`, :func:`require_rabbitmq`,
  :func:`require_nats`: the shared servers `make kafka` / `make rabbitmq` / `make nats` run
  (KAFKA_BOOTSTRAP_SERVERS, RABBITMQ_URL, NATS_URL); skip the test when one is down, fail it when
  `CI=true`.
- :class:`PrivateServer`: a Kafka, RabbitMQ or NATS of one test's own on free ports, started and
  stopped by the project's own script (tools/kafka.sh, tools/rabbitmq.sh, tools/nats.sh), for
  tests that kill it. tests/conftest.py's `private_kafka` fixture is one per test module.
- :func:`drop_kafka`, :func:`drop_rabbitmq`, :func:`drop_nats`: delete what a test created.
"""

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import aio_pika
import nats
import pytest
from kafka import KafkaAdminClient
from kafka.errors import KafkaError
from nats.js.errors import NotFoundError

from knlocal.apis.classes import KAFKA_BROKER, RABBITMQ_BROKER
from knlocal.apis.eventing import Broker
from knlocal.eventing.backends.kafka import topic_name
from knlocal.eventing.backends.nats import stream_name
from knlocal.eventing.backends.rabbitmq import exchange_name
from knlocal.process import descendants, free_port
from knlocal.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
#: Bound on starting a server (a cold JVM on a busy 2-core machine).
START_SECONDS = 120.0


def require_server(name: str, reachable: bool, how: str) -> None:
    """Skip the calling test when a server it needs is down, or fail it when `CI=true`.

    CI starts every server itself (`.ci/run`), so there a missing server is a broken build, not a
    reason to skip; on a developer machine the skip message says how to run the test.

    :param name: the server and its address, e.g. `DynamoDB Local at http://127.0.0.1:8000`.
    :param reachable: whether the server answered.
    :param how: what to do to enable the test, e.g. "run `make dynamodb`".
    :raises pytest.fail.Exception: the server is unreachable and `CI=true`.
    :raises pytest.skip.Exception: the server is unreachable elsewhere.
    """
    if reachable:
        return
    message = f"{name} is not reachable; to run this test, {how}"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} (CI=true: a missing server fails the build)")
    pytest.skip(message)


def reachable(address: str) -> bool:
    """Whether `host:port` (or a URL, or the first of a list of bootstrap servers) accepts TCP
    connections."""
    first = address.split(",")[0]
    if "://" in first:
        parts = urlsplit(first)
        first = f"{parts.hostname}:{parts.port}"
    host, _, port = first.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except OSError:
        return False
    return True


@dataclass(frozen=True)
class ServerKind:
    """What differs between the servers the tools/ scripts start.

    :ivar title: its name in messages.
    :ivar setting: the field of :class:`~knlocal.settings.Settings` with the shared one's address.
    :ivar variable: the prefix of the script's variables (`<variable>_PORT`, `…_START_TIMEOUT`).
    :ivar more_ports: the script's other port variables, each given a free port too.
    :ivar url: the client address, with `{port}`.
    :ivar command_marker: what the command line of the pid file's process holds: checked before
        a `kill -9`, so a recycled pid is never killed.
    """

    title: str
    setting: str
    variable: str
    more_ports: tuple[str, ...]
    url: str
    command_marker: bytes


#: By script name (tools/<script>.sh).
KINDS = {
    "kafka": ServerKind(
        "Kafka",
        "kafka_bootstrap_servers",
        "KAFKA",
        ("KAFKA_CONTROLLER_PORT",),
        "127.0.0.1:{port}",
        b"kafka.Kafka",
    ),
    "rabbitmq": ServerKind(
        "RabbitMQ",
        "rabbitmq_url",
        "RABBITMQ",
        ("RABBITMQ_DIST_PORT", "RABBITMQ_EPMD_PORT"),
        "amqp://guest:guest@127.0.0.1:{port}/",
        b"rabbitmq",
    ),
    "nats": ServerKind("NATS", "nats_url", "NATS", (), "nats://127.0.0.1:{port}", b"nats-server"),
}


def require_shared(script: str) -> Settings:
    """The runtime's settings, with the shared server `make <script>` runs up; else skip the
    test (fail it when `CI=true`)."""
    settings = Settings.from_env()
    kind = KINDS[script]
    address = getattr(settings, kind.setting)
    require_server(f"{kind.title} at {address}", reachable(address), f"run `make {script}`")
    return settings


def require_kafka() -> Settings:
    """:func:`require_shared` for Kafka (KAFKA_BOOTSTRAP_SERVERS)."""
    return require_shared("kafka")


def require_rabbitmq() -> Settings:
    """:func:`require_shared` for RabbitMQ (RABBITMQ_URL)."""
    return require_shared("rabbitmq")


def require_nats() -> Settings:
    """:func:`require_shared` for NATS (NATS_URL)."""
    return require_shared("nats")


class PrivateServer:
    """A server of one test's own: `tools/<script>.sh` on free ports; its files (pid, log, data)
    are `.run/<script>-<port>…`, removed by :meth:`stop`.

    :param script: `kafka`, `rabbitmq` or `nats`.
    """

    def __init__(self, script: str) -> None:
        self.script = script
        self.kind = KINDS[script]
        self.port = free_port()
        variable = self.kind.variable
        self.env = {
            **os.environ,
            f"{variable}_PORT": str(self.port),
            f"{variable}_START_TIMEOUT": str(int(START_SECONDS)),
            **{name: str(free_port()) for name in self.kind.more_ports},
        }
        self.pid_file = ROOT / ".run" / f"{script}-{self.port}.pid"

    @property
    def url(self) -> str:
        """Its client address (Kafka: its bootstrap servers)."""
        return self.kind.url.format(port=self.port)

    def _script(self, command: str) -> None:
        result = subprocess.run(
            ["bash", f"tools/{self.script}.sh", command],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=START_SECONDS + 60,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"tools/{self.script}.sh {command} on port {self.port} failed:\n"
                f"{result.stdout}{result.stderr}"
            )

    def start(self) -> None:
        """Start it (again) and return once it serves clients."""
        self._script("start")

    def kill(self) -> None:
        """`kill -9` it and what it started (RabbitMQ: the Erlang VM under its wrapper), as a
        crash would, and wait until they are gone."""
        pid = int(self.pid_file.read_text().strip())
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        assert self.kind.command_marker in command, f"pid {pid} is not our server: {command!r}"
        victims = [*descendants(pid), pid]
        for victim in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while any(Path(f"/proc/{v}").exists() for v in victims) and time.monotonic() < deadline:
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop it if it runs, and remove its files from .run/."""
        self._script("stop")
        for path in (ROOT / ".run").glob(f"{self.script}-{self.port}[.-]*"):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def drop_kafka(servers: str, topics: Iterable[str] = (), groups: Iterable[str] = ()) -> None:
    """Delete topics and consumer groups (what a test created); missing ones are ignored."""
    admin = KafkaAdminClient(bootstrap_servers=servers, client_id="tests-cleanup")
    try:
        with contextlib.suppress(KafkaError):
            if groups := list(groups):
                admin.delete_groups(groups)
        with contextlib.suppress(KafkaError):
            if topics := list(topics):
                admin.delete_topics(topics, raise_errors=False)
    finally:
        admin.close()


def drop_rabbitmq(url: str, exchanges: Iterable[str], queues: Iterable[str]) -> None:
    """Delete exchanges and queues; missing ones are ignored."""

    async def drop() -> None:
        connection = await aio_pika.connect(url)
        try:
            for name in queues:
                channel = await connection.channel()
                with contextlib.suppress(aio_pika.exceptions.AMQPError):
                    await channel.queue_delete(name)
            for name in exchanges:
                channel = await connection.channel()
                with contextlib.suppress(aio_pika.exceptions.AMQPError):
                    await channel.exchange_delete(name)
        finally:
            await connection.close()

    asyncio.run(drop())


def drop_nats(url: str, streams: Iterable[str]) -> None:
    """Delete JetStream streams (and so their consumers); missing ones are ignored."""

    async def drop() -> None:
        client = await nats.connect(url)
        try:
            for name in streams:
                with contextlib.suppress(NotFoundError):
                    await client.jetstream().delete_stream(name)
        finally:
            await client.close()

    asyncio.run(drop())


def forget_broker_state(
    backend: str, url: str, broker: str, triggers: Iterable[str], namespace: str = "default"
) -> None:
    """Delete what a Broker and its Triggers created on a server (topic and groups, exchange and
    queues, or stream), so a runtime on a shared server starts from nothing left by another."""
    ref = Broker(broker, namespace, KAFKA_BROKER, None, None)  # the names depend on these only
    if backend == "kafka":
        groups = [KAFKA_BROKER.consumer_group(namespace, t) for t in triggers]
        drop_kafka(url, [topic_name(ref)], groups)
    elif backend == "rabbitmq":
        queues = [RABBITMQ_BROKER.consumer_group(namespace, t) for t in triggers]
        drop_rabbitmq(url, [exchange_name(ref)], queues)
    elif backend == "nats":
        drop_nats(url, [stream_name(ref)])

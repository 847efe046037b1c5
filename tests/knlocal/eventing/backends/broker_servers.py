"""RabbitMQ and NATS for tests: the shared servers, private ones, and plain-client cleanup.

- :func:`require_rabbitmq`, :func:`require_nats`: the servers `make rabbitmq` / `make nats` run
  (RABBITMQ_URL, NATS_URL); skip the test when down, fail it when `CI=true`.
- :class:`PrivateServer`: a server of one test's own on a free port, started and stopped by the
  project's tools/rabbitmq.sh or tools/nats.sh, for tests that kill it.
- :func:`drop_rabbitmq`, :func:`drop_nats`: delete what a test created, with the plain clients.
"""

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit

import aio_pika
import nats
from nats.js.errors import NotFoundError

from knlocal.settings import Settings
from tests.conftest import require_server
from tests.knlocal.eventing.backends.kafka_server import ROOT, START_SECONDS, free_port, reachable


def _address(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}"


def require_rabbitmq() -> Settings:
    """The runtime's settings, with the shared RabbitMQ up; else skip (fail when `CI=true`)."""
    settings = Settings.from_env()
    url = settings.rabbitmq_url
    require_server(f"RabbitMQ at {url}", reachable(_address(url)), "run `make rabbitmq`")
    return settings


def require_nats() -> Settings:
    """The runtime's settings, with the shared NATS up; else skip (fail when `CI=true`)."""
    settings = Settings.from_env()
    url = settings.nats_url
    require_server(f"NATS at {url}", reachable(_address(url)), "run `make nats`")
    return settings


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


class PrivateServer:
    """A RabbitMQ or NATS of one test's own, on a free port (its data under .run/).

    :param kind: `rabbitmq` or `nats`, the tools/ script.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.port = free_port()
        variable = {"rabbitmq": "RABBITMQ", "nats": "NATS"}[kind]
        self.env = {**os.environ, f"{variable}_PORT": str(self.port)}
        if kind == "rabbitmq":
            self.env["RABBITMQ_DIST_PORT"] = str(free_port())
            self.env["RABBITMQ_EPMD_PORT"] = str(free_port())
        self.pid_file = ROOT / ".run" / f"{kind}-{self.port}.pid"

    @property
    def url(self) -> str:
        """Its client URL."""
        if self.kind == "rabbitmq":
            return f"amqp://guest:guest@127.0.0.1:{self.port}/"
        return f"nats://127.0.0.1:{self.port}"

    def _script(self, command: str) -> None:
        result = subprocess.run(
            ["bash", f"tools/{self.kind}.sh", command],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=START_SECONDS + 60,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"tools/{self.kind}.sh {command} on port {self.port} failed:\n"
                f"{result.stdout}{result.stderr}"
            )

    def start(self) -> None:
        """Start it (again) and return once it serves clients."""
        self._script("start")

    def kill(self) -> None:
        """`kill -9` the server process (RabbitMQ: its Erlang VM), as a crash would."""
        pid = int(self.pid_file.read_text().strip())
        victims = [pid]
        if self.kind == "rabbitmq":
            # The pid is the wrapper script; the Erlang VM is its child.
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            victims = [int(child) for child in children] + victims
        for victim in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while any(Path(f"/proc/{v}").exists() for v in victims) and time.monotonic() < deadline:
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop it if it runs, and remove its files from .run/."""
        self._script("stop")
        subprocess.run(["rm", "-rf", *map(str, (ROOT / ".run").glob(f"{self.kind}-{self.port}*"))])

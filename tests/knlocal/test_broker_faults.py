"""Faults with BROKER=rabbitmq and BROKER=nats: the server dies mid-burst, the runtime dies.

As tests/knlocal/test_kafka_faults.py does for Kafka: the whole runtime (`knlocal run`, SQLite)
on its own ports and data folder, against a RabbitMQ / NATS of this module's own on free ports
(tools/rabbitmq.sh, tools/nats.sh), because the tests kill it. What a user relies on: every
`POST /users` that got 202 ends `completed`, with exactly one user, whatever crashed in between
(the event was confirmed stored before the 202, and is delivered at least once after the crash).
"""

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.knlocal.eventing.backends.broker_servers import (
    PrivateServer,
    require_nats,
    require_rabbitmq,
)
from tests.knlocal.eventing.backends.kafka_server import RuntimeProcess
from tests.knlocal.test_kafka_faults import assert_completed_once, burst, name

#: The runtime's settings per backend, given the private server's URL.
URL_VARIABLE = {"rabbitmq": "RABBITMQ_URL", "nats": "NATS_URL"}


#: RabbitMQ here is Debian's 3.10.8: with Knative's default quorum queues, a queue created just
#: before `kill -9` was lost by the node (see brokers/rabbitmq/broker.yaml, which picks classic).
@pytest.fixture(scope="module", params=["rabbitmq", "nats"])
def server(request: pytest.FixtureRequest) -> Iterator[PrivateServer]:
    """A private server of each kind (the shared one's package is installed to start it)."""
    kind: str = request.param
    (require_rabbitmq if kind == "rabbitmq" else require_nats)()
    private = PrivateServer(kind)
    private.start()
    try:
        yield private
    finally:
        private.stop()


def start_runtime(data_dir: Path, server: PrivateServer) -> RuntimeProcess:
    """`knlocal run` on the server's backend, on `data_dir`."""
    runtime = RuntimeProcess(
        data_dir, {"BROKER": server.kind, "STORE": "sqlite", URL_VARIABLE[server.kind]: server.url}
    )
    runtime.start()
    return runtime


def descendants(pid: int) -> list[int]:
    """The process's children, grandchildren…, read from /proc."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        for child in (task / "children").read_text().split():
            found += [int(child), *descendants(int(child))]
    return found


def kill_runtime(runtime: RuntimeProcess) -> None:
    """kill -9 the runtime and its function instances, as a machine crash would."""
    assert runtime.process is not None
    victims = [runtime.process.pid, *descendants(runtime.process.pid)]
    for victim in victims:
        try:
            os.kill(victim, signal.SIGKILL)
        except ProcessLookupError:
            continue
    runtime.process.wait(timeout=30)
    deadline = time.monotonic() + 30
    while any(Path(f"/proc/{v}").exists() for v in victims) and time.monotonic() < deadline:
        time.sleep(0.05)


def test_s3_3_s3_4_server_killed_and_restarted_mid_burst_loses_no_accepted_operation(
    server: PrivateServer, tmp_path: Path
) -> None:
    """kill -9 the server after 10 of 50 POSTs and start it again: every 202 completes, once."""
    runtime = start_runtime(tmp_path, server)
    try:

        def crash_and_restart() -> None:
            server.kill()
            server.start()

        answers = burst(runtime, during=crash_and_restart, after=10)
        assert_completed_once(runtime, answers)
    finally:
        runtime.stop()


def test_s3_3_s3_4_runtime_killed_mid_flow_and_restarted_completes_every_operation(
    server: PrivateServer, tmp_path: Path
) -> None:
    """kill -9 the runtime right after 20 accepted POSTs; a new one on the same data finishes them.

    The events are in the server, unacknowledged: the new runtime's consumers get them again.
    """
    first = start_runtime(tmp_path, server)
    try:
        answers = [first.create_user(name(index)) for index in range(20)]
    finally:
        kill_runtime(first)
    assert all(status == 202 for status, _ in answers), answers
    # RuntimeProcess waits for "ready" in runtime.log: keep the first one's apart.
    first.log.rename(tmp_path / "runtime-killed.log")
    second = start_runtime(tmp_path, server)
    try:
        assert_completed_once(second, answers)
    finally:
        second.stop()

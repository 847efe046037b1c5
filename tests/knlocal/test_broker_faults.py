"""Faults with BROKER=rabbitmq and BROKER=nats: the server dies mid-burst, the runtime dies.

As tests/knlocal/test_kafka_faults.py does for Kafka: the whole runtime (`knlocal run`, SQLite)
on its own ports and data folder, against a RabbitMQ / NATS of this module's own on free ports
(tools/rabbitmq.sh, tools/nats.sh), because the tests kill it. What a user relies on: every
`POST /users` that got 202 ends `completed`, with exactly one user, whatever crashed in between
(the event was confirmed stored before the 202, and is delivered at least once after the crash).
"""

from collections.abc import Iterator
from pathlib import Path

import pytest

from knuser_tools.runtime import KnuserRuntime
from tests.flows import name, post_users
from tests.knlocal.test_kafka_faults import BURST, PER_SECOND, assert_completed_once
from tests.servers import PrivateServer, require_shared

#: The runtime's settings per backend, given the private server's URL.
URL_VARIABLE = {"rabbitmq": "RABBITMQ_URL", "nats": "NATS_URL"}


#: RabbitMQ here is Debian's 3.10.8: with Knative's default quorum queues, a queue created just
#: before `kill -9` was lost by the node (see brokers/rabbitmq/broker.yaml, which picks classic).
@pytest.fixture(scope="module", params=["rabbitmq", "nats"])
def server(request: pytest.FixtureRequest) -> Iterator[PrivateServer]:
    """A private server of each kind (the shared one's package is installed to start it)."""
    kind: str = request.param
    require_shared(kind)
    private = PrivateServer(kind)
    private.start()
    try:
        yield private
    finally:
        private.stop()


def start_runtime(data_dir: Path, server: PrivateServer) -> KnuserRuntime:
    """`knlocal run` on the server's backend, on `data_dir`."""
    env = {"BROKER": server.script, "STORE": "sqlite", URL_VARIABLE[server.script]: server.url}
    runtime = KnuserRuntime(data_dir, env)
    runtime.start()
    return runtime


def test_s3_3_s3_4_server_killed_and_restarted_mid_burst_loses_no_accepted_operation(
    server: PrivateServer, tmp_path: Path
) -> None:
    """kill -9 the server after 10 of 50 POSTs and start it again: every 202 completes, once."""
    runtime = start_runtime(tmp_path, server)
    try:

        def crash_and_restart() -> None:
            server.kill()
            server.start()

        answers = post_users(runtime, BURST, PER_SECOND, crash_and_restart, after=10)
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
        first.kill()  # and its function instances, as a machine crash would
    assert all(status == 202 for status, _ in answers), answers
    second = start_runtime(tmp_path, server)
    try:
        assert_completed_once(second, answers)
    finally:
        second.stop()

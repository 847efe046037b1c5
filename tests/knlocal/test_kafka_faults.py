"""Faults with BROKER=kafka: Kafka dies mid-burst, a function instance dies mid-delivery.

The whole runtime runs as `make run` runs it (`knlocal run`, BROKER=kafka, SQLite) on its own
loopback ports and data folder, against a Kafka of this module's own (tools/kafka.sh on free
ports), because the tests kill it. What a user relies on:

- every `POST /users` that got 202 ends `completed`, whatever crashed in between: the event was
  stored with the operation before the 202 (its outbox), and is delivered at least once after
  the crash (by Kafka, or published again by the sweep: the runtime's PingSource);
- at-least-once never means twice in effect: one user per operation.

Bounded: 50 users per burst, one Kafka kill, at most 3 instance kills, every wait capped.
"""

import os
import signal
import time
from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest

from knuser_tools.runtime import KnuserRuntime
from tests.flows import post_users, users_by_operation, wait_final
from tests.servers import PrivateServer

pytestmark = pytest.mark.kafka

#: Users per burst, and how fast they are sent.
BURST = 50
PER_SECOND = 10.0
#: POSTs sent before the fault is injected.
FAULT_AFTER = 10
#: Bound on waiting for the accepted operations to finish.
FINISH_SECONDS = 120.0


@pytest.fixture(scope="module")
def runtime(
    tmp_path_factory: pytest.TempPathFactory, private_kafka: PrivateServer
) -> Iterator[tuple[KnuserRuntime, PrivateServer]]:
    """A runtime on BROKER=kafka and the private Kafka it uses."""
    runtime = KnuserRuntime(
        tmp_path_factory.mktemp("runtime-data"),
        {"BROKER": "kafka", "STORE": "sqlite", "KAFKA_BOOTSTRAP_SERVERS": private_kafka.url},
    )
    with runtime:
        yield runtime, private_kafka


def assert_completed_once(runtime: KnuserRuntime, answers: list[tuple[int, Any]]) -> None:
    """Every accepted operation completed, with exactly one user; report what was refused."""
    accepted = [body["id"] for status, body in answers if status == 202]
    refused = [(status, body) for status, body in answers if status != 202]
    # The store is up, so a 503 should not happen (the outbox answers 202 with Kafka away); a
    # refusal may only be a 503, never a 202 that is then lost.
    assert all(status == 503 for status, _ in refused), refused
    # Those sent before the fault all got in; those during it either got in or got a 503.
    assert len(accepted) >= FAULT_AFTER, f"only {len(accepted)} of {BURST} accepted: {refused}"
    finished = wait_final(runtime, accepted, FINISH_SECONDS, sweep=True)
    pending = sorted(set(accepted) - set(finished))
    assert not pending, f"{len(pending)} operations still pending after {FINISH_SECONDS} s"
    assert {op["status"] for op in finished.values()} == {"completed"}, [
        op for op in finished.values() if op["status"] != "completed"
    ]
    users = users_by_operation(runtime.data_dir)
    assert {operation_id: users.get(operation_id) for operation_id in accepted} == dict.fromkeys(
        accepted, 1
    )


def test_kafka_killed_and_restarted_mid_burst_loses_no_accepted_operation(
    runtime: tuple[KnuserRuntime, PrivateServer],
) -> None:
    """kill -9 Kafka after 10 of 50 POSTs and start it again: every 202 ends completed, once."""
    process, kafka = runtime

    def crash_and_restart() -> None:
        kafka.kill()
        kafka.start()

    answers = post_users(process, BURST, PER_SECOND, crash_and_restart, FAULT_AFTER)
    assert_completed_once(process, answers)


def kill_busy_instance(runtime: KnuserRuntime, service: str, killed: list[int]) -> None:
    """Wait (bounded) until `service` serves a request, then kill -9 its instance's group."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        snapshot = runtime.status()["services"][service]
        if snapshot["in_flight"] and snapshot["pids"]:
            os.killpg(snapshot["pids"][0], signal.SIGKILL)
            killed.append(snapshot["pids"][0])
            return
        time.sleep(0.005)


def test_function_instance_killed_mid_delivery_is_redelivered(
    runtime: tuple[KnuserRuntime, PrivateServer],
) -> None:
    """kill -9 user-create's instance while it serves a delivery: retried, and completed."""
    process, _ = runtime
    trigger = "default/user-create"
    for _attempt in range(3):
        retried_before = process.status()["triggers"][trigger]["retried"]
        killed: list[int] = []
        kill = partial(kill_busy_instance, process, "user-create", killed)
        answers = post_users(process, BURST, PER_SECOND, kill, FAULT_AFTER)
        assert killed, "user-create never had a delivery in flight to kill"
        assert_completed_once(process, answers)
        if process.status()["triggers"][trigger]["retried"] > retried_before:
            return  # a delivery failed with the instance and was delivered again
    pytest.fail("3 kills, and none hit a delivery in flight; the fault was never exercised")

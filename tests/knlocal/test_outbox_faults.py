"""The operation is the unit of truth: a fault mid-burst loses, duplicates, strands, fails nothing.

Each test runs the whole runtime as `make run` runs it (`knlocal run`, SQLite) on its own ports
and data folder, sends a small burst of `POST /users` as a careful client does (an
`Idempotency-Key` per user; on a connection error or a 5xx, retry with the same key: the README's
one rule), injects a fault mid-burst, then sweeps as the PingSource `operation-sweep` does (the
same ping event, sent more often and with a shorter stall time, to keep the test short) until no
operation is pending. It then reads both services' SQLite files and asserts, per fault:

- lost: 0 — every user the client was told was accepted exists, and its operation completed;
- duplicates: 0 — one user per operation, and per name;
- stranded: 0 — no operation left pending;
- wrongly failed: 0 — no operation `failed` whose user exists (none fails at all here).

Kafka runs as a private instance (tests/conftest.py's `private_kafka`), since a test kills it; the
shared Kafka is never touched. Bounded: 30 users per burst, every wait capped.
"""

import concurrent.futures
import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from knuser_tools.runtime import KnuserRuntime
from tests.flows import name, records
from tests.knlocal.test_kafka_faults import kill_busy_instance
from tests.servers import PrivateServer

pytestmark = pytest.mark.e2e

#: Users per burst, how fast they are sent, and after how many POSTs the fault strikes.
BURST = 30
PER_SECOND = 10.0
FAULT_AFTER = 8
#: How long a client keeps retrying one user with the same key.
CLIENT_RETRY_SECONDS = 60.0
#: Bound on waiting for every operation to leave `pending`.
SETTLE_SECONDS = 45.0
#: The sweeps of these tests re-drive after 2 s (the manifest's: 30 s) and fail nothing.
STALLED_AFTER_SECONDS = 2.0
#: How many times the runtime is SIGKILLed and restarted in one burst.
RUNTIME_KILLS = 3
#: How long Kafka stays down mid-burst.
KAFKA_OUTAGE_SECONDS = 10.0


@dataclass(frozen=True)
class Outcome:
    """What a fault did to the operations the client was told were accepted."""

    accepted: int
    lost: int
    duplicates: int
    stranded: int
    wrongly_failed: int

    def row(self, fault: str, redriven: int) -> str:
        """A line of the fault table; `redriven`: events the sweeps published again."""
        return (
            f"FAULT-TABLE | {fault} | accepted {self.accepted} | lost {self.lost} | duplicates"
            f" {self.duplicates} | stranded {self.stranded} | wrongly failed {self.wrongly_failed}"
            f" | re-driven by the sweep {redriven}"
        )


def post_user(runtime: KnuserRuntime, key: str, user: str) -> tuple[int, Any]:
    """One `POST /users` with an Idempotency-Key; a connection error is status 0."""
    request = urllib.request.Request(
        f"{runtime.ingress}/users",
        data=json.dumps({"name": user}).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Idempotency-Key": key},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")
    except OSError as exc:  # refused or reset: the runtime is down
        return 0, str(exc)


def create_with_retries(runtime: KnuserRuntime, key: str, user: str) -> str | None:
    """The README's rule: retry with the same key until 202 (bounded); the operation id or None."""
    deadline = time.monotonic() + CLIENT_RETRY_SECONDS
    while True:
        status, body = post_user(runtime, key, user)
        if status == 202:
            operation_id: str = body["id"]
            return operation_id
        assert status == 0 or status >= 500, (status, body)  # never a 4xx for a valid request
        if time.monotonic() > deadline:
            return None
        time.sleep(0.5)


def burst(
    runtime: KnuserRuntime, during: Callable[[], None] | None = None
) -> dict[str, str | None]:
    """POST BURST users at PER_SECOND; run `during()` after FAULT_AFTER POSTs.

    :return: each user's name → its operation id (None: never accepted).
    """
    prefix = uuid.uuid4().hex[:8]
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        started = time.monotonic()
        futures = {}
        fault = None
        for index in range(BURST):
            if during is not None and index == FAULT_AFTER:
                fault = pool.submit(during)
            time.sleep(max(0.0, started + index / PER_SECOND - time.monotonic()))
            futures[name(index, "Outbox")] = pool.submit(
                create_with_retries, runtime, f"{prefix}-{index}", name(index, "Outbox")
            )
        if fault is not None:
            fault.result()
        return {user: future.result() for user, future in futures.items()}


def settle(runtime: KnuserRuntime, operation_ids: set[str]) -> int:
    """Sweep every 1.5 s until none of `operation_ids` is pending (bounded by SETTLE_SECONDS).

    :return: how many events the sweeps published again.
    """
    deadline = time.monotonic() + SETTLE_SECONDS
    redriven = 0
    while time.monotonic() < deadline:
        pending = {
            op["id"]
            for op in records(runtime.data_dir, "operations")
            if op["id"] in operation_ids and op["status"] == "pending"
        }
        if not pending:
            break
        redriven += runtime.sweep(STALLED_AFTER_SECONDS)["republished"]
        time.sleep(1.5)
    return redriven


def outcome(runtime: KnuserRuntime, accepted: dict[str, str | None], fault: str) -> Outcome:
    """Settle, count lost, duplicate, stranded and wrongly failed operations from both stores,
    and print the fault table's row."""
    ids = {op_id for op_id in accepted.values() if op_id is not None}
    redriven = settle(runtime, ids)
    operations = {op["id"]: op for op in records(runtime.data_dir, "operations")}
    users = [u for u in records(runtime.data_dir, "users") if u["operationId"] in ids]
    per_operation: dict[str, int] = {}
    per_name: dict[str, int] = {}
    for user in users:
        per_operation[user["operationId"]] = per_operation.get(user["operationId"], 0) + 1
        per_name[user["name"]] = per_name.get(user["name"], 0) + 1
    mine = [operations[op_id] for op_id in ids if op_id in operations]
    result = Outcome(
        accepted=len(ids),
        lost=len(ids)
        - sum(1 for op in mine if op["status"] == "completed" and op["id"] in per_operation),
        duplicates=sum(n - 1 for n in per_operation.values())
        + sum(n - 1 for n in per_name.values()),
        stranded=sum(1 for op in mine if op["status"] == "pending"),
        wrongly_failed=sum(
            1 for op in mine if op["status"] == "failed" and op["id"] in per_operation
        ),
    )
    print(result.row(fault, redriven))  # the fault table: pytest -s shows it
    return result


def assert_nothing_lost(
    fault: str, runtime: KnuserRuntime, accepted: dict[str, str | None]
) -> None:
    never = sorted(user for user, op_id in accepted.items() if op_id is None)
    assert not never, f"{len(never)} users never accepted within {CLIENT_RETRY_SECONDS} s: {never}"
    result = outcome(runtime, accepted, fault)
    assert result == Outcome(BURST, 0, 0, 0, 0), result


def runtime_on(data_dir: Path, broker: str, kafka: PrivateServer | None = None) -> KnuserRuntime:
    env = {"BROKER": broker, "STORE": "sqlite"}
    if kafka is not None:
        env["KAFKA_BOOTSTRAP_SERVERS"] = kafka.url
    return KnuserRuntime(data_dir, env)


@pytest.fixture
def inmemory(tmp_path: Path) -> Iterator[KnuserRuntime]:
    runtime = runtime_on(tmp_path, "inmemory")
    runtime.start()
    yield runtime
    runtime.stop()


@pytest.fixture
def on_kafka(tmp_path: Path, private_kafka: PrivateServer) -> Iterator[KnuserRuntime]:
    runtime = runtime_on(tmp_path, "kafka", private_kafka)
    runtime.start()
    yield runtime
    runtime.stop()


def kill_and_restart(runtime: KnuserRuntime) -> None:
    """SIGKILL the runtime (its instances die with it) and start it again on the same ports,
    RUNTIME_KILLS times, a second apart."""
    for _ in range(RUNTIME_KILLS):
        assert runtime.process is not None
        # Strike while a delivery is in flight, so that events die with the runtime (bounded).
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            services = runtime.status()["services"].values()
            if any(s["in_flight"] for s in services):
                break
            time.sleep(0.005)
        runtime.kill()
        runtime.start()
        time.sleep(1.0)


@pytest.mark.kafka
def test_kafka_down_mid_burst(on_kafka: KnuserRuntime, private_kafka: PrivateServer) -> None:
    """kill -9 Kafka after 8 of 30 POSTs, keep it down 10 s, start it: 202s, then all complete."""

    def outage() -> None:
        private_kafka.kill()
        time.sleep(KAFKA_OUTAGE_SECONDS)
        private_kafka.start()

    assert_nothing_lost("Kafka down 10 s mid-burst", on_kafka, burst(on_kafka, outage))


@pytest.mark.parametrize("broker", ["inmemory", pytest.param("kafka", marks=pytest.mark.kafka)])
def test_runtime_killed_mid_burst_and_restarted(
    broker: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """SIGKILL the runtime 3 times from the 8th of 30 POSTs, restarting it each time: the events
    it had queued are delivered again or re-driven by the sweep."""
    kafka = request.getfixturevalue("private_kafka") if broker == "kafka" else None
    runtime = runtime_on(tmp_path, broker, kafka)
    runtime.start()
    try:
        accepted = burst(runtime, partial(kill_and_restart, runtime))
        assert_nothing_lost(
            f"runtime SIGKILLed {RUNTIME_KILLS} times mid-burst ({broker})", runtime, accepted
        )
    finally:
        runtime.stop()


def test_function_instance_killed_mid_burst(inmemory: KnuserRuntime) -> None:
    """kill -9 user-create's busy instance (in-memory broker): retried or re-driven, once."""
    killed: list[int] = []
    accepted = burst(inmemory, partial(kill_busy_instance, inmemory, "user-create", killed))
    assert killed, "user-create never had a delivery in flight to kill"
    assert_nothing_lost("function instance SIGKILLed (inmemory)", inmemory, accepted)


def test_same_key_posted_concurrently(inmemory: KnuserRuntime) -> None:
    """16 clients POST one key at once: one operation, one user; another body with it is 422."""
    key = f"same-{uuid.uuid4().hex}"
    start = threading.Barrier(16)

    def post() -> tuple[int, Any]:
        start.wait(timeout=10)
        return post_user(inmemory, key, "Outbox Same")

    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(lambda _: post(), range(16)))
    assert {status for status, _ in answers} == {202}, answers
    ids = {body["id"] for _, body in answers}
    assert len(ids) == 1
    status, body = post_user(inmemory, key, "Outbox Other")
    assert status == 422, body
    assert "was used for another request" in body["error"]
    result = outcome(inmemory, {"Outbox Same": ids.pop()}, "same key POSTed by 16 clients at once")
    assert result == Outcome(1, 0, 0, 0, 0), result

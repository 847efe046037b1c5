"""A small burst under each fault kind, on each backend: every operation final, one user each.

The whole runtime runs as `make run FAULTS=plan.yaml` runs it (`knlocal run`, SQLite stores) on
its own loopback ports and data folder, with one fault kind in its plan on every Trigger (or on
the Broker's ingress), on BROKER=inmemory, kafka, rabbitmq and nats: the shared servers
(`make kafka rabbitmq nats`; a missing one skips its cases, and fails them when `CI=true`).
What the product claims, checked from the stores by `knlocal burst`'s own
:func:`~knuser_tools.burst.check_stores` and again here by counting user rows:

- every `POST /users` that got 202 ends final (none lost, none stranded pending);
- at-least-once never means twice in effect: one user per completed operation;
- a fault the retries absorb fails no operation.

On a shared server, the manifests' fixed names (topic knative-broker-default-default, exchange
b.default.default, stream KN_DEFAULT__DEFAULT-KNE-TRIGGER, the Triggers' groups and queues)
would be consumed by any other runtime there too: each case runs on a copy of the manifests
whose Broker and Triggers carry a suffix of its own, and deletes what it created afterwards.

`rebalance` is the Kafka backend's own (a consumer group rebalance, knative-semantics.md §3.1):
its case checks the records were delivered again, counted, and still one user per operation.

Bounded: 20 users per burst at 10/s, seeded plans, every wait capped at 60 s.
"""

import shutil
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from knuser_tools.burst import check_stores
from knuser_tools.runtime import KnuserRuntime
from tests.flows import post_users, users_by_operation, wait_final
from tests.servers import (
    ROOT,
    forget_broker_state,
    require_kafka,
    require_nats,
    require_rabbitmq,
)

BURST = 20
PER_SECOND = 10.0
FINISH_SECONDS = 60.0
NAMESPACE = "default"
URL_SETTING = {"kafka": "KAFKA_BOOTSTRAP_SERVERS", "rabbitmq": "RABBITMQ_URL", "nats": "NATS_URL"}
TRIGGERS = ("user-create", "user-approve", "user-create-response", "operation-update")

#: One rule per plan, on every Trigger (or on the Broker), hitting many deliveries; every
#: plan is seeded. `times` keeps every fault one the retries absorb: a Trigger makes 1 + 5
#: attempts (exponential from 0.2 s), functions/sink.py 1 + 3; without it, 0.3^6 per delivery
#: of ~80 per burst would dead-letter (and rightly fail) an operation in ~6 % of the runs.
TRIGGER_RULES = {
    "drop": "{kind: drop, probability: 0.3, times: 5, wait: 0.3}",
    "duplicate": "{kind: duplicate, probability: 0.5, delay: 0.05}",
    "delay": "{kind: delay, probability: 0.5, delay: [0.05, 0.3]}",
    "reorder": "{kind: reorder, probability: 0.5, window: 3, delay: 0.3}",
    "fail": "{kind: fail, status: 503, probability: 0.25, times: 5}",
    "slow_reply": "{kind: slow_reply, probability: 0.5, delay: 0.2}",
    "rebalance": "{kind: rebalance, every: 4}",
}
BROKER_RULES = {
    "broker-duplicate": "{kind: duplicate, probability: 0.5, delay: 0.05}",
    "broker-delay": "{kind: delay, probability: 0.5, delay: [0.05, 0.3]}",
    "broker-fail": "{kind: fail, status: 503, probability: 0.2, times: 3}",
}
#: Fault kinds a backend cannot have: only a Kafka consumer group rebalances.
ONLY_ON = {"rebalance": "kafka"}
BACKENDS = ("inmemory", "kafka", "rabbitmq", "nats")
REQUIRE: dict[str, Callable[[], object]] = {
    "kafka": require_kafka,
    "rabbitmq": require_rabbitmq,
    "nats": require_nats,
}


def plan_text(fault: str, suffix: str) -> str:
    if fault in TRIGGER_RULES:
        rules = "".join(f"  {NAMESPACE}/{t}-{suffix}: [{TRIGGER_RULES[fault]}]\n" for t in TRIGGERS)
        return f"seed: 14\ntriggers:\n{rules}"
    return f"seed: 14\nbrokers:\n  {NAMESPACE}/faults-{suffix}: [{BROKER_RULES[fault]}]\n"


def isolated_manifests(folder: Path, suffix: str) -> Path:
    """A copy of the manifests whose Broker is `faults-<suffix>` and Triggers `<name>-<suffix>`.

    Only names change: the Services, filters, deliveries and ConfigMaps are the project's.
    """
    for part in ("knative", "sources", "brokers"):
        shutil.copytree(ROOT / part, folder / part)
    shutil.copy(ROOT / "pyproject.toml", folder)  # [tool.knlocal]: what the Services run
    (folder / "triggers").mkdir()
    broker = f"faults-{suffix}"
    for path in [*(folder / "brokers").glob("*/*.yaml"), folder / "knative" / "sinkbinding.yaml"]:
        docs = list(yaml.safe_load_all(path.read_text()))
        for doc in docs:
            if doc["kind"] == "Broker":
                doc["metadata"]["name"] = broker
            elif doc["kind"] == "SinkBinding":
                doc["spec"]["sink"]["ref"]["name"] = broker
        path.write_text(yaml.safe_dump_all(docs))
    for path in (ROOT / "triggers").glob("*.yaml"):
        doc = yaml.safe_load(path.read_text())
        doc["metadata"]["name"] = f"{doc['metadata']['name']}-{suffix}"
        doc["spec"]["broker"] = broker
        (folder / "triggers" / path.name).write_text(yaml.safe_dump(doc))
    return folder


def backend_env(backend: str) -> dict[str, str]:
    if backend == "inmemory":
        return {"BROKER": "inmemory"}
    settings: Any = REQUIRE[backend]()
    return {
        "BROKER": backend,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "RABBITMQ_URL": settings.rabbitmq_url,
        "NATS_URL": settings.nats_url,
    }


CASES = [
    pytest.param(backend, fault, marks=[pytest.mark.kafka] if backend == "kafka" else [])
    for backend in BACKENDS
    for fault in [*TRIGGER_RULES, *BROKER_RULES]
    if ONLY_ON.get(fault, backend) == backend
]


@dataclass(frozen=True)
class Burst:
    """What a burst under a plan left: the POSTs' answers, the final operations, the faults."""

    answers: list[tuple[int, dict[str, Any]]]
    accepted: list[str]
    final: dict[str, dict[str, Any]]
    injected: dict[str, dict[str, int]]
    data_dir: Path


def burst_under(tmp_path: Path, backend: str, plan: Callable[[str], str], users: int) -> Burst:
    """Run the runtime on isolated manifests under `plan(suffix)`, POST a burst, wait final."""
    suffix = uuid.uuid4().hex[:8]
    plan_path = tmp_path / "faults.yaml"
    plan_path.write_text(plan(suffix))
    env = {
        **backend_env(backend),
        "STORE": "sqlite",
        "FAULTS": str(plan_path),
        "MANIFESTS": str(isolated_manifests(tmp_path / "manifests", suffix)),
    }
    runtime = KnuserRuntime(tmp_path / "data", env)
    try:
        runtime.start()
        answers = post_users(runtime, users, PER_SECOND)
        accepted = [body["id"] for status, body in answers if status == 202]
        final = wait_final(runtime, accepted, FINISH_SECONDS)
        injected = runtime.status()["faults"]
    finally:
        runtime.stop()
        if backend != "inmemory":
            url = env[URL_SETTING[backend]]
            triggers = [f"{t}-{suffix}" for t in TRIGGERS]
            forget_broker_state(backend, url, f"faults-{suffix}", triggers, NAMESPACE)
    return Burst(answers, accepted, final, injected, runtime.data_dir)


@pytest.mark.parametrize(("backend", "fault"), CASES)
def test_a_burst_under_one_fault_kind_ends_final_with_one_user_per_operation(
    tmp_path: Path, backend: str, fault: str
) -> None:
    burst = burst_under(tmp_path, backend, lambda suffix: plan_text(fault, suffix), BURST)
    kind = fault.removeprefix("broker-")
    injected = burst.injected
    assert sum(kinds.get(kind, 0) for kinds in injected.values()) > 0, injected
    if kind == "rebalance":  # the records since the last commit did come again
        assert sum(kinds.get("redelivered", 0) for kinds in injected.values()) > 0, injected
    assert {s for s, _ in burst.answers} == {202}, burst.answers  # functions/sink.py retries
    accepted, final = burst.accepted, burst.final
    verdict = check_stores(burst.data_dir, accepted, lost=sorted(set(accepted) - set(final)))
    assert verdict["ok"], verdict
    failed = {i: op["error"] for i, op in final.items() if op["status"] == "failed"}
    assert not failed, failed
    users = users_by_operation(burst.data_dir)
    completed = [i for i in accepted if final[i]["status"] == "completed"]
    assert {i: users.get(i) for i in completed} == dict.fromkeys(completed, 1)


@pytest.mark.parametrize(
    "backend",
    [pytest.param(b, marks=[pytest.mark.kafka] if b == "kafka" else []) for b in BACKENDS],
)
def test_a_fault_past_the_retries_dead_letters_and_fails_the_operation_saying_why(
    tmp_path: Path, backend: str
) -> None:
    """Every attempt at user-approve refused: after 1 + 5 the dead-letter sink fails it (§2.8)."""

    def plan(suffix: str) -> str:
        rule = "{kind: fail, status: 503, every: 1}"
        return f"triggers:\n  {NAMESPACE}/user-approve-{suffix}: [{rule}]\n"

    burst = burst_under(tmp_path, backend, plan, 2)
    assert len(burst.accepted) == 2, burst.answers
    assert set(burst.final) == set(burst.accepted)  # final, not stranded
    for operation in burst.final.values():
        assert operation["status"] == "failed", operation
        reason = operation["error"]["reason"]
        assert "user.created" in reason and "user-approve" in reason and "503" in reason, reason
    injected = sum((Counter(kinds) for kinds in burst.injected.values()), Counter())
    assert injected == {"fail": 2 * 6}, burst.injected
    assert users_by_operation(burst.data_dir) == dict.fromkeys(burst.accepted, 1)

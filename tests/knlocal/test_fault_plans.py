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
from collections.abc import Callable
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
#: plan is seeded. Retries (5, exponential from 0.2 s) absorb each trigger fault.
TRIGGER_RULES = {
    "drop": "{kind: drop, probability: 0.3, wait: 0.3}",
    "duplicate": "{kind: duplicate, probability: 0.5, delay: 0.05}",
    "delay": "{kind: delay, probability: 0.5, delay: [0.05, 0.3]}",
    "reorder": "{kind: reorder, probability: 0.5, window: 3, delay: 0.3}",
    "fail": "{kind: fail, status: 503, probability: 0.25}",
    "slow_reply": "{kind: slow_reply, probability: 0.5, delay: 0.2}",
    "rebalance": "{kind: rebalance, every: 4}",
}
BROKER_RULES = {
    "broker-duplicate": "{kind: duplicate, probability: 0.5, delay: 0.05}",
    "broker-delay": "{kind: delay, probability: 0.5, delay: [0.05, 0.3]}",
    "broker-fail": "{kind: fail, status: 503, probability: 0.2}",
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


@pytest.mark.parametrize(("backend", "fault"), CASES)
def test_a_burst_under_one_fault_kind_ends_final_with_one_user_per_operation(
    tmp_path: Path, backend: str, fault: str
) -> None:
    suffix = uuid.uuid4().hex[:8]
    plan = tmp_path / "faults.yaml"
    plan.write_text(plan_text(fault, suffix))
    env = {
        **backend_env(backend),
        "STORE": "sqlite",
        "FAULTS": str(plan),
        "MANIFESTS": str(isolated_manifests(tmp_path / "manifests", suffix)),
    }
    runtime = KnuserRuntime(tmp_path / "data", env)
    try:
        runtime.start()
        answers = post_users(runtime, BURST, PER_SECOND)
        accepted = [body["id"] for status, body in answers if status == 202]
        final = wait_final(runtime, accepted, FINISH_SECONDS)
        injected = runtime.status()["faults"]
    finally:
        runtime.stop()
        if backend != "inmemory":
            url = env[URL_SETTING[backend]]
            triggers = [f"{t}-{suffix}" for t in TRIGGERS]
            forget_broker_state(backend, url, f"faults-{suffix}", triggers, NAMESPACE)
    kind = fault.removeprefix("broker-")
    assert sum(kinds.get(kind, 0) for kinds in injected.values()) > 0, injected
    if kind == "rebalance":  # the records since the last commit did come again
        assert sum(kinds.get("redelivered", 0) for kinds in injected.values()) > 0, injected
    # functions/sink.py retries the ingress's 503; only if every try is refused does the
    # POST answer 503 (and the operation, failed, is the client's to retry).
    allowed = {202, 503} if fault == "broker-fail" else {202}
    assert {s for s, _ in answers} <= allowed, answers
    verdict = check_stores(runtime.data_dir, accepted, lost=sorted(set(accepted) - set(final)))
    assert verdict["ok"], verdict
    failed = {i: op for i, op in final.items() if op["status"] == "failed"}
    assert not failed, failed  # 5 retries (of 20 % each) absorb even the ingress's 503s
    users = users_by_operation(runtime.data_dir)
    completed = [i for i in accepted if final[i]["status"] == "completed"]
    assert {i: users.get(i) for i in completed} == dict.fromkeys(completed, 1)

"""A small burst under each fault kind, on each backend: every operation final, one user each.

The whole runtime runs as `make run FAULTS=plan.yaml` runs it (`knlocal run`, SQLite stores) on
its own loopback ports and data folder, with one fault kind in its plan on every Trigger (or on
the Broker's ingress). What the product claims, checked from the stores by `knlocal burst`'s own
:func:`~knuser_tools.burst.check_stores` and again here by counting user rows:

- every `POST /users` that got 202 ends final (none lost, none stranded pending);
- at-least-once never means twice in effect: one user per completed operation;
- a fault the retries absorb fails no operation; only a refused reply (the Broker's ingress
  answering 503 to every try) may fail one, and then it has no user that was decided.

The Kafka backend runs on a Kafka of this module's own (tests/conftest.py's `private_kafka`): the
runtime's topic and consumer groups are the manifests' fixed names, which another runtime on the
shared Kafka would consume from too. Topics and groups are deleted between runtimes.

Bounded: 10 users per burst at 10/s, seeded plans, every wait capped at 30 s.
"""

from pathlib import Path

import pytest

from knlocal.eventing.classes import KAFKA_BROKER
from knuser_tools.burst import check_stores
from knuser_tools.runtime import KnuserRuntime
from tests.flows import post_users, users_by_operation, wait_final
from tests.servers import drop_kafka

BURST = 10
PER_SECOND = 10.0
FINISH_SECONDS = 30.0
TRIGGERS = (
    "default/user-create",
    "default/user-approve",
    "default/user-create-response",
    "default/operation-update",
)

#: One rule per plan, on every Trigger (or on the Broker), hitting many deliveries; every
#: plan is seeded. Retries (5, exponential from 0.2 s) absorb each trigger fault.
TRIGGER_RULES = {
    "drop": "{kind: drop, probability: 0.3, wait: 0.3}",
    "duplicate": "{kind: duplicate, probability: 0.5, delay: 0.05}",
    "delay": "{kind: delay, probability: 0.5, delay: [0.05, 0.3]}",
    "reorder": "{kind: reorder, probability: 0.5, window: 3, delay: 0.3}",
    "fail": "{kind: fail, status: 503, probability: 0.25}",
    "slow_reply": "{kind: slow_reply, probability: 0.5, delay: 0.2}",
}
BROKER_RULES = {
    "broker-duplicate": "{kind: duplicate, probability: 0.5, delay: 0.05}",
    "broker-delay": "{kind: delay, probability: 0.5, delay: [0.05, 0.3]}",
    "broker-fail": "{kind: fail, status: 503, probability: 0.2}",
}


def plan_text(fault: str) -> str:
    if fault in TRIGGER_RULES:
        rules = "".join(f"  {t}: [{TRIGGER_RULES[fault]}]\n" for t in TRIGGERS)
        return f"seed: 14\ntriggers:\n{rules}"
    return f"seed: 14\nbrokers:\n  default/default: [{BROKER_RULES[fault]}]\n"


def backend_env(request: pytest.FixtureRequest, backend: str) -> dict[str, str]:
    if backend == "inmemory":
        return {"BROKER": "inmemory"}
    servers = request.getfixturevalue("private_kafka").url
    return {"BROKER": "kafka", "KAFKA_BOOTSTRAP_SERVERS": servers}


def forget_kafka_state(servers: str) -> None:
    """Delete the Broker's topic and the Triggers' groups, so the next runtime starts afresh."""
    groups = [KAFKA_BROKER.consumer_group(*trigger.split("/")) for trigger in TRIGGERS]
    drop_kafka(servers, ["knative-broker-default-default"], groups)


@pytest.mark.parametrize("fault", [*TRIGGER_RULES, *BROKER_RULES])
@pytest.mark.parametrize("backend", ["inmemory", pytest.param("kafka", marks=pytest.mark.kafka)])
def test_a_burst_under_one_fault_kind_ends_final_with_one_user_per_operation(
    request: pytest.FixtureRequest, tmp_path: Path, backend: str, fault: str
) -> None:
    plan = tmp_path / "faults.yaml"
    plan.write_text(plan_text(fault))
    env = {**backend_env(request, backend), "STORE": "sqlite", "FAULTS": str(plan)}
    runtime = KnuserRuntime(tmp_path / "data", env)
    runtime.start()
    try:
        answers = post_users(runtime, BURST, PER_SECOND)
        accepted = [body["id"] for status, body in answers if status == 202]
        final = wait_final(runtime, accepted, FINISH_SECONDS)
        injected = runtime.status()["faults"]
    finally:
        runtime.stop()
        if backend == "kafka":
            forget_kafka_state(env["KAFKA_BOOTSTRAP_SERVERS"])
    kind = fault.removeprefix("broker-")
    assert sum(kinds.get(kind, 0) for kinds in injected.values()) > 0, injected
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

"""Fault plans: parsed with clear errors; each kind does what the plan says to a destination.

The destination is a small scripted :class:`~knlocal.eventing.sender.Target` that records what
reached it (the subscriber's side of the wire); the plan and the injector are the real ones.
"""

import asyncio
from collections.abc import Mapping
from pathlib import Path

import pytest

from knlocal.apis import loader
from knlocal.apis.classes import MT_CHANNEL_BASED_BROKER
from knlocal.apis.eventing import Broker
from knlocal.eventing.backends.memory import MemoryBackend, MemorySubscription
from knlocal.eventing.faults import Delay, FaultPlanError, FaultyTarget, Injector, Rule, load
from knlocal.eventing.sender import Reply
from knlocal.settings import Settings

ROOT = Path(__file__).resolve().parents[3]

GOOD = """
seed: 7
triggers:
  default/user-create:
    - {kind: duplicate, probability: 0.5, delay: 0.01}
    - {kind: fail, status: 500, every: 3}
  default/user-approve:
    - {kind: delay, every: 1, delay: [0.01, 0.02]}
brokers:
  default/default:
    - {kind: fail, probability: 0.1}
"""


def plan_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "faults.yaml"
    path.write_text(text)
    return path


def test_a_good_plan_loads_into_frozen_rules(tmp_path: Path) -> None:
    plan = load(plan_file(tmp_path, GOOD))
    assert plan.seed == 7
    assert plan.triggers["default/user-create"] == (
        Rule("duplicate", probability=0.5, delay=Delay(0.01, 0.01)),
        Rule("fail", every=3, status=500),
    )
    assert plan.triggers["default/user-approve"][0].delay == Delay(0.01, 0.02)
    assert plan.brokers["default/default"] == (Rule("fail", probability=0.1),)
    with pytest.raises(AttributeError):
        plan.seed = 8  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1, 2]", "the document: expected a mapping; found [1, 2]"),
        ("seed: x", "seed: expected an integer; found 'x'"),
        ("faults: {}", "expected the keys seed, triggers, brokers; found faults"),
        ("triggers: {user-create: [{kind: drop, every: 1}]}", "expected <namespace>/<name>"),
        ("triggers: {default/t: []}", "triggers.default/t: expected a list of rules; found []"),
        (
            "triggers: {default/t: [{kind: explode, every: 1}]}",
            "triggers.default/t[0].kind: expected one of delay, drop, duplicate, fail, rebalance,"
            " reorder, slow_reply; found 'explode'",
        ),
        (
            "brokers: {default/b: [{kind: drop, every: 1}]}",
            "brokers.default/b[0].kind: expected one of delay, duplicate, fail; found 'drop'",
        ),
        (
            "triggers: {default/t: [{kind: drop}]}",
            "expected one of probability or every; found neither",
        ),
        (
            "triggers: {default/t: [{kind: drop, every: 2, probability: 0.5}]}",
            "expected one of probability or every; found both",
        ),
        (
            "triggers: {default/t: [{kind: drop, probability: 1.5}]}",
            "triggers.default/t[0].probability: expected a number in (0, 1]; found 1.5",
        ),
        (
            "triggers: {default/t: [{kind: drop, every: 0}]}",
            "every: expected a positive integer; found 0",
        ),
        (
            "triggers: {default/t: [{kind: delay, every: 1, delay: [2, 1]}]}",
            "delay: expected seconds ≥ 0, or [min, max]; found [2, 1]",
        ),
        (
            "triggers: {default/t: [{kind: fail, every: 1, status: 200}]}",
            "status: expected an HTTP error status (400-599); found 200",
        ),
        (
            "triggers: {default/t: [{kind: fail, every: 1, times: 0}]}",
            "times: expected a positive integer; found 0",
        ),
        (
            "triggers: {default/t: [{kind: fail, every: 1, code: 503}]}",
            "expected keys among",
        ),
        ("triggers: {default/t: [{kind: drop, every: 1", "not valid YAML"),
    ],
)
def test_a_bad_plan_says_the_file_the_key_what_was_expected_and_found(
    tmp_path: Path, text: str, message: str
) -> None:
    path = plan_file(tmp_path, text)
    with pytest.raises(FaultPlanError) as raised:
        load(path)
    assert str(raised.value).startswith(f"{path}: ")
    assert message in str(raised.value)


def test_a_missing_plan_file_is_a_plan_error(tmp_path: Path) -> None:
    with pytest.raises(FaultPlanError, match="cannot read the fault plan"):
        load(tmp_path / "absent.yaml")


def test_a_plan_naming_a_trigger_the_manifests_lack_is_refused(tmp_path: Path) -> None:
    plan = load(plan_file(tmp_path, GOOD))
    with pytest.raises(FaultPlanError, match=r"triggers\.default/user-approve: expected one of"):
        plan.check_names({"default/user-create"}, {"default/default"})


class Recorder:
    """A subscriber that answers 200 and records the event ids it saw."""

    url = "http://subscriber.test"

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def send(self, headers: Mapping[str, str], body: bytes, timeout: float | None) -> Reply:
        self.seen.append(headers["ce-id"])
        return Reply(200, {}, b"")


def target(tmp_path: Path, rules: str) -> tuple[FaultyTarget, Recorder, Injector]:
    plan = load(plan_file(tmp_path, f"triggers:\n  default/t: {rules}\n"))
    recorder = Recorder()
    injector = Injector(plan)
    return (
        FaultyTarget(recorder, "default/t", plan.triggers["default/t"], injector),
        recorder,
        injector,
    )


def deliver(faulty: FaultyTarget, ids: list[str], timeout: float | None = None) -> list[Reply]:
    async def run() -> list[Reply]:
        return list(await asyncio.gather(*(faulty.send({"ce-id": i}, b"", timeout) for i in ids)))

    return asyncio.run(run())


def test_drop_never_reaches_the_subscriber_and_times_out(tmp_path: Path) -> None:
    faulty, recorder, injector = target(tmp_path, "[{kind: drop, every: 2, wait: 0.01}]")
    replies = deliver(faulty, ["a", "b", "c", "d"])
    assert recorder.seen == ["a", "c"]
    assert [r.timed_out for r in replies] == [False, True, False, True]
    assert injector.snapshot() == {"default/t": {"drop": 2}}


def test_drop_waits_the_request_timeout_when_it_is_shorter(tmp_path: Path) -> None:
    faulty, _, _ = target(tmp_path, "[{kind: drop, every: 1, wait: 5}]")
    started = asyncio.run(_elapsed(faulty, 0.05))
    assert 0.04 <= started < 1


async def _elapsed(faulty: FaultyTarget, timeout: float) -> float:
    loop = asyncio.get_running_loop()
    began = loop.time()
    await faulty.send({"ce-id": "a"}, b"", timeout)
    return loop.time() - began


def test_times_caps_the_hits_on_one_event_so_its_retries_get_through(tmp_path: Path) -> None:
    faulty, recorder, injector = target(tmp_path, "[{kind: fail, every: 1, times: 2}]")
    statuses = [r.status for r in deliver(faulty, ["a", "a", "a", "b", "a"])]
    assert statuses == [503, 503, 200, 503, 200]  # "b" is an event of its own
    assert recorder.seen == ["a", "a"]
    assert injector.snapshot() == {"default/t": {"fail": 3}}


def test_duplicate_reaches_the_subscriber_twice(tmp_path: Path) -> None:
    faulty, recorder, _ = target(tmp_path, "[{kind: duplicate, every: 1, delay: 0.01}]")
    deliver(faulty, ["a"])
    assert recorder.seen == ["a", "a"]


def test_fail_answers_the_injected_status_without_the_subscriber(tmp_path: Path) -> None:
    faulty, recorder, _ = target(tmp_path, "[{kind: fail, every: 1, status: 500}]")
    [reply] = deliver(faulty, ["a"])
    assert (reply.status, recorder.seen) == (500, [])


def test_reorder_releases_a_full_window_shuffled(tmp_path: Path) -> None:
    faulty, recorder, _ = target(tmp_path, "[{kind: reorder, every: 1, window: 6, delay: 5}]")
    ids = list("abcdef")
    deliver(faulty, ids)
    assert sorted(recorder.seen) == ids
    assert recorder.seen != ids  # seeded: this shuffle of 6 is not the identity


def test_slow_reply_past_the_timeout_is_handled_yet_times_out(tmp_path: Path) -> None:
    faulty, recorder, _ = target(tmp_path, "[{kind: slow_reply, every: 1, delay: 1}]")
    [reply] = deliver(faulty, ["a"], timeout=0.05)
    assert recorder.seen == ["a"]
    assert reply.timed_out


def test_the_same_seed_hits_the_same_deliveries(tmp_path: Path) -> None:
    runs = []
    for _ in range(2):
        faulty, recorder, _ = target(tmp_path, "[{kind: fail, probability: 0.5}]")
        for i in range(20):
            deliver(faulty, [str(i)])
        runs.append(recorder.seen)
    assert runs[0] == runs[1]
    assert 0 < len(runs[0]) < 20


def test_the_readme_example_plan_names_what_the_manifests_have() -> None:
    plan = load(ROOT / "docs" / "faults-example.yaml")
    system = loader.load(Settings.from_env(manifests=str(ROOT)))
    plan.check_names({t.key for t in system.triggers}, {b.key for b in system.brokers.values()})
    assert {r.kind for rules in plan.triggers.values() for r in rules} >= {"duplicate", "drop"}


def test_rebalance_expects_the_kafka_backend(tmp_path: Path) -> None:
    """A consumer that cannot rebalance (here the in-memory one) is refused at start, naming why."""
    faulty, _, _ = target(tmp_path, "[{kind: rebalance, every: 3}]")
    backend = MemoryBackend(
        Broker("default", "default", MT_CHANNEL_BASED_BROKER, None, None), {}, Settings()
    )
    subscription = MemorySubscription(backend, "g")
    with pytest.raises(FaultPlanError, match="default/t: a rebalance fault expects a Trigger on"):
        faulty.attach(subscription)
    plain, _, _ = target(tmp_path, "[{kind: drop, every: 3}]")
    plain.attach(subscription)  # no rebalance rule: any backend


def test_two_rebalances_of_a_trigger_are_wait_seconds_apart(tmp_path: Path) -> None:
    """Redelivered records are deliveries too: without the gap a group never gets ahead."""
    plan = load(plan_file(tmp_path, "triggers:\n  default/t: [{kind: rebalance, every: 1}]\n"))
    injector = Injector(plan)
    rules = plan.triggers["default/t"]
    hits = [injector.pick("default/t", rules, str(i)) for i in range(5)]
    assert [hit is not None for hit in hits] == [True, False, False, False, False]
    assert injector.snapshot() == {"default/t": {"rebalance": 1}}

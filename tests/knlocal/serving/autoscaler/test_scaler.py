"""Bounds, scale to zero, Poke and the activator path against knative-semantics.md §1.5-§1.7.

Defaults used throughout (§1.2, §1.4): target utilization 0.7, so TargetValue = 100 * 0.7 = 70
and TotalValue = 100; stable window 60 s, panic window 60 * 10 % = 6 s, panic threshold 200 % =
2.0, max scale-up rate 1000, max scale-down rate 2, target burst capacity 211, grace period 30 s.
Every expected value is derived by hand from the formulas of the semantics document; the
arithmetic is in the comment next to it.
"""

from collections.abc import Callable

import pytest

from knlocal.serving.autoscaler.scaler import KPA, ScaleDecision
from tests.knlocal.serving.autoscaler.scenario import (
    Decide,
    Feed,
    Step,
    run,
    scaling,
)

# ------------------------------------------------------------------------------------------
# §1.6 bounds, initial scale
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("annotations", "reachable", "steps"),
    [
        # min 2, no load, 2 ready: decider clamp(0, floor(2 / 2) = 1, 2000) = 1 -> min 2
        ({"min-scale": "2"}, True, [Feed(0, 10, 0), Decide(9, ready=2, desired=2)]),
        # max 3: 700 with 3 ready: dspc = dppc = 10, 10 / 3 >= 2: panic 10 -> max 3
        ({"max-scale": "3"}, True, [Feed(0, 60, 700), Decide(59, ready=3, desired=3, panic=True)]),
        # max 0 = unbounded: 10
        ({"max-scale": "0"}, True, [Feed(0, 60, 700), Decide(59, ready=3, desired=10)]),
        (
            # window 6 s (panic 1 s): load 70 at t=0, 1 ready: dspc 1 -> min 2. Then no load:
            # t=9 buckets 4..9 = 0 -> clamp(0, floor(2 / 2) = 1, 2000) = 1 -> min 2
            {"window": "6s", "min-scale": "2"},
            True,
            [
                Feed(0, 1, 70),
                Decide(0, ready=1, desired=2),
                Feed(1, 10, 0),
                Decide(9, ready=2, desired=2),
            ],
        ),
        (
            # same, unreachable: min ignored and maxDown = 0, so the decider says 0; Active for
            # 9 >= 6 s: marked Inactive, the instance stays (want 0, activator in path)
            {"window": "6s", "min-scale": "2"},
            False,
            [
                Feed(0, 1, 70),
                Decide(0, ready=1, desired=1),
                Feed(1, 10, 0),
                Decide(9, ready=2, desired=1, in_path=True, state="inactive"),
            ],
        ),
    ],
    ids=["min-2", "max-3", "max-unbounded", "min-after-active", "min-ignored-unreachable"],
)
def test_s1_6_min_and_max_scale(
    annotations: dict[str, str], reachable: bool, steps: list[Step]
) -> None:
    run(KPA(scaling(annotations, reachable=reachable), 0.0), steps)


@pytest.mark.parametrize(
    ("annotations", "config", "steps"),
    [
        (
            {"initial-scale": "3"},
            {},
            [
                # no data, activating: min = max(0, initial 3) = 3; 0 ready < 3: activating
                Decide(0, ready=0, desired=3, state="activating"),
                # 3 ready reach the initial scale: initialized, Active
                Decide(2, ready=3, desired=3, state="active"),
                # now initial scale no longer applies: no load, clamp(0, floor(3 / 2), 3000) = 1
                Feed(2, 10, 0),
                Decide(9, ready=3, desired=1, state="active"),
            ],
        ),
        (
            {"initial-scale": "3"},
            {},
            [
                # data says 0 (clamp(0, floor(1 / 2) = 0, 1000)) but only 1 of 3 is ready:
                # not initialized, min stays 3
                Feed(0, 10, 0),
                Decide(9, ready=1, desired=3, state="activating"),
            ],
        ),
        (
            {"initial-scale": "3"},
            {},
            [
                # load 10, 1 ready: dspc ceil(10 / 70) = 1, clamp(1, 0, 1000) = 1; not yet
                # initialized, so min = max(0, 3) = 3 raises it to 3
                Feed(0, 10, 10),
                Decide(9, ready=1, desired=3, state="activating"),
                # 3 ready: the scaler still bounds at 3, then the revision is initialized
                Feed(10, 12, 10),
                Decide(11, ready=3, desired=3, state="active"),
                # initialized: clamp(1, floor(3 / 2) = 1, 3000) = 1 and no initial bound
                Feed(12, 14, 10),
                Decide(13, ready=3, desired=1, state="active"),
            ],
        ),
        (
            # initial 0 allowed: starts at 0; threshold max(0, 0) = 0 -> Inactive at once;
            # initial EBC 0 * 100 - 211 = -211 < 0: activator in path
            {"initial-scale": "0"},
            {"allow-zero-initial-scale": "true"},
            [Decide(0, ready=0, desired=0, ebc=-211, in_path=True, state="inactive")],
        ),
        (
            # same with TBC 0 (EBC 0): at scale 0 the activator is in path all the same (§1.7);
            # later ticks without data: want -1 on an Inactive revision also means Proxy
            {"initial-scale": "0", "target-burst-capacity": "0"},
            {"allow-zero-initial-scale": "true"},
            [
                Decide(0, ready=0, desired=0, ebc=0, in_path=True, state="inactive"),
                Decide(2, ready=0, desired=0, ebc=0, in_path=True, state="inactive"),
            ],
        ),
        (
            # ConfigMap initial-scale 2 and min-scale 3: min = max(3, 2) = 3
            {},
            {"initial-scale": "2", "min-scale": "3"},
            [Decide(0, ready=0, desired=3, state="activating")],
        ),
    ],
    ids=[
        "until-reached",
        "not-yet-reached",
        "raises-a-low-desired",
        "zero-allowed",
        "zero-allowed-tbc-0",
        "min-above-initial",
    ],
)
def test_s1_6_initial_scale_until_first_reached(
    annotations: dict[str, str], config: dict[str, str], steps: list[Step]
) -> None:
    run(KPA(scaling(annotations, config=config), 0.0), steps)


# ------------------------------------------------------------------------------------------
# §1.6 scale to zero
# ------------------------------------------------------------------------------------------


def simulate(
    kpa: KPA, until: int, load: Callable[[int], float]
) -> tuple[int | None, int | None, list[ScaleDecision]]:
    """Record load(t) every second and decide every 2 s; instances get ready at once.

    :return: the first tick marked Inactive, the first tick with 0 desired, all decisions.
    """
    ready = kpa.scaling.initial_scale
    inactive_at: int | None = None
    zero_at: int | None = None
    decisions: list[ScaleDecision] = []
    for t in range(until + 1):
        kpa.record(float(t), load(t))
        if t % 2:
            continue
        decision = kpa.decide(float(t), ready)
        decisions.append(decision)
        ready = decision.desired
        if inactive_at is None and kpa.state == "inactive":
            inactive_at = t
        if zero_at is None and decision.desired == 0:
            zero_at = t
    return inactive_at, zero_at, decisions


def idle(_: int) -> float:
    return 0.0


def busy_first_30s(t: int) -> float:
    return 1.0 if t < 30 else 0.0


@pytest.mark.parametrize(
    ("annotations", "config", "load", "inactive_at", "zero_at"),
    [
        # Active from t=0 (1 ready >= threshold 1). Desired 0 but active < 60 s: keep 1.
        # t=60: active for 60 >= 60: mark Inactive, keep the instance. EBC = floor(1 * 100 -
        # 211 - 0) = -111 < 0 put the activator in path at t=0, so it has proxied for
        # 62 >= 30 s grace at t=62: scale to 0
        ({}, {}, idle, 60, 62),
        # TBC 0: EBC 0, the activator enters the path only at t=60 (want 0);
        # inactive for 30 >= grace 30 at t=90
        ({"target-burst-capacity": "0"}, {}, idle, 60, 90),
        # retention 45 s: inactive for >= max(30, 45) = 45 -> first tick >= 105 is 106
        ({"scale-to-zero-pod-retention-period": "45s"}, {}, idle, 60, 106),
        # grace 10 s, TBC 0: inactive for 10 >= max(10, 0) at t=70
        ({"target-burst-capacity": "0"}, {"scale-to-zero-grace-period": "10s"}, idle, 60, 70),
        # grace 10 s, retention 45 s, TBC 0: max(10, 45) = 45 -> 106
        (
            {"target-burst-capacity": "0", "scale-to-zero-pod-retention-period": "45s"},
            {"scale-to-zero-grace-period": "10s"},
            idle,
            60,
            106,
        ),
        # stable window 30 s: Inactive once active for 30 s, fast path at 32
        ({"window": "30s"}, {}, idle, 30, 32),
        # load 1 during t=0..29: at t=88 the window 29..88 still holds 1 -> 1 / 60 = 0.0167,
        # dspc 1; at t=90 (31..90 all 0) desired 0, active 90 >= 60: Inactive, zero at 92
        ({}, {}, busy_first_30s, 90, 92),
        # enable-scale-to-zero false: 0 becomes 1, never Inactive
        ({}, {"enable-scale-to-zero": "false"}, idle, None, None),
    ],
    ids=[
        "defaults-tbc-211",
        "tbc-0-waits-grace",
        "retention-45s",
        "grace-10s",
        "retention-beats-grace",
        "window-30s",
        "after-traffic-stops",
        "scale-to-zero-disabled",
    ],
)
def test_s1_6_scale_to_zero_after_stable_window_and_grace(
    annotations: dict[str, str],
    config: dict[str, str],
    load: Callable[[int], float],
    inactive_at: int | None,
    zero_at: int | None,
) -> None:
    kpa = KPA(scaling(annotations, config=config), 0.0)
    got_inactive, got_zero, decisions = simulate(kpa, 300, load)
    assert (got_inactive, got_zero) == (inactive_at, zero_at)
    if zero_at is None:
        # 0 becomes 1 for every tick after the first
        assert {d.desired for d in decisions} == {1}
    else:
        # one instance until the zero tick, 0 after, activator in path at zero (§1.7)
        before = decisions[: zero_at // 2]
        after = decisions[zero_at // 2 :]
        assert {d.desired for d in before} == {1}
        assert {d.desired for d in after} == {0}
        assert all(d.activator_in_path for d in after)


def test_s1_6_activation_that_never_gets_ready_gives_up_after_progress_deadline() -> None:
    # No instance ever ready, no load: the decider says 0, Activating keeps the scale until
    # activating for more than 600 + 30 = 630 s: t=630 not yet, t=632 scale to 0 (TimedOut)
    kpa = KPA(scaling(), 0.0)
    run(
        kpa,
        [
            Feed(0, 631, 0),
            Decide(630, ready=0, desired=1, state="activating"),
            Feed(631, 633, 0),
            Decide(632, ready=0, desired=0, in_path=True, state="inactive"),
        ],
    )


# ------------------------------------------------------------------------------------------
# §1.5 Poke
# ------------------------------------------------------------------------------------------


def test_s1_5_poke_scales_up_from_zero_at_once() -> None:
    kpa = KPA(scaling(), 0.0)
    _, zero_at, _ = simulate(kpa, 99, idle)
    assert zero_at == 62
    assert kpa.desired_scale == 0
    # No request yet: Knative would not poke
    assert kpa.poke(100.0, 0, 0.0) is None
    # A request at t=100: stable = 1 / 60 = 0.016666, dspc 1; 0 ready count as 1, maxDown
    # floor(1 / 2) = 0: 1. Panic = 1 / 6, dppc 1, 1 / 1 < 2. EBC = floor(0 * 100 - 211 -
    # 0.166666) = -212. Inactive -> apply 1; 0 ready < 1: Activating.
    kpa.record(100.0, 1.0)
    decision = kpa.poke(100.5, 0, 1.0)
    assert decision == ScaleDecision(
        desired=1, panic=False, excess_burst_capacity=-212, activator_in_path=True
    )
    assert kpa.state == "activating"
    # The decider no longer says 0: no further poke
    assert kpa.poke(100.7, 0, 1.0) is None


def test_s1_5_poke_needs_a_decider_at_zero() -> None:
    # A new revision's decider is at -1 (unknown), not 0: wait for the tick
    kpa = KPA(scaling(), 0.0)
    kpa.record(0.0, 5.0)
    assert kpa.poke(0.5, 0, 5.0) is None


# ------------------------------------------------------------------------------------------
# §1.5 / §1.7 excess burst capacity and activator in path
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("annotations", "cc", "ready", "load", "ebc", "in_path"),
    [
        # floor(1 * 100 - 211 - 0) = -111 < 0
        ({}, 0, 1, 0.0, -111, True),
        # floor(2 * 100 - 211 - 0) = -11 < 0: a 2-instance service stays behind the activator
        ({}, 0, 2, 0.0, -11, True),
        # floor(3 * 100 - 211 - 0) = 89 >= 0 and want 1 > 0: Serve
        ({}, 0, 3, 0.0, 89, False),
        # floor(300 - 211 - 89) = 0: still Serve
        ({}, 0, 3, 89.0, 0, False),
        # floor(300 - 211 - 89.5) = floor(-0.5) = -1: Proxy
        ({}, 0, 3, 89.5, -1, True),
        # TBC 0: EBC 0; load 50 -> want ceil(50 / 70) = 1 > 0: Serve
        ({"target-burst-capacity": "0"}, 0, 1, 50.0, 0, False),
        # TBC -1: EBC -1 always: Proxy
        ({"target-burst-capacity": "-1"}, 0, 5, 0.0, -1, True),
        # TBC 100: floor(2 * 100 - 100 - 50.5) = floor(49.5) = 49
        ({"target-burst-capacity": "100"}, 0, 2, 50.5, 49, False),
        # CC 10 -> TotalValue 10: floor(5 * 10 - 30 - 14) = 6 (want ceil(14 / 7) = 2)
        ({"target-burst-capacity": "30"}, 10, 5, 14.0, 6, False),
    ],
    ids=[
        "tbc-211-one-ready",
        "tbc-211-two-ready",
        "tbc-211-three-ready",
        "tbc-211-exactly-zero",
        "tbc-211-just-negative",
        "tbc-0",
        "tbc-minus-1",
        "tbc-100",
        "total-value-is-cc",
    ],
)
def test_s1_7_excess_burst_capacity_and_activator_in_path(
    annotations: dict[str, str], cc: int, ready: int, load: float, ebc: int, in_path: bool
) -> None:
    kpa = KPA(scaling(annotations, cc), 0.0)
    run(kpa, [Feed(0, 60, load)])
    decision = kpa.decide(59, ready)
    assert (decision.excess_burst_capacity, decision.activator_in_path) == (ebc, in_path)


@pytest.mark.parametrize(
    ("annotations", "cc", "ebc", "in_path"),
    [
        # initial EBC = initial scale 1 * 100 - 211 = -111
        ({}, 0, -111, True),
        # TBC 0 -> 0; no decision yet (want -1) and not Inactive: Serve
        ({"target-burst-capacity": "0"}, 0, 0, False),
        # TBC -1 -> -1
        ({"target-burst-capacity": "-1"}, 0, -1, True),
        # 3 * 100 - 211 = 89, want 3 > 0: Serve
        ({"initial-scale": "3"}, 0, 89, False),
        # TotalValue = CC 10: 1 * 10 - 50 = -40
        ({"target-burst-capacity": "50"}, 10, -40, True),
    ],
    ids=["default", "tbc-0", "tbc-minus-1", "initial-3", "cc-10"],
)
def test_s1_7_initial_excess_burst_capacity_before_any_data(
    annotations: dict[str, str], cc: int, ebc: int, in_path: bool
) -> None:
    decision = KPA(scaling(annotations, cc), 0.0).decide(0, 0)
    assert (decision.excess_burst_capacity, decision.activator_in_path) == (ebc, in_path)


def test_s0_1_tick_interval_is_two_seconds() -> None:
    assert KPA.TICK_INTERVAL == 2.0


def test_decide_rejects_negative_ready() -> None:
    with pytest.raises(ValueError, match="ready"):
        KPA(scaling(), 0.0).decide(0, -1)

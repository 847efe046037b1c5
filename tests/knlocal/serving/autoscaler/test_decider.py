"""The KPA decider (``autoscaler.go`` ``Scale``) against knative-semantics.md §1.5.

Defaults used throughout (§1.2, §1.4): target utilization 0.7, so TargetValue = 100 * 0.7 = 70
and TotalValue = 100; stable window 60 s, panic window 60 * 10 % = 6 s, panic threshold 200 % =
2.0, max scale-up rate 1000, max scale-down rate 2, target burst capacity 211, grace period 30 s.
Every expected value is derived by hand from the formulas of the semantics document; the
arithmetic is in the comment next to it.
"""

import pytest

from knlocal.serving.autoscaler.scaler import KPA
from tests.knlocal.serving.autoscaler.scenario import (
    Decide,
    Feed,
    Step,
    run,
    scaling,
)

# ------------------------------------------------------------------------------------------
# §1.5 decider
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cc", "steps"),
    [
        # 10 s of 210 with 2 ready: stable = 2100 / 10 buckets since first write = 210,
        # dspc = ceil(210 / 70) = 3; panic = 210, dppc 3, 3 / 2 = 1.5 < 2; clamp(3, 1, 2000) = 3
        (0, [Feed(0, 10, 210), Decide(9, ready=2, desired=3, panic=False)]),
        # 5 s of 140 with 2 ready: average over the 5 buckets written, not over 60:
        # 700 / 5 = 140, dspc 2; 2 / 2 = 1 < 2; clamp(2, 1, 2000) = 2
        (0, [Feed(0, 5, 140), Decide(4, ready=2, desired=2, panic=False)]),
        # 30 s of 0 then 30 s of 140: stable = 30 * 140 / 60 = 70, dspc 1; panic = 140,
        # dppc 2, 2 / 2 = 1 < 2; clamp(1, floor(2 / 2) = 1, 2000) = 1
        (0, [Feed(0, 30, 0), Feed(30, 60, 140), Decide(59, ready=2, desired=1, panic=False)]),
        # 210 over 60 s, 3 ready: dspc 3, dppc 3, 3 / 3 = 1 < 2: 3
        (0, [Feed(0, 60, 210), Decide(59, ready=3, desired=3, panic=False)]),
        # 10 with 3 ready: dspc ceil(10 / 70) = 1; clamp(1, floor(3 / 2) = 1, 3000) = 1
        (0, [Feed(0, 60, 10), Decide(59, ready=3, desired=1, panic=False)]),
        # 140.5 with 2 ready: dspc ceil(2.007) = 3; 3 / 2 = 1.5 < 2: 3
        (0, [Feed(0, 60, 140.5), Decide(59, ready=2, desired=3, panic=False)]),
        # CC 10 (TargetValue 7): 20 with 2 ready: dspc ceil(20 / 7) = 3; 3 / 2 < 2: 3
        (10, [Feed(0, 60, 20), Decide(59, ready=2, desired=3, panic=False)]),
    ],
    ids=[
        "partial-window-210",
        "partial-window-140",
        "stable-average-not-instant",
        "steady-210",
        "small-load-1",
        "just-over-target",
        "container-concurrency-target",
    ],
)
def test_s1_5_scale_up_from_stable_average(cc: int, steps: list[Step]) -> None:
    run(KPA(scaling(cc=cc), 0.0), steps)


@pytest.mark.parametrize(
    ("annotations", "ready", "load", "panic", "desired"),
    [
        # dppc ceil(280 / 70) = 4; 4 / 2 = 2 >= 2: panic; max(dspc 4, dppc 4) = 4
        ({}, 2, 280.0, True, 4),
        # dppc 3; 3 / 2 = 1.5 < 2: stable 3
        ({}, 2, 210.0, False, 3),
        # dppc 2; 2 / 1 = 2 >= 2: panic, 2
        ({}, 1, 140.0, True, 2),
        # dppc 1; 1 / 1 < 2
        ({}, 1, 70.0, False, 1),
        # dppc 7; 7 / 4 = 1.75 < 2: 7
        ({}, 4, 490.0, False, 7),
        # threshold 150 %: dppc 3; 3 / 2 = 1.5 >= 1.5: panic, 3
        ({"panic-threshold-percentage": "150"}, 2, 210.0, True, 3),
        # 0 ready counts as 1: dppc 2; 2 / 1 >= 2: panic, 2
        ({}, 0, 140.0, True, 2),
    ],
    ids=[
        "at-threshold",
        "below",
        "one-ready-at",
        "one-ready-below",
        "four-ready",
        "custom-150",
        "zero-ready-as-one",
    ],
)
def test_s1_5_panic_entered_at_threshold(
    annotations: dict[str, str], ready: int, load: float, panic: bool, desired: int
) -> None:
    kpa = KPA(scaling(annotations), 0.0)
    run(kpa, [Feed(0, 60, load), Decide(59, ready=ready, desired=desired, panic=panic)])


@pytest.mark.parametrize(
    "steps",
    [
        [
            # 60 s of 700 with 1 ready: dspc = dppc = 10; 10 / 1 >= 2: panic since 59, 10
            Feed(0, 60, 700),
            Decide(59, ready=1, desired=10, panic=True),
            # Load stops. t=65: stable buckets 6..65 = 54 * 700 / 60 = 630, dspc 9;
            # panic buckets 60..65 = 0. Not over, but 59 + 60 < 65 is false: stay.
            # clamp(9, floor(10 / 2) = 5, 10000) = 9 < max panic pods 10: never decrease
            Feed(60, 66, 0),
            Decide(65, ready=10, desired=10, panic=True),
            # t=119: stable 0 -> 5, but 59 + 60 < 119 is false (strict): still 10
            Feed(66, 120, 0),
            Decide(119, ready=10, desired=10, panic=True),
            # t=121: 119 < 121: leave panic; stable clamp(0, 5, 10000) = 5
            Feed(120, 122, 0),
            Decide(121, ready=10, desired=5, panic=False),
        ],
        [
            Feed(0, 60, 700),
            Decide(59, ready=1, desired=10, panic=True),
            # Still over at t=99 (dppc 10, 10 / 1 >= 2): panic time refreshed to 99
            Feed(60, 100, 700),
            Decide(99, ready=1, desired=10, panic=True),
            # t=121: stable buckets 62..121 = 38 * 700 / 60 = 443.3, dspc 7; 99 + 60 < 121
            # false: stay, max(7, 5) = 7 < 10 -> 10 (exit at 121 would need 59 + 60)
            Feed(100, 122, 0),
            Decide(121, ready=10, desired=10, panic=True),
            # t=159: 99 + 60 < 159 false: still in panic
            Feed(122, 160, 0),
            Decide(159, ready=10, desired=10, panic=True),
            # t=161: leave; stable 0 -> clamp(0, floor(10 / 2) = 5, 10000) = 5
            Feed(160, 162, 0),
            Decide(161, ready=10, desired=5, panic=False),
        ],
    ],
    ids=["stay-then-exit-after-stable-window", "over-threshold-refreshes-panic-time"],
)
def test_s1_5_panic_stays_never_scales_down_and_exits(steps: list[Step]) -> None:
    run(KPA(scaling(), 0.0), steps)


def test_s1_5_panic_when_stable_is_low_uses_panic_count() -> None:
    # 54 s of 0 then 6 s of 700: stable = 6 * 700 / 60 = 70, dspc 1; panic buckets 54..59 =
    # 700, dppc 10; 10 / 1 >= 2: panic, max(1, 10) = 10 (stable alone would give 1)
    run(
        KPA(scaling(), 0.0),
        [Feed(0, 54, 0), Feed(54, 60, 700), Decide(59, 1, desired=10, panic=True)],
    )


@pytest.mark.parametrize(
    ("config", "ready", "load", "desired"),
    [
        # rate 2, 2 ready: dspc 100 but maxUp = ceil(2 * 2) = 4; panic count clamped too: 4
        ({"max-scale-up-rate": "2"}, 2, 7000.0, 4),
        # 0 ready counts as 1: maxUp = ceil(2 * 1) = 2
        ({"max-scale-up-rate": "2"}, 0, 7000.0, 2),
        # rate 1.1: maxUp = ceil(1.1 * 1) = 2, at least one more instance; dspc 3 -> 2
        ({"max-scale-up-rate": "1.1"}, 1, 210.0, 2),
        # default 1000: dspc 10000, maxUp = ceil(1000 * 1) = 1000
        ({}, 1, 700000.0, 1000),
        # scale down: no load, 10 ready: maxDown = floor(10 / 2) = 5
        ({}, 10, 0.0, 5),
        # rate 4: floor(10 / 4) = 2
        ({"max-scale-down-rate": "4"}, 10, 0.0, 2),
        # 3 ready: floor(3 / 2) = 1
        ({}, 3, 0.0, 1),
    ],
    ids=[
        "up-rate-2",
        "up-rate-2-zero-ready",
        "up-rate-1.1",
        "up-default",
        "down-default",
        "down-rate-4",
        "down-3-ready",
    ],
)
def test_s1_5_max_scale_up_and_down_rates(
    config: dict[str, str], ready: int, load: float, desired: int
) -> None:
    run(
        KPA(scaling(config=config), 0.0),
        [Feed(0, 60, load), Decide(59, ready=ready, desired=desired)],
    )


@pytest.mark.parametrize(
    ("annotations", "steps"),
    [
        (
            # window 6 s (panic window round(0.6) = 1 s), delay 10 s = ceil(10 / 2) = 5 buckets
            {"window": "6s", "scale-down-delay": "10s"},
            [
                # 5 s of 210, 3 ready: 1050 / 5 = 210, dspc 3, dppc 3, 3 / 3 < 2: 3 in
                # delay bucket 4 // 2 = 2
                Feed(0, 5, 210),
                Decide(4, ready=3, desired=3),
                # t=12: buckets 7..12 are 0 -> clamp(0, floor(3 / 2) = 1, 3000) = 1; bucket 6
                # still sees bucket 2 (6 - 2 = 4 < 5): max(3, 1) = 3
                Feed(5, 13, 0),
                Decide(12, ready=3, desired=3),
                # t=14: bucket 7, 7 - 2 = 5 >= 5 evicts the 3: max(1, 1) = 1
                Feed(13, 15, 0),
                Decide(14, ready=3, desired=1),
            ],
        ),
        (
            # same without a delay: the drop to 1 happens at t=12
            {"window": "6s"},
            [
                Feed(0, 5, 210),
                Decide(4, ready=3, desired=3),
                Feed(5, 13, 0),
                Decide(12, ready=3, desired=1),
            ],
        ),
        (
            # delay 2 s = 1 bucket; no load. Two decisions in delay bucket 4 // 2 = 5 // 2 = 2
            # keep the larger: 10 ready -> clamp(0, floor(10 / 2) = 5, ...) = 5, then 3 ready
            # -> floor(3 / 2) = 1, but max(5, 1) = 5. Bucket 3 evicts bucket 2: 1
            {"window": "6s", "scale-down-delay": "2s"},
            [
                Feed(0, 5, 0),
                Decide(4, ready=10, desired=5),
                Feed(5, 6, 0),
                Decide(5, ready=3, desired=5),
                Feed(6, 7, 0),
                Decide(6, ready=3, desired=1),
            ],
        ),
    ],
    ids=["delay-10s", "no-delay", "same-bucket-keeps-max"],
)
def test_s1_5_scale_down_delay_keeps_the_window_maximum(
    annotations: dict[str, str], steps: list[Step]
) -> None:
    run(KPA(scaling(annotations), 0.0), steps)


def test_s1_5_scale_down_delay_is_skipped_while_unreachable() -> None:
    # Same as delay-10s but unreachable: maxDown = 0 and no delay window, so at t=12 the
    # decider says clamp(0, 0, 3000) = 0 at once. Active since t=4 (3 ready), 12 - 4 = 8 >= 6:
    # marked Inactive (the 3 instances stay until the grace period), activator in path
    kpa = KPA(scaling({"window": "6s", "scale-down-delay": "10s"}, reachable=False), 0.0)
    run(
        kpa,
        [
            Feed(0, 5, 210),
            Decide(4, ready=3, desired=3, state="active"),
            Feed(5, 13, 0),
            Decide(12, ready=3, desired=3, in_path=True, state="inactive"),
        ],
    )
    assert kpa.desired_scale == 0


@pytest.mark.parametrize(
    ("annotations", "load", "desired", "decider"),
    [
        # load 1, 1 ready: dspc ceil(1 / 70) = 1 > 0 -> max(1, activation 3) = 3
        ({"activation-scale": "3"}, 1.0, 3, 3),
        # without activation scale: 1
        ({}, 1.0, 1, 1),
        # no load: dspc 0, activation scale does not apply; the decider says 0 and the
        # activating revision keeps its initial instance (handleScaleToZero, Activating)
        ({"activation-scale": "3"}, 0.0, 1, 0),
    ],
    ids=["applies-above-zero", "absent", "not-at-zero"],
)
def test_s1_5_activation_scale(
    annotations: dict[str, str], load: float, desired: int, decider: int
) -> None:
    kpa = KPA(scaling(annotations), 0.0)
    run(kpa, [Feed(0, 10, load), Decide(9, ready=1, desired=desired)])
    assert kpa.desired_scale == decider


@pytest.mark.parametrize(
    ("metric_load", "desired"),
    [
        # rps target = 200 * 0.7 = 140; 420 req/s with 2 ready: dspc 3, dppc 3, 1.5 < 2: 3
        ((0.0, 420.0), 3),
        # 140 req/s: dspc 1 -> clamp(1, floor(2 / 2) = 1, 2000) = 1
        ((0.0, 140.0), 1),
        # concurrency is ignored with the rps metric: 0 req/s -> clamp(0, 1, 2000) = 1
        ((7000.0, 0.0), 1),
    ],
    ids=["rps-420", "rps-140", "concurrency-ignored"],
)
def test_s1_5_rps_metric_uses_request_counts(
    metric_load: tuple[float, float], desired: int
) -> None:
    concurrency, requests = metric_load
    kpa = KPA(scaling({"metric": "rps"}), 0.0)
    run(kpa, [Feed(0, 60, concurrency, requests), Decide(59, ready=2, desired=desired)])


def test_s1_5_restarted_autoscaler_starts_in_panic_holding_scale() -> None:
    # newAutoscaler with 5 ready: panic since creation, max panic pods 5. No load:
    # clamp(0, floor(5 / 2) = 2, 5000) = 2 < 5, and 0 + 60 < 0 is false: stays 5
    kpa = KPA(scaling(), 0.0, ready=5)
    run(kpa, [Feed(0, 1, 0), Decide(0, ready=5, desired=5, panic=True)])


# ------------------------------------------------------------------------------------------
# §1.5 no data
# ------------------------------------------------------------------------------------------


def test_s1_5_no_data_keeps_the_initial_scale() -> None:
    # No sample ever: the decider stays at -1 (unknown) and the revision keeps initial-scale 1
    kpa = KPA(scaling(), 0.0)
    run(kpa, [Decide(0, ready=0, desired=1, panic=False, state="activating")])
    assert kpa.desired_scale == -1


@pytest.mark.parametrize(
    "steps",
    [
        [
            # 210 with 3 ready: 3 (see steady-210)
            Feed(0, 60, 210),
            Decide(59, ready=3, desired=3),
            # Last write 59; at 120, 120 - 59 = 61 > 60: no data, the decider keeps 3
            Decide(120, ready=3, desired=3),
            Decide(300, ready=3, desired=3),
        ],
        [
            # panic with 10 instances (see panic scenarios), then no data at all:
            # Scale() does not run, so panic mode and 10 are kept
            Feed(0, 60, 700),
            Decide(59, ready=1, desired=10, panic=True),
            Decide(200, ready=10, desired=10, panic=True),
        ],
    ],
    ids=["keeps-last-desired", "keeps-panic-state"],
)
def test_s1_5_no_data_for_a_stable_window_changes_nothing(steps: list[Step]) -> None:
    run(KPA(scaling(), 0.0), steps)

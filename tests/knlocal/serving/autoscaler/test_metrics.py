"""Metric windows (``pkg/autoscaler/aggregation``) against knative-semantics.md §1.5.

Defaults used throughout (§1.2, §1.4): target utilization 0.7, so TargetValue = 100 * 0.7 = 70
and TotalValue = 100; stable window 60 s, panic window 60 * 10 % = 6 s, panic threshold 200 % =
2.0, max scale-up rate 1000, max scale-down rate 2, target burst capacity 211, grace period 30 s.
Every expected value is derived by hand from the formulas of the semantics document; the
arithmetic is in the comment next to it.
"""

import pytest

from knlocal.serving.autoscaler.metrics import (
    LINEAR,
    WEIGHTED_EXPONENTIAL,
    LinearBuckets,
    MaxTimeWindow,
    WeightedBuckets,
    window_buckets,
)
from knlocal.serving.autoscaler.scaler import KPA
from tests.knlocal.serving.autoscaler.scenario import (
    Decide,
    Feed,
    run,
    scaling,
)


def test_s1_5_samples_in_one_second_are_summed() -> None:
    # Two sources report 70 each in bucket 0: 140 -> dspc 2, dppc 2, 2 / 2 = 1 < 2;
    # clamp(2, floor(2 / 2) = 1, 2000) = 2
    kpa = KPA(scaling(), 0.0)
    kpa.record(0.2, 70.0)
    kpa.record(0.7, 70.0)
    assert kpa.decide(0.9, ready=2).desired == 2


@pytest.mark.parametrize(
    ("first", "late", "value", "desired"),
    [
        # t=30 is 70 s before the last write at 100 (>= 60 s window): dropped, the average
        # stays 0; clamp(0, floor(2 / 2) = 1, 2000) = 1
        (100, 30, 7000.0, 1),
        # t=5 arrives after t=10 but within both windows: counted, and the first write moves
        # back to 5: 140 / (10 - 5 + 1) = 23.3, dspc = dppc = 1; clamp(1, 1, 2000) = 1
        # (averaging over 1 bucket would give 140 -> 2)
        (10, 5, 140.0, 1),
    ],
    ids=["older-than-window-ignored", "late-within-window-counted"],
)
def test_s1_5_late_samples(first: int, late: int, value: float, desired: int) -> None:
    kpa = KPA(scaling(), 0.0)
    kpa.record(float(first), 0.0)
    kpa.record(float(late), value)
    assert kpa.decide(float(first), ready=2).desired == desired


@pytest.mark.parametrize(
    ("algorithm", "value", "at", "desired"),
    [
        # One sample at t=0, 2 ready, window 6 s (panic 1 s). Linear at t=0: 80 / 1 bucket,
        # dspc ceil(80 / 70) = 2, dppc 2, 2 / 2 = 1 < 2: clamp(2, 1, 2000) = 2
        ("linear", 80.0, 0, 2),
        # Weighted: m = 1 - 0.0001^(1/6) = 0.7846, stable = 80 * 0.7846 = 62.8, dspc 1;
        # panic m = 1 - 0.0001 = 0.9999, 79.99, dppc 2, 2 / 2 < 2: clamp(1, 1, 2000) = 1
        ("weighted-exponential", 80.0, 0, 1),
        # Linear at t=1: still 200 / 1 bucket, dspc ceil(2.86) = 3; the 1-s panic window
        # is 1 s old: 0. clamp(3, 1, 2000) = 3
        ("linear", 200.0, 1, 3),
        # Weighted at t=1: the empty second weighs m, the sample m * (1 - m) =
        # 0.7846 * 0.2154 = 0.1690: 200 * 0.1690 = 33.8, dspc 1; panic 0: clamp(1, 1, 2000) = 1
        ("weighted-exponential", 200.0, 1, 1),
    ],
    ids=["linear", "weighted-exponential", "linear-1s-later", "weighted-1s-later"],
)
def test_s1_3_metric_aggregation_algorithm(
    algorithm: str, value: float, at: int, desired: int
) -> None:
    kpa = KPA(scaling({"window": "6s", "metric-aggregation-algorithm": algorithm}), 0.0)
    run(kpa, [Feed(0, 1, value), Decide(at, ready=2, desired=desired, panic=False)])


def test_max_time_window_forgets_values_older_than_its_duration() -> None:
    # aggregation/max.TimeWindow with a 6-s window of 2-s buckets: 3 buckets. The 10 of bucket
    # 0 counts until bucket 2 and falls out at bucket 3 (t=6).
    window = MaxTimeWindow(6.0, 2.0)
    for t, value in ((0.0, 10), (2.0, 1), (4.0, 1)):
        window.record(t, value)
    assert window.current() == 10
    window.record(6.0, 1)
    assert window.current() == 1


def test_max_time_window_keeps_the_maximum_within_a_bucket() -> None:
    window = MaxTimeWindow(6.0, 2.0)
    window.record(0.0, 3)
    window.record(1.0, 1)  # same 2-s bucket: the maximum, 3, stays
    assert window.current() == 3


def test_linear_buckets_average_over_the_window_and_ignore_older_samples() -> None:
    # 6-s window, 6 buckets written with 6: average 6. A sample 6 s older than the newest
    # bucket lies outside the window and is ignored (bucketing.go Record).
    buckets = LinearBuckets(6.0)
    for t in range(10, 16):
        buckets.record(float(t), 6.0)
    buckets.record(9.0, 100.0)
    assert buckets.average(15.0) == 6.0
    # A whole window later nothing is left to average.
    assert buckets.is_empty(22.0)
    assert buckets.average(22.0) == 0.0


@pytest.mark.parametrize(
    ("algorithm", "kind"),
    [(LINEAR, LinearBuckets), (WEIGHTED_EXPONENTIAL, WeightedBuckets)],
)
def test_window_buckets_follow_the_aggregation_algorithm(
    algorithm: str, kind: type[LinearBuckets]
) -> None:
    assert type(window_buckets(algorithm, 60.0)) is kind

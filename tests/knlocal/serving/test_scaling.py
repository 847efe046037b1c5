"""Table-driven tests of the KPA decision logic against knative-semantics.md §1.2-§1.7.

Every expected value is derived by hand from the formulas of the semantics document; the
arithmetic is in the comment next to it. Defaults used throughout (§1.2, §1.4): target
utilization 0.7, so TargetValue = 100 * 0.7 = 70 and TotalValue = 100; stable window 60 s,
panic window 60 * 10 % = 6 s, panic threshold 200 % = 2.0, max scale-up rate 1000, max
scale-down rate 2, target burst capacity 211, grace period 30 s.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import pytest

from knlocal.errors import ConfigError
from knlocal.serving.autoscaler.config import AutoscalerDefaults
from knlocal.serving.autoscaler.scaler import KPA, ScaleDecision
from knlocal.serving.autoscaler.spec import RevisionScaling

A = "autoscaling.knative.dev/"


def scaling(
    annotations: Mapping[str, str] | None = None,
    cc: int = 0,
    config: Mapping[str, str] | None = None,
    *,
    reachable: bool = True,
) -> RevisionScaling:
    """Resolve a revision's settings from short annotation names (prefix added)."""
    full = {(k if "/" in k else A + k): v for k, v in (annotations or {}).items()}
    defaults = AutoscalerDefaults.from_configmap(config or {})
    return RevisionScaling.resolve(full, cc, defaults, reachable=reachable)


# ------------------------------------------------------------------------------------------
# §1.2 config-autoscaler
# ------------------------------------------------------------------------------------------


def test_s1_2_defaults_match_the_documented_table() -> None:
    d = AutoscalerDefaults()
    assert d == AutoscalerDefaults.from_configmap({})
    assert (
        d.container_concurrency_target_fraction,
        d.container_concurrency_target_default,
        d.requests_per_second_target_default,
        d.target_burst_capacity,
        d.stable_window,
        d.panic_window_percentage,
        d.panic_threshold_percentage,
        d.max_scale_up_rate,
        d.max_scale_down_rate,
        d.enable_scale_to_zero,
        d.scale_to_zero_grace_period,
        d.scale_to_zero_pod_retention_period,
        d.pod_autoscaler_class,
        d.activator_capacity,
        d.initial_scale,
        d.allow_zero_initial_scale,
        d.min_scale,
        d.max_scale,
        d.scale_down_delay,
        d.max_scale_limit,
    ) == (
        0.7,  # 70 % -> 70 / 100
        100,
        200,
        211,  # not 200 (§0.3)
        60.0,
        10.0,
        200.0,
        1000.0,
        2.0,
        True,
        30.0,
        0.0,
        "kpa.autoscaling.knative.dev",
        100.0,
        1,
        False,
        0,
        0,
        0.0,
        0,
    )


@pytest.mark.parametrize(
    ("data", "attr", "expected"),
    [
        # A percentage above 1 is divided by 100.
        (
            {"container-concurrency-target-percentage": "80"},
            "container_concurrency_target_fraction",
            0.8,
        ),
        (
            {"container-concurrency-target-percentage": "100"},
            "container_concurrency_target_fraction",
            1.0,
        ),
        # Values <= 1.0 are already fractions (Knative's legacy form).
        (
            {"container-concurrency-target-percentage": "0.5"},
            "container_concurrency_target_fraction",
            0.5,
        ),
        (
            {"container-concurrency-target-percentage": "1.0"},
            "container_concurrency_target_fraction",
            1.0,
        ),
        ({"stable-window": "1m30s"}, "stable_window", 90.0),  # 60 + 30
        ({"stable-window": "1h"}, "stable_window", 3600.0),  # upper bound is inclusive
        ({"scale-to-zero-grace-period": "500ms"}, "scale_to_zero_grace_period", 0.5),
        (
            {"scale-to-zero-pod-retention-period": "1h0m0s"},
            "scale_to_zero_pod_retention_period",
            3600.0,
        ),
        (
            {"scale-to-zero-pod-retention-period": "0"},
            "scale_to_zero_pod_retention_period",
            0.0,
        ),  # bare 0
        ({"scale-down-delay": "15m"}, "scale_down_delay", 900.0),  # 15 * 60
        ({"scale-down-delay": "1.5m"}, "scale_down_delay", 90.0),  # 1.5 * 60, whole seconds
        ({"enable-scale-to-zero": "false"}, "enable_scale_to_zero", False),
        ({"allow-zero-initial-scale": "TRUE"}, "allow_zero_initial_scale", True),  # Go ParseBool
        ({"target-burst-capacity": "-1"}, "target_burst_capacity", -1.0),
        ({"target-burst-capacity": "0"}, "target_burst_capacity", 0.0),
        ({"max-scale-up-rate": "1.5"}, "max_scale_up_rate", 1.5),
        (
            {"requests-per-second-target-default": "0.01"},
            "requests_per_second_target_default",
            0.01,
        ),
        ({"panic-threshold-percentage": "150"}, "panic_threshold_percentage", 150.0),
        ({"activator-capacity": "1"}, "activator_capacity", 1.0),
        ({"initial-scale": "+3"}, "initial_scale", 3),  # Go ParseInt accepts a sign
        ({"initial-scale": "0", "allow-zero-initial-scale": "true"}, "initial_scale", 0),
        ({"min-scale": "2"}, "min_scale", 2),
        ({"max-scale-limit": "10", "max-scale": "10"}, "max_scale", 10),
        (
            {"pod-autoscaler-class": "hpa.autoscaling.knative.dev"},
            "pod_autoscaler_class",
            "hpa.autoscaling.knative.dev",
        ),
    ],
    ids=[
        "pct-80",
        "pct-100",
        "fraction-0.5",
        "fraction-1.0",
        "window-1m30s",
        "window-1h",
        "grace-500ms",
        "retention-1h0m0s",
        "retention-bare-0",
        "delay-15m",
        "delay-1.5m",
        "scale-to-zero-false",
        "allow-zero-TRUE",
        "tbc-minus-1",
        "tbc-0",
        "up-rate-1.5",
        "rps-target-min",
        "panic-threshold-150",
        "activator-capacity-1",
        "initial-scale-signed",
        "initial-scale-0-allowed",
        "min-scale",
        "max-scale-at-limit",
        "class",
    ],
)
def test_s1_2_configmap_values_are_parsed(
    data: dict[str, str], attr: str, expected: object
) -> None:
    assert getattr(AutoscalerDefaults.from_configmap(data), attr) == expected


def test_s1_2_unknown_keys_are_ignored() -> None:
    data = {"_example": "# a long comment", "tick-interval": "2s", "panic-window": "6s"}
    assert AutoscalerDefaults.from_configmap(data) == AutoscalerDefaults()


@pytest.mark.parametrize(
    ("data", "key", "value"),
    [
        (
            {"container-concurrency-target-percentage": "0"},
            "container-concurrency-target-percentage",
            "0",
        ),
        # 101 > 1 is read as a percentage: 1.01 is outside (0, 1].
        (
            {"container-concurrency-target-percentage": "101"},
            "container-concurrency-target-percentage",
            "101",
        ),
        (
            {"container-concurrency-target-percentage": "seventy"},
            "container-concurrency-target-percentage",
            "seventy",
        ),
        # 0.7 * 0.01 = 0.007 < 0.01
        (
            {"container-concurrency-target-default": "0.01"},
            "container-concurrency-target-default",
            "0.01",
        ),
        (
            {"requests-per-second-target-default": "0.001"},
            "requests-per-second-target-default",
            "0.001",
        ),
        ({"target-burst-capacity": "-2"}, "target-burst-capacity", "-2"),
        ({"stable-window": "5s"}, "stable-window", "5s"),
        ({"stable-window": "2h"}, "stable-window", "2h"),
        ({"stable-window": "61500ms"}, "stable-window", "61500ms"),  # not whole seconds
        ({"stable-window": "60"}, "stable-window", "60"),  # a duration needs a unit
        ({"panic-window-percentage": "0.5"}, "panic-window-percentage", "0.5"),
        ({"panic-window-percentage": "101"}, "panic-window-percentage", "101"),
        ({"max-scale-up-rate": "1"}, "max-scale-up-rate", "1"),  # must be > 1
        ({"max-scale-down-rate": "1.0"}, "max-scale-down-rate", "1.0"),
        ({"max-scale-up-rate": "NaN"}, "max-scale-up-rate", "NaN"),
        ({"enable-scale-to-zero": "yes"}, "enable-scale-to-zero", "yes"),
        ({"scale-to-zero-grace-period": "0s"}, "scale-to-zero-grace-period", "0s"),
        (
            {"scale-to-zero-pod-retention-period": "-1s"},
            "scale-to-zero-pod-retention-period",
            "-1s",
        ),
        ({"scale-down-delay": "1.5s"}, "scale-down-delay", "1.5s"),
        ({"scale-down-delay": "-1s"}, "scale-down-delay", "-1s"),
        ({"activator-capacity": "0.5"}, "activator-capacity", "0.5"),
        ({"initial-scale": "0"}, "initial-scale", "0"),  # allow-zero-initial-scale is false
        ({"initial-scale": "1.5"}, "initial-scale", "1.5"),
        ({"max-scale": "2147483648"}, "max-scale", "2147483648"),  # 2^31 overflows int32
        ({"max-scale-limit": "10"}, "max-scale", "0"),  # default max-scale 0 not in [1, 10]
        ({"max-scale-limit": "10", "max-scale": "11"}, "max-scale", "11"),
        ({"max-scale-limit": "-1"}, "max-scale-limit", "-1"),
        ({"min-scale": "3", "max-scale": "2"}, "min-scale", "3"),
        ({"min-scale": "-1"}, "min-scale", "-1"),
    ],
    ids=[
        "pct-0",
        "pct-101",
        "pct-text",
        "cc-default-too-small",
        "rps-default-too-small",
        "tbc-minus-2",
        "window-5s",
        "window-2h",
        "window-fractional",
        "window-no-unit",
        "panic-pct-0.5",
        "panic-pct-101",
        "up-rate-1",
        "down-rate-1",
        "up-rate-nan",
        "bool-yes",
        "grace-0",
        "retention-negative",
        "delay-fractional",
        "delay-negative",
        "activator-capacity",
        "initial-scale-0",
        "initial-scale-float",
        "max-scale-int32",
        "limit-without-max",
        "max-over-limit",
        "limit-negative",
        "min-over-max",
        "min-negative",
    ],
)
def test_s1_2_invalid_configmap_values_raise_config_error(
    data: dict[str, str], key: str, value: str
) -> None:
    with pytest.raises(ConfigError) as info:
        AutoscalerDefaults.from_configmap(data)
    message = str(info.value)
    assert key in message
    assert repr(value) in message
    assert "expected" in message


# ------------------------------------------------------------------------------------------
# §1.3 / §1.4 annotations and target resolution
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("annotations", "cc", "config", "expected"),
    [
        # CC 0: total = default 100, target = 100 * 0.7
        ({}, 0, {}, {"target": 70.0, "total_target": 100.0}),
        # CC 10 > 0: total = 10, target = 10 * 0.7
        ({}, 10, {}, {"target": 7.0, "total_target": 10.0}),
        # annotation target with CC 0: total = 50, target = 50 * 0.7
        ({"target": "50"}, 0, {}, {"target": 35.0, "total_target": 50.0}),
        # annotation target above CC: total = min(50, 10) = 10
        ({"target": "50"}, 10, {}, {"target": 7.0, "total_target": 10.0}),
        # annotation target below CC: total = min(5, 10) = 5, target = 5 * 0.7
        ({"target": "5"}, 10, {}, {"target": 3.5, "total_target": 5.0}),
        # rps: total = 200, utilization 0.7 -> 140
        ({"metric": "rps"}, 0, {}, {"target": 140.0, "total_target": 200.0}),
        # rps target is not capped by CC: total = 100, target = 70
        ({"metric": "rps", "target": "100"}, 10, {}, {"target": 70.0, "total_target": 100.0}),
        # utilization annotation 50 % -> 100 * 0.5
        ({"target-utilization-percentage": "50"}, 0, {}, {"target": 50.0}),
        # legacy alias of the same key
        ({"targetUtilizationPercentage": "50"}, 0, {}, {"target": 50.0}),
        # canonical key wins over the alias: 100 * 0.5, not 100 * 0.9
        (
            {"target-utilization-percentage": "50", "targetUtilizationPercentage": "90"},
            0,
            {},
            {"target": 50.0},
        ),
        # ConfigMap percentage 80 -> 100 * 0.8
        ({}, 0, {"container-concurrency-target-percentage": "80"}, {"target": 80.0}),
        # rps utilization is not the ConfigMap concurrency percentage: 200 * 0.7
        (
            {"metric": "rps"},
            0,
            {"container-concurrency-target-percentage": "80"},
            {"target": 140.0},
        ),
        # 0.01 * 0.01 = 0.0001 -> floored at TargetMin 0.01
        ({"target": "0.01", "target-utilization-percentage": "1"}, 0, {}, {"target": 0.01}),
        # default windows: 60 s and round(60 * 10 / 100) = 6 s
        ({}, 0, {}, {"stable_window": 60.0, "panic_window": 6.0}),
        # round(65 * 10 / 100) = round(6.5) = 7 (Go rounds halves away from zero)
        ({"window": "65s"}, 0, {}, {"stable_window": 65.0, "panic_window": 7.0}),
        # round(6 * 10 / 100) = round(0.6) = 1
        ({"window": "6s"}, 0, {}, {"panic_window": 1.0}),
        # round(6 * 1 / 100) = round(0.06) = 0 -> at least 1 s
        ({"window": "6s", "panic-window-percentage": "1"}, 0, {}, {"panic_window": 1.0}),
        # round(60 * 25 / 100) = 15 through the alias
        ({"panicWindowPercentage": "25"}, 0, {}, {"panic_window": 15.0}),
        # threshold ratio = percentage / 100
        ({}, 0, {}, {"panic_threshold": 2.0}),
        ({"panic-threshold-percentage": "150"}, 0, {}, {"panic_threshold": 1.5}),
        ({"panicThresholdPercentage": "300"}, 0, {}, {"panic_threshold": 3.0}),
        # scale bounds through the legacy aliases
        (
            {"minScale": "2", "maxScale": "5", "initialScale": "3", "activation-scale": "4"},
            0,
            {},
            {"min_scale": 2, "max_scale": 5, "initial_scale": 3, "activation_scale": 4},
        ),
        ({"min-scale": "1", "minScale": "3"}, 0, {}, {"min_scale": 1}),  # canonical wins
        ({}, 0, {"min-scale": "1", "max-scale": "4"}, {"min_scale": 1, "max_scale": 4}),
        ({"min-scale": "2"}, 0, {"min-scale": "1"}, {"min_scale": 2}),  # annotation wins
        ({"initial-scale": "0"}, 0, {"allow-zero-initial-scale": "true"}, {"initial_scale": 0}),
        ({"targetBurstCapacity": "-1"}, 0, {}, {"target_burst_capacity": -1.0}),
        ({"target-burst-capacity": "0"}, 0, {}, {"target_burst_capacity": 0.0}),
        ({"scaleDownDelay": "15m"}, 0, {}, {"scale_down_delay": 900.0}),
        (
            {"scale-to-zero-pod-retention-period": "1m"},
            0,
            {},
            {"scale_to_zero_pod_retention_period": 60.0},
        ),
        (
            {"scaleToZeroPodRetentionPeriod": "90s"},
            0,
            {},
            {"scale_to_zero_pod_retention_period": 90.0},
        ),
        (
            {"metricAggregationAlgorithm": "weightedExponential"},
            0,
            {},
            {"aggregation_algorithm": "weighted-exponential"},
        ),
        ({"serving.knative.dev/progress-deadline": "5m"}, 0, {}, {"progress_deadline": 300.0}),
        # ConfigMap-only settings are copied
        (
            {},
            0,
            {
                "enable-scale-to-zero": "false",
                "scale-to-zero-grace-period": "10s",
                "max-scale-down-rate": "4",
            },
            {
                "enable_scale_to_zero": False,
                "scale_to_zero_grace_period": 10.0,
                "max_scale_down_rate": 4.0,
            },
        ),
    ],
    ids=[
        "default-concurrency",
        "cc-10",
        "target-50",
        "target-capped-by-cc",
        "target-below-cc",
        "rps-default",
        "rps-not-capped-by-cc",
        "utilization-50",
        "utilization-alias",
        "canonical-beats-alias",
        "config-percentage-80",
        "rps-ignores-config-percentage",
        "target-min-floor",
        "default-windows",
        "panic-window-rounds-half-up",
        "panic-window-0.6",
        "panic-window-min-1s",
        "panic-pct-alias",
        "threshold-default",
        "threshold-150",
        "threshold-alias-300",
        "bounds-aliases",
        "min-canonical-beats-alias",
        "bounds-from-config",
        "min-annotation-beats-config",
        "initial-0-allowed",
        "tbc-alias-minus-1",
        "tbc-0",
        "delay-alias",
        "retention",
        "retention-alias",
        "algorithm-alias",
        "progress-deadline",
        "config-only-settings",
    ],
)
def test_s1_4_annotations_resolve_to_revision_settings(
    annotations: dict[str, str], cc: int, config: dict[str, str], expected: dict[str, object]
) -> None:
    resolved = scaling(annotations, cc, config)
    for attr, value in expected.items():
        actual = getattr(resolved, attr)
        if isinstance(value, float):
            assert actual == pytest.approx(value), attr
        else:
            assert actual == value, attr


@pytest.mark.parametrize(
    ("annotations", "cc", "config", "key"),
    [
        ({"target": "0"}, 0, {}, A + "target"),
        ({"target": "lots"}, 0, {}, A + "target"),
        ({"target-utilization-percentage": "0.5"}, 0, {}, A + "target-utilization-percentage"),
        ({"targetUtilizationPercentage": "101"}, 0, {}, A + "targetUtilizationPercentage"),
        ({"window": "5s"}, 0, {}, A + "window"),
        ({"window": "2h"}, 0, {}, A + "window"),
        ({"window": "61.5s"}, 0, {}, A + "window"),
        ({"panic-window-percentage": "0.9"}, 0, {}, A + "panic-window-percentage"),
        ({"panicWindowPercentage": "101"}, 0, {}, A + "panicWindowPercentage"),
        ({"panic-threshold-percentage": "100"}, 0, {}, A + "panic-threshold-percentage"),
        ({"panicThresholdPercentage": "1001"}, 0, {}, A + "panicThresholdPercentage"),
        ({"target-burst-capacity": "-2"}, 0, {}, A + "target-burst-capacity"),
        ({"targetBurstCapacity": "x"}, 0, {}, A + "targetBurstCapacity"),
        ({"min-scale": "-1"}, 0, {}, A + "min-scale"),
        ({"maxScale": "1.5"}, 0, {}, A + "maxScale"),
        ({"minScale": "3", "maxScale": "2"}, 0, {}, A + "max-scale"),
        ({"max-scale": "11"}, 0, {"max-scale-limit": "10", "max-scale": "10"}, A + "max-scale"),
        ({"max-scale": "0"}, 0, {"max-scale-limit": "10", "max-scale": "10"}, A + "max-scale"),
        ({"initial-scale": "0"}, 0, {}, A + "initial-scale"),
        ({"initialScale": "-1"}, 0, {}, A + "initialScale"),
        ({"activation-scale": "0"}, 0, {}, A + "activation-scale"),
        ({"activation-scale": "5", "max-scale": "3"}, 0, {}, A + "activation-scale"),
        ({"activation-scale": "1", "min-scale": "2"}, 0, {}, A + "activation-scale"),
        ({"scale-down-delay": "1.5s"}, 0, {}, A + "scale-down-delay"),
        ({"scaleDownDelay": "2h"}, 0, {}, A + "scaleDownDelay"),
        (
            {"scale-to-zero-pod-retention-period": "-1s"},
            0,
            {},
            A + "scale-to-zero-pod-retention-period",
        ),
        (
            {"scale-to-zero-pod-retention-period": "2h"},
            0,
            {},
            A + "scale-to-zero-pod-retention-period",
        ),
        ({"metric": "cpu"}, 0, {}, A + "metric"),
        ({"metric-aggregation-algorithm": "median"}, 0, {}, A + "metric-aggregation-algorithm"),
        ({"class": "foo.knative.dev"}, 0, {}, A + "class"),
        ({"class": "hpa.autoscaling.knative.dev"}, 0, {}, A + "class"),
        ({}, 0, {"pod-autoscaler-class": "hpa.autoscaling.knative.dev"}, A + "class"),
        (
            {"serving.knative.dev/progress-deadline": "0s"},
            0,
            {},
            "serving.knative.dev/progress-deadline",
        ),
        ({}, -1, {}, "containerConcurrency"),
    ],
    ids=[
        "target-0",
        "target-text",
        "utilization-0.5",
        "utilization-alias-101",
        "window-5s",
        "window-2h",
        "window-fractional",
        "panic-pct-0.9",
        "panic-pct-alias-101",
        "threshold-100",
        "threshold-alias-1001",
        "tbc-minus-2",
        "tbc-alias-text",
        "min-negative",
        "max-alias-float",
        "max-below-min",
        "max-over-limit",
        "max-unbounded-with-limit",
        "initial-0-not-allowed",
        "initial-alias-negative",
        "activation-0",
        "activation-over-max",
        "activation-under-min",
        "delay-fractional",
        "delay-alias-2h",
        "retention-negative",
        "retention-2h",
        "metric-cpu",
        "algorithm-unknown",
        "class-unknown",
        "class-hpa",
        "class-hpa-from-config",
        "progress-deadline-0",
        "cc-negative",
    ],
)
def test_s1_3_invalid_annotations_raise_config_error(
    annotations: dict[str, str], cc: int, config: dict[str, str], key: str
) -> None:
    with pytest.raises(ConfigError, match="expected") as info:
        scaling(annotations, cc, config)
    assert key in str(info.value)


# ------------------------------------------------------------------------------------------
# Scenario runner for §1.5-§1.7
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Feed:
    """Record one sample per second for t in [start, stop)."""

    start: int
    stop: int
    concurrency: float
    requests: float = 0.0


@dataclass(frozen=True)
class Decide:
    """Call decide(t, ready) and check the fields that are given."""

    t: float
    ready: int
    desired: int
    panic: bool | None = None
    ebc: int | None = None
    in_path: bool | None = None
    state: str | None = None


Step = Feed | Decide


def run(kpa: KPA, steps: list[Step]) -> None:
    """Play the steps in order and check every decision."""
    for step in steps:
        if isinstance(step, Feed):
            for t in range(step.start, step.stop):
                kpa.record(float(t), step.concurrency, step.requests)
            continue
        decision = kpa.decide(step.t, step.ready)
        where = f"at t={step.t}: {decision}, state={kpa.state}"
        assert decision.desired == step.desired, where
        if step.panic is not None:
            assert decision.panic == step.panic, where
        if step.ebc is not None:
            assert decision.excess_burst_capacity == step.ebc, where
        if step.in_path is not None:
            assert decision.activator_in_path == step.in_path, where
        if step.state is not None:
            assert kpa.state == step.state, where


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

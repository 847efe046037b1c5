"""Revision annotations and target resolution against knative-semantics.md §1.3-§1.4.

Defaults used throughout (§1.2, §1.4): target utilization 0.7, so TargetValue = 100 * 0.7 = 70
and TotalValue = 100; stable window 60 s, panic window 60 * 10 % = 6 s, panic threshold 200 % =
2.0, max scale-up rate 1000, max scale-down rate 2, target burst capacity 211, grace period 30 s.
Every expected value is derived by hand from the formulas of the semantics document; the
arithmetic is in the comment next to it.
"""

import pytest

from knlocal.errors import ConfigError
from knlocal.serving.autoscaler.scaler import KPA
from tests.knlocal.serving.autoscaler.scenario import A, Decide, Feed, run, scaling

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
# min <= max: the two copies of the rule used to disagree. Knative's annotation validator
# (pkg/apis/autoscaling/annotation_validation.go validateMinMaxScale) compares the
# annotations' own min-scale and max-scale (an absent one is 0); the ConfigMap's pair is
# checked by config.go. The former annotation copy compared the merged values instead.
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("annotations", "config", "bounds"),
    [
        # Annotation max 2 below the ConfigMap's min 3: valid for Knative.
        ({"max-scale": "2"}, {"min-scale": "3"}, (3, 2)),
        # Annotation min 3 above the ConfigMap's max 2: valid too (max-scale annotation absent).
        ({"min-scale": "3"}, {"max-scale": "2"}, (3, 2)),
    ],
    ids=["annotation-max-below-config-min", "annotation-min-above-config-max"],
)
def test_s1_3_min_max_check_compares_the_annotations_only(
    annotations: dict[str, str], config: dict[str, str], bounds: tuple[int, int]
) -> None:
    resolved = scaling(annotations, 0, config)
    assert (resolved.min_scale, resolved.max_scale) == bounds
    # scaler.go applyBounds: the lower bound wins, so the revision runs min-scale instances.
    kpa = KPA(resolved, 0.0)
    run(kpa, [Feed(0, 60, 0), Decide(59, ready=1, desired=3)])


def test_s1_3_activation_scale_is_checked_against_the_annotations_only() -> None:
    # validateMinMaxScale: activation-scale 2 with the ConfigMap's min-scale 3 is valid.
    assert scaling({"activation-scale": "2"}, 0, {"min-scale": "3"}).activation_scale == 2
    # ... and with the ConfigMap's max-scale 1.
    assert scaling({"activation-scale": "2"}, 0, {"max-scale": "1"}).activation_scale == 2


def test_s1_3_min_above_max_names_both_annotations() -> None:
    with pytest.raises(ConfigError) as info:
        scaling({"min-scale": "3", "max-scale": "2"})
    message = str(info.value)
    assert A + "min-scale" in message
    assert A + "max-scale" in message
    assert "'3'" in message

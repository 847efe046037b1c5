"""The config-autoscaler ConfigMap against knative-semantics.md §1.2 and Knative's config.go.

Defaults used throughout (§1.2, §1.4): target utilization 0.7, so TargetValue = 100 * 0.7 = 70
and TotalValue = 100; stable window 60 s, panic window 60 * 10 % = 6 s, panic threshold 200 % =
2.0, max scale-up rate 1000, max scale-down rate 2, target burst capacity 211, grace period 30 s.
Every expected value is derived by hand from the formulas of the semantics document; the
arithmetic is in the comment next to it.
"""

import pytest

from knlocal.errors import ConfigError
from knlocal.serving.autoscaler.config import AutoscalerDefaults
from tests.knlocal.serving.autoscaler.scenario import scaling

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
# Rules shared with the annotations: one rule, the same verdict on both sides
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config_key", "annotation", "value", "valid"),
    [
        ("stable-window", "window", "6s", True),
        ("stable-window", "window", "3600s", True),
        ("stable-window", "window", "5s", False),
        ("stable-window", "window", "3601s", False),
        ("stable-window", "window", "60500ms", False),
        ("panic-window-percentage", "panic-window-percentage", "1", True),
        ("panic-window-percentage", "panic-window-percentage", "100", True),
        ("panic-window-percentage", "panic-window-percentage", "0.99", False),
        ("panic-window-percentage", "panic-window-percentage", "100.5", False),
        ("target-burst-capacity", "target-burst-capacity", "-1", True),
        ("target-burst-capacity", "target-burst-capacity", "0", True),
        ("target-burst-capacity", "target-burst-capacity", "-0.5", False),
        ("requests-per-second-target-default", "target", "0.01", True),
        ("requests-per-second-target-default", "target", "0.009", False),
        ("initial-scale", "initial-scale", "1", True),
        ("initial-scale", "initial-scale", "0", False),
    ],
)
def test_s1_2_s1_3_a_rule_written_once_gives_the_same_verdict_in_both_places(
    config_key: str, annotation: str, value: str, valid: bool
) -> None:
    # config.go validate and annotation_validation.go state these ranges alike; the runtime
    # checks both with the same config.Rule.
    metric = {"metric": "rps"} if annotation == "target" else {}
    outcomes = []
    for build in (
        lambda: AutoscalerDefaults.from_configmap({config_key: value}),
        lambda: scaling({annotation: value, **metric}),
    ):
        try:
            build()
            outcomes.append(True)
        except ConfigError:
            outcomes.append(False)
    assert outcomes == [valid, valid]


@pytest.mark.parametrize(
    ("key", "value", "attr", "expected"),
    [
        # config.go validate has no upper bound for these two (the annotations have 1 h).
        ("scale-down-delay", "2h", "scale_down_delay", 7200.0),
        ("scale-to-zero-pod-retention-period", "2h", "scale_to_zero_pod_retention_period", 7200.0),
        # config.go does not range-check panic-threshold-percentage (the annotation: 110-1000).
        ("panic-threshold-percentage", "100", "panic_threshold_percentage", 100.0),
    ],
)
def test_s1_2_configmap_rules_that_knative_states_differently_from_the_annotations(
    key: str, value: str, attr: str, expected: float
) -> None:
    assert getattr(AutoscalerDefaults.from_configmap({key: value}), attr) == expected
    with pytest.raises(ConfigError, match="expected"):
        scaling({key: value})

"""The ``config-autoscaler`` ConfigMap as a frozen dataclass, and every range rule, once.

Knative: ``pkg/autoscaler/config/config.go`` (``defaultConfig``, ``NewConfigFromMap``,
``validate``) for the ConfigMap, ``pkg/apis/autoscaling/register.go`` for the bounds shared
with the annotations (knative-semantics.md §1.2, §1.3). The per-revision annotations
(:mod:`knlocal.serving.autoscaler.spec`) are checked with the same :class:`Rule` objects, so a
range is written in one place. Where Knative's two validators really differ (scale-down delay
and retention have an upper bound only as annotations; the panic threshold is range-checked
only as an annotation), there are two rules, each named after its source.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from knlocal.errors import ConfigError
from knlocal.serving.autoscaler.goparse import (
    INT32_MAX,
    format_duration,
    invalid,
    is_whole_seconds,
    parse_bool,
    parse_duration,
    parse_float,
    parse_int32,
)

#: The Knative Pod Autoscaler class (``pkg/apis/autoscaling/register.go``).
KPA_CLASS = "kpa.autoscaling.knative.dev"
#: The Kubernetes HPA class; rejected by the local runtime (simplification 5, see ``spec``).
HPA_CLASS = "hpa.autoscaling.knative.dev"

#: knative-semantics.md §1.2: RPS utilization is an internal constant, not a ConfigMap key.
RPS_TARGET_UTILIZATION = 0.7
#: knative-semantics.md §1.5: metrics are bucketed per second (``BucketSize``, config.go).
BUCKET_SECONDS = 1

# pkg/apis/autoscaling/register.go: bounds shared by the ConfigMap and the annotations.
TARGET_MIN = 0.01
WINDOW_MIN = 6.0
WINDOW_MAX = 3600.0
_PANIC_WINDOW_PCT_MIN = 1.0
_PANIC_WINDOW_PCT_MAX = 100.0
_PANIC_THRESHOLD_PCT_MIN = 110.0
_PANIC_THRESHOLD_PCT_MAX = 1000.0


@dataclass(frozen=True)
class Rule:
    """One validation rule of Knative's: what it accepts, and how an error states it."""

    #: Whether a parsed value is valid.
    accepts: Callable[[float], bool]
    #: What a valid value looks like, for the error message.
    expected: str

    def check(self, key: str, value: float, found: str) -> None:
        """Raise unless ``value`` is valid.

        :param key: the ConfigMap key or annotation, for the message.
        :param value: the parsed value.
        :param found: the value as written (or rendered), for the message.
        :raises ConfigError: naming the key, the value found and what was expected.
        """
        if not self.accepts(value):
            raise invalid(key, found, self.expected)


def _closed(low: float, high: float, expected: str) -> Rule:
    """A rule accepting ``[low, high]``.

    :param low: the smallest valid value.
    :param high: the largest valid value.
    :param expected: the expectation, for error messages.
    :return: the rule.
    """
    return Rule(lambda value: low <= value <= high, expected)


# ----- Rules shared by the ConfigMap and the annotations (config.go validate and
# ----- annotation_validation.go state the same range).

#: ``stable-window`` / ``window``.
STABLE_WINDOW = Rule(
    lambda s: WINDOW_MIN <= s <= WINDOW_MAX and is_whole_seconds(s),
    "a duration in [6s, 1h] in whole seconds",
)
#: ``panic-window-percentage``.
PANIC_WINDOW_PERCENTAGE = _closed(
    _PANIC_WINDOW_PCT_MIN, _PANIC_WINDOW_PCT_MAX, "a percentage in [1, 100]"
)
#: ``target-burst-capacity``: -1 = activator always in path.
TARGET_BURST_CAPACITY = Rule(lambda v: v >= 0 or v == -1, "a non-negative number or -1")
#: ``requests-per-second-target-default`` and the ``target`` annotation.
TARGET = Rule(lambda v: v >= TARGET_MIN, f"at least {TARGET_MIN}")
#: ``scale-to-zero-grace-period`` and ``serving.knative.dev/progress-deadline``.
POSITIVE_DURATION = Rule(lambda s: s > 0, "a positive duration")
#: Scale counts: ``getIntGE0`` of annotation_validation.go; ``max-scale-limit`` (config.go).
NON_NEGATIVE_INT = Rule(lambda v: v >= 0, f"an integer in [0, {INT32_MAX}]")


def initial_scale_rule(allow_zero: bool) -> Rule:
    """``initial-scale``: at least 1, or 0 with ``allow-zero-initial-scale`` (both validators).

    :param allow_zero: the ConfigMap's ``allow-zero-initial-scale``.
    :return: the rule.
    """
    return Rule(
        lambda v: v > 0 or (v == 0 and allow_zero),
        "at least 1 (0 only with allow-zero-initial-scale: true)",
    )


def max_scale_rule(limit: int) -> Rule:
    """``max-scale`` within ``max-scale-limit`` (``validateMaxScaleWithinLimit``, config.go).

    :param limit: the ConfigMap's ``max-scale-limit``; 0 = no limit.
    :return: the rule: ``[1, limit]`` with a limit (unbounded is refused), else ``>= 0``.
    """
    if limit > 0:
        return _closed(1, limit, f"a value in [1, max-scale-limit={limit}]")
    return Rule(lambda v: v >= 0, "at least 0")


def min_scale_rule(max_scale: int, max_key: str = "max-scale") -> Rule:
    """``min-scale`` at most ``max-scale`` unless that is 0 (unbounded).

    :param max_scale: the max scale it is compared with.
    :param max_key: the key that holds ``max_scale``, for the message.
    :return: the rule.
    """
    return Rule(
        lambda v: v >= 0 and (max_scale == 0 or v <= max_scale),
        f"a value in [0, {max_key}={max_scale}] ({max_key} 0 = unbounded)",
    )


# ----- Rules of the annotations only (annotation_validation.go).

#: ``panic-threshold-percentage``: config.go does not range-check the ConfigMap value.
ANNOTATION_PANIC_THRESHOLD_PERCENTAGE = _closed(
    _PANIC_THRESHOLD_PCT_MIN, _PANIC_THRESHOLD_PCT_MAX, "a percentage in [110, 1000]"
)
#: ``target-utilization-percentage`` (the ConfigMap's percentage has its own rule below).
ANNOTATION_TARGET_UTILIZATION_PERCENTAGE = _closed(1, 100, "a percentage in [1, 100]")
#: ``scale-down-delay``: ``validateScaleDownDelay`` also caps it at WindowMax.
ANNOTATION_SCALE_DOWN_DELAY = Rule(
    lambda s: 0 <= s <= WINDOW_MAX and is_whole_seconds(s),
    "a duration in [0s, 1h] in whole seconds",
)
#: ``scale-to-zero-pod-retention-period``: ``validateLastPodRetention`` caps it at WindowMax.
ANNOTATION_RETENTION = _closed(0, WINDOW_MAX, "a duration in [0s, 1h]")

# ----- Rules of the ConfigMap only (config.go validate).

_CONFIG_SCALE_DOWN_DELAY = Rule(
    lambda s: s >= 0 and is_whole_seconds(s), "a non-negative duration in whole seconds"
)
_CONFIG_RETENTION = Rule(lambda s: s >= 0, "a non-negative duration")
_CONFIG_TARGET_PERCENTAGE = Rule(
    lambda v: 0 < v <= 100, "a percentage in (1, 100] or a fraction in (0, 1]"
)
_CONFIG_TARGET_DEFAULT = Rule(
    lambda target: target >= TARGET_MIN,
    f"a value that, times container-concurrency-target-percentage, is at least {TARGET_MIN}",
)
_CONFIG_RATE = Rule(lambda v: v > 1, "a number greater than 1")
_CONFIG_ACTIVATOR_CAPACITY = Rule(lambda v: v >= 1, "at least 1")


class _InvalidConfigKey(ConfigError):
    """A ``config-autoscaler`` validation error that remembers its key and expectation."""

    def __init__(self, key: str, found: str, expected: str) -> None:
        """Build the error.

        :param key: the ConfigMap key.
        :param found: the value found.
        :param expected: what a valid value looks like.
        """
        super().__init__(str(invalid(f"config-autoscaler key {key}", found, expected)))
        self.key = key
        self.expected = expected


def _check(rule: Rule, key: str, value: float, found: str) -> None:
    """Apply ``rule`` to a ConfigMap value, raising an error that remembers the key.

    :param rule: the rule.
    :param key: the ConfigMap key.
    :param value: the value.
    :param found: the value rendered for the message.
    :raises ConfigError: if the rule refuses the value.
    """
    if not rule.accepts(value):
        raise _InvalidConfigKey(key, found, rule.expected)


_CONFIG_FLOATS = {
    "container-concurrency-target-percentage": "container_concurrency_target_percentage",
    "container-concurrency-target-default": "container_concurrency_target_default",
    "requests-per-second-target-default": "requests_per_second_target_default",
    "target-burst-capacity": "target_burst_capacity",
    "panic-window-percentage": "panic_window_percentage",
    "panic-threshold-percentage": "panic_threshold_percentage",
    "max-scale-up-rate": "max_scale_up_rate",
    "max-scale-down-rate": "max_scale_down_rate",
    "activator-capacity": "activator_capacity",
}
_CONFIG_DURATIONS = {
    "stable-window": "stable_window",
    "scale-to-zero-grace-period": "scale_to_zero_grace_period",
    "scale-to-zero-pod-retention-period": "scale_to_zero_pod_retention_period",
    "scale-down-delay": "scale_down_delay",
}
_CONFIG_INTS = {
    "initial-scale": "initial_scale",
    "min-scale": "min_scale",
    "max-scale": "max_scale",
    "max-scale-limit": "max_scale_limit",
}
_CONFIG_BOOLS = {
    "enable-scale-to-zero": "enable_scale_to_zero",
    "allow-zero-initial-scale": "allow_zero_initial_scale",
}
_PARSERS: tuple[tuple[Mapping[str, str], Callable[[str, str], float | int | bool]], ...] = (
    (_CONFIG_FLOATS, parse_float),
    (_CONFIG_DURATIONS, parse_duration),
    (_CONFIG_INTS, parse_int32),
    (_CONFIG_BOOLS, parse_bool),
)


@dataclass(frozen=True)
class AutoscalerDefaults:
    """The cluster-wide ``config-autoscaler`` ConfigMap, with Knative's keys and defaults (§1.2).

    Durations are in seconds. Constructing an instance validates it like Knative's
    ``validate`` in ``pkg/autoscaler/config/config.go``; :meth:`from_configmap` parses the
    ConfigMap's strings first.
    """

    #: ``container-concurrency-target-percentage`` as written: a percentage in (1, 100], or,
    #: Knative's legacy form, a fraction in (0, 1]; see ``container_concurrency_target_fraction``.
    container_concurrency_target_percentage: float = 70.0
    #: ``container-concurrency-target-default``: soft per-instance target when
    #: ``containerConcurrency`` is 0.
    container_concurrency_target_default: float = 100.0
    #: ``requests-per-second-target-default``.
    requests_per_second_target_default: float = 200.0
    #: ``target-burst-capacity``: -1 = activator always in path, 0 = only at zero scale.
    target_burst_capacity: float = 211.0
    #: ``stable-window`` in seconds, whole seconds in [6, 3600].
    stable_window: float = 60.0
    #: ``panic-window-percentage`` of the stable window, in [1, 100].
    panic_window_percentage: float = 10.0
    #: ``panic-threshold-percentage`` (Knative does not range-check the ConfigMap value).
    panic_threshold_percentage: float = 200.0
    #: ``max-scale-up-rate``, > 1.
    max_scale_up_rate: float = 1000.0
    #: ``max-scale-down-rate``, > 1.
    max_scale_down_rate: float = 2.0
    #: ``enable-scale-to-zero``; false turns a desired 0 into 1.
    enable_scale_to_zero: bool = True
    #: ``scale-to-zero-grace-period`` in seconds, > 0.
    scale_to_zero_grace_period: float = 30.0
    #: ``scale-to-zero-pod-retention-period`` in seconds, >= 0.
    scale_to_zero_pod_retention_period: float = 0.0
    #: ``pod-autoscaler-class``.
    pod_autoscaler_class: str = KPA_CLASS
    #: ``activator-capacity``, >= 1.
    activator_capacity: float = 100.0
    #: ``initial-scale``; 0 only with ``allow-zero-initial-scale``.
    initial_scale: int = 1
    #: ``allow-zero-initial-scale``.
    allow_zero_initial_scale: bool = False
    #: ``min-scale``.
    min_scale: int = 0
    #: ``max-scale``; 0 = unbounded.
    max_scale: int = 0
    #: ``scale-down-delay`` in seconds, whole seconds >= 0.
    scale_down_delay: float = 0.0
    #: ``max-scale-limit``; if > 0, every max scale must be in [1, limit].
    max_scale_limit: int = 0

    def __post_init__(self) -> None:
        """Validate like ``validate`` in ``pkg/autoscaler/config/config.go``, in its order.

        :raises ConfigError: naming the key, the value found and what was expected.
        """
        durations = (
            ("scale-to-zero-grace-period", POSITIVE_DURATION, self.scale_to_zero_grace_period),
            ("scale-down-delay", _CONFIG_SCALE_DOWN_DELAY, self.scale_down_delay),
            (
                "scale-to-zero-pod-retention-period",
                _CONFIG_RETENTION,
                self.scale_to_zero_pod_retention_period,
            ),
        )
        for key, rule, seconds in durations:
            _check(rule, key, seconds, format_duration(seconds))
        numbers = (
            ("target-burst-capacity", TARGET_BURST_CAPACITY, self.target_burst_capacity),
            (
                "container-concurrency-target-percentage",
                _CONFIG_TARGET_PERCENTAGE,
                self.container_concurrency_target_percentage,
            ),
        )
        for key, rule, number in numbers:
            _check(rule, key, number, f"{number:g}")
        target = (
            self.container_concurrency_target_fraction * self.container_concurrency_target_default
        )
        _check(
            _CONFIG_TARGET_DEFAULT,
            "container-concurrency-target-default",
            target,
            f"{self.container_concurrency_target_default:g}",
        )
        rates = (
            ("requests-per-second-target-default", TARGET, self.requests_per_second_target_default),
            ("activator-capacity", _CONFIG_ACTIVATOR_CAPACITY, self.activator_capacity),
            ("max-scale-up-rate", _CONFIG_RATE, self.max_scale_up_rate),
            ("max-scale-down-rate", _CONFIG_RATE, self.max_scale_down_rate),
        )
        for key, rule, number in rates:
            _check(rule, key, number, f"{number:g}")
        _check(
            STABLE_WINDOW, "stable-window", self.stable_window, format_duration(self.stable_window)
        )
        _check(
            PANIC_WINDOW_PERCENTAGE,
            "panic-window-percentage",
            self.panic_window_percentage,
            f"{self.panic_window_percentage:g}",
        )
        self._validate_scales()

    def _validate_scales(self) -> None:
        """Validate initial, max and min scale and the max-scale limit (end of ``validate``).

        :raises ConfigError: naming the key, the value found and what was expected.
        """
        scales = (
            (
                "initial-scale",
                initial_scale_rule(self.allow_zero_initial_scale),
                self.initial_scale,
            ),
            ("max-scale-limit", NON_NEGATIVE_INT, self.max_scale_limit),
            ("max-scale", max_scale_rule(self.max_scale_limit), self.max_scale),
            ("min-scale", min_scale_rule(self.max_scale), self.min_scale),
        )
        for key, rule, value in scales:
            _check(rule, key, value, str(value))

    @property
    def container_concurrency_target_fraction(self) -> float:
        """The concurrency target utilization as a fraction (``NewConfigFromMap``'s conversion).

        :return: ``percentage / 100`` when the key holds a percentage (> 1), else the value.
        """
        pct = self.container_concurrency_target_percentage
        # config.go: for legacy reasons values in (0, 1] are already fractions.
        return pct / 100.0 if pct > 1.0 else pct

    @classmethod
    def from_configmap(cls, data: Mapping[str, str]) -> "AutoscalerDefaults":
        """Build the defaults from the ConfigMap's ``data``, like ``NewConfigFromMap``.

        Keys Knative does not know (``_example``, old keys such as ``tick-interval``) are
        ignored, as Knative ignores them.

        :param data: the ConfigMap's ``data`` mapping.
        :return: the validated defaults.
        :raises ConfigError: naming the key, the value found and what was expected, if a value
            does not parse or is out of range.
        """
        values: dict[str, float | int | bool | str] = {}
        for attributes, parse in _PARSERS:
            for key, attr in attributes.items():
                if key in data:
                    values[attr] = parse(f"config-autoscaler key {key}", data[key])
        if "pod-autoscaler-class" in data:
            values["pod_autoscaler_class"] = data["pod-autoscaler-class"].strip()
        try:
            return cls(**values)  # type: ignore[arg-type]
        except _InvalidConfigKey as err:
            # Report the value as written in the ConfigMap ("61500ms"), not as parsed.
            if err.key in data:
                raise _InvalidConfigKey(err.key, data[err.key], err.expected) from None
            raise

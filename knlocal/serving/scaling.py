"""Knative Serving's KPA autoscaling decision, as a pure and clock-injected state machine.

This module reproduces what Knative Serving decides for one revision: how many instances it
wants and whether the activator must stay in the request path. It combines three Knative parts
into one object, :class:`KPA`:

* the decider, ``Scale()`` in ``pkg/autoscaler/scaling/autoscaler.go`` (knative-semantics.md
  §1.5), fed by 1-second metric buckets (``pkg/autoscaler/aggregation/bucketing.go``,
  ``pkg/autoscaler/metrics/collector.go``);
* the scaler, ``scale()`` and ``handleScaleToZero()`` in
  ``pkg/reconciler/autoscaling/kpa/scaler.go`` (§1.6): min/max/initial bounds and the gating of
  scale to zero;
* the PodAutoscaler state machine of ``pkg/reconciler/autoscaling/kpa/kpa.go``
  (``ReconcileKind``, ``computeActiveCondition``): Active / Activating / Inactive, and the
  ServerlessService mode, Serve or Proxy (activator in path, §1.7).

Settings come from the ``config-autoscaler`` ConfigMap (:class:`AutoscalerDefaults`, §1.2) and
the revision template's annotations and ``containerConcurrency`` (:class:`RevisionScaling`,
§1.3-§1.4).

Nothing in this module reads a clock, sleeps, starts threads or does I/O: every call takes
``now`` in seconds (any monotonic origin, e.g. ``time.monotonic()``).

How the caller drives it::

    kpa = KPA(scaling, now)
    # once a second, per revision: the total in-flight concurrency (all instances plus the
    # requests the activator is holding) and the number of requests in that second
    kpa.record(now, concurrency, requests)
    # every KPA.TICK_INTERVAL (2 s): apply decision.desired, put the activator in or out of path
    decision = kpa.decide(now, ready)
    # when the activator receives a request for the revision: record it, then poke, so that a
    # revision at zero scale is scaled up at once instead of at the next tick (§1.5 "Poke")
    kpa.record(now, concurrency)
    decision = kpa.poke(now, ready, concurrency)   # None when Knative would not poke

Deliberate simplifications (each deviates from the Knative source named):

1. One evaluation loop. Knative runs the decider on a 2-s ticker (``multiscaler.go``) and
   reconciles the PodAutoscaler on events and on delayed re-queues (``scaler.go``
   ``enqueueCB``). Here :meth:`KPA.decide` does both at once, so a transition that Knative
   schedules at an exact delay (end of the stable window, end of the grace period) happens at
   the first ``decide()`` at or after that instant, at most one tick (2 s) late.
2. Activator probe. Before scaling to zero Knative probes that the activator really is in the
   path (``scaler.go`` ``activatorProbe``, skipped when TBC = -1). The local runtime always
   routes through its activator once the activator is in path, so the probe counts as passed.
   "Proxied for" (``ServerlessService.Status.ProxyFor()``) is measured from the first
   decision that put the activator in path (:attr:`ScaleDecision.activator_in_path`), not from
   when endpoints were programmed.
3. Condition timestamps. ``knative.dev/pkg`` conditions also restamp ``LastTransitionTime``
   when only the reason changes (e.g. ``NoTraffic`` to ``TimedOut``); here only a change of
   state (Active / Activating / Inactive) restamps it, which is what ``ActiveFor`` and
   ``InactiveFor`` measure in every case that matters.
4. Window sums. ``bucketing.go`` keeps a running ``windowTotal``; here the sum is recomputed
   from the buckets on each read. The result is the same up to float rounding, without the
   drift a running float total accumulates. The linear average is still floored to 6 decimals
   like ``roundToNDigits``.
5. Class. Only the KPA class is implemented; ``autoscaling.knative.dev/class:
   hpa.autoscaling.knative.dev`` raises :class:`~knlocal.errors.ConfigError` because the local
   runtime has no CPU/memory metrics (Knative would hand the revision to a Kubernetes HPA).
6. Number syntax. Go's ``strconv.ParseFloat`` also accepts hexadecimal floats, ``Inf`` and
   ``NaN``; those are rejected here (a NaN target or rate would pass Knative's range checks
   and then make every comparison false).
7. Inputs. Knative counts ready endpoints of the private service (``podCounter``) and
   subtracts proxied requests from pod stats to avoid double counting (``collector.go``
   ``record``); here the caller passes ``ready`` and the already de-duplicated totals.
   ``ServiceName != ""`` (needed to mark the scale target initialized) is taken as true.
   The Deployment's replica count is taken to be whatever the last applied decision was.
8. Activator at zero. ``kpa.go`` ``ReconcileKind`` chooses Proxy from ``want`` and the EBC;
   for ``initial-scale: 0`` its first reconcile still says Serve (``want`` is -1 while the
   revision is Activating) and only the next one says Proxy. Here
   :attr:`ScaleDecision.activator_in_path` is also true whenever the applied scale is 0
   (§1.7 "at scale 0 it is always Proxy"), because nothing else could take the request.
9. Not modelled: the number of activators (``kpa.go`` ``computeNumActivators``) and
   configuration updates of a running autoscaler (``Update``); build a new :class:`KPA`
   instead. Autoscaler restart with several ready instances (``newAutoscaler`` starts in panic
   mode) is supported through the ``ready`` argument of :class:`KPA`.
"""

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Literal

from knlocal.errors import ConfigError

__all__ = [
    "HPA_CLASS",
    "KPA",
    "KPA_CLASS",
    "RPS_TARGET_UTILIZATION",
    "AutoscalerDefaults",
    "RevisionScaling",
    "ScaleDecision",
]

#: The Knative Pod Autoscaler class (``pkg/apis/autoscaling/register.go``).
KPA_CLASS = "kpa.autoscaling.knative.dev"
#: The Kubernetes HPA class; rejected by the local runtime (simplification 5).
HPA_CLASS = "hpa.autoscaling.knative.dev"

#: knative-semantics.md §1.2: RPS utilization is an internal constant, not a ConfigMap key.
RPS_TARGET_UTILIZATION = 0.7

# pkg/apis/autoscaling/register.go: bounds shared by the ConfigMap and the annotations.
_TARGET_MIN = 0.01
_WINDOW_MIN = 6.0
_WINDOW_MAX = 3600.0
_PANIC_WINDOW_PCT_MIN = 1.0
_PANIC_WINDOW_PCT_MAX = 100.0
_PANIC_THRESHOLD_PCT_MIN = 110.0
_PANIC_THRESHOLD_PCT_MAX = 1000.0
_INT32_MAX = 2**31 - 1
_INT32_MIN = -(2**31)

# knative-semantics.md §1.5: metrics are bucketed per second (BucketSize, config.go).
_BUCKET_SECONDS = 1
# pkg/reconciler/autoscaling/kpa/scaler.go: activationTimeoutBuffer, added to the progress
# deadline before an activation that never gets ready instances is given up (scale to 0).
_ACTIVATION_TIMEOUT_BUFFER = 30.0
# knative-semantics.md §1.3: config-deployment progress-deadline default.
_DEFAULT_PROGRESS_DEADLINE = 600.0

_GROUP = "autoscaling.knative.dev/"
_PROGRESS_DEADLINE_KEY = "serving.knative.dev/progress-deadline"

# knative-semantics.md §1.3: canonical key first, then the legacy camelCase alias; Knative's
# kmap.KeyPriority takes the first key present.
_ANNOTATION_KEYS: dict[str, tuple[str, ...]] = {
    "class": (_GROUP + "class",),
    "metric": (_GROUP + "metric",),
    "target": (_GROUP + "target",),
    "target-utilization-percentage": (
        _GROUP + "target-utilization-percentage",
        _GROUP + "targetUtilizationPercentage",
    ),
    "window": (_GROUP + "window",),
    "panic-window-percentage": (
        _GROUP + "panic-window-percentage",
        _GROUP + "panicWindowPercentage",
    ),
    "panic-threshold-percentage": (
        _GROUP + "panic-threshold-percentage",
        _GROUP + "panicThresholdPercentage",
    ),
    "target-burst-capacity": (
        _GROUP + "target-burst-capacity",
        _GROUP + "targetBurstCapacity",
    ),
    "min-scale": (_GROUP + "min-scale", _GROUP + "minScale"),
    "max-scale": (_GROUP + "max-scale", _GROUP + "maxScale"),
    "initial-scale": (_GROUP + "initial-scale", _GROUP + "initialScale"),
    "activation-scale": (_GROUP + "activation-scale",),
    "scale-down-delay": (_GROUP + "scale-down-delay", _GROUP + "scaleDownDelay"),
    "scale-to-zero-pod-retention-period": (
        _GROUP + "scale-to-zero-pod-retention-period",
        _GROUP + "scaleToZeroPodRetentionPeriod",
    ),
    "metric-aggregation-algorithm": (
        _GROUP + "metric-aggregation-algorithm",
        _GROUP + "metricAggregationAlgorithm",
    ),
}

_LINEAR = "linear"
_WEIGHTED = "weighted-exponential"
# pkg/apis/autoscaling/register.go accepts the camelCase spelling of the value as well.
_ALGORITHMS = {
    "linear": _LINEAR,
    "weighted-exponential": _WEIGHTED,
    "weightedExponential": _WEIGHTED,
}

# Go strconv.ParseBool.
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})
_FLOAT_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_INT_RE = re.compile(r"[+-]?\d+")
# Go time.ParseDuration: one or more <decimal number><unit>, optional sign, or a bare "0".
_DURATION_PART_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


# --------------------------------------------------------------------------------------------
# Parsing helpers: Go syntax, errors naming key, value and expectation.
# --------------------------------------------------------------------------------------------


def _invalid(key: str, value: str, expected: str) -> ConfigError:
    """Build the error for a setting with an invalid value.

    :param key: the ConfigMap key or annotation that holds the value.
    :param value: the value found, as written.
    :param expected: what a valid value looks like.
    :return: the error to raise.
    """
    return ConfigError(f"{key}: invalid value {value!r}, expected {expected}")


def _parse_float(key: str, raw: str) -> float:
    """Parse a decimal number the way Go's ``strconv.ParseFloat`` does (finite values only).

    :param key: the setting's name, for the error message.
    :param raw: the text to parse.
    :return: the number.
    :raises ConfigError: if ``raw`` is not a decimal number.
    """
    text = raw.strip()
    if not _FLOAT_RE.fullmatch(text):
        raise _invalid(key, raw, "a decimal number")
    value = float(text)
    if not math.isfinite(value):
        raise _invalid(key, raw, "a finite decimal number")
    return value


def _parse_int32(key: str, raw: str) -> int:
    """Parse a base-10 32-bit integer the way Go's ``strconv.ParseInt(s, 10, 32)`` does.

    :param key: the setting's name, for the error message.
    :param raw: the text to parse.
    :return: the integer.
    :raises ConfigError: if ``raw`` is not an integer or is outside the int32 range.
    """
    text = raw.strip()
    if not _INT_RE.fullmatch(text):
        raise _invalid(key, raw, "an integer")
    value = int(text)
    if not _INT32_MIN <= value <= _INT32_MAX:
        raise _invalid(key, raw, f"an integer in [{_INT32_MIN}, {_INT32_MAX}]")
    return value


def _parse_bool(key: str, raw: str) -> bool:
    """Parse a boolean the way Go's ``strconv.ParseBool`` does.

    :param key: the setting's name, for the error message.
    :param raw: the text to parse.
    :return: the boolean.
    :raises ConfigError: if ``raw`` is not one of Go's boolean spellings.
    """
    text = raw.strip()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise _invalid(key, raw, 'a boolean ("true" or "false")')


def _parse_duration(key: str, raw: str) -> float:
    """Parse a Go duration string (``"60s"``, ``"1m30s"``, ``"500ms"``) into seconds.

    :param key: the setting's name, for the error message.
    :param raw: the text to parse.
    :return: the duration in seconds (may be negative, as in Go).
    :raises ConfigError: if ``raw`` is not a Go duration.
    """
    text = raw.strip()
    sign = 1.0
    if text[:1] in ("+", "-"):
        sign = -1.0 if text[0] == "-" else 1.0
        text = text[1:]
    if text == "0":
        return 0.0
    position = 0
    total = 0.0
    while position < len(text):
        match = _DURATION_PART_RE.match(text, position)
        if match is None:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        position = match.end()
    if position == 0 or position != len(text):
        raise _invalid(key, raw, 'a duration such as "60s", "1m30s" or "500ms"')
    return sign * total


def _format_duration(seconds: float) -> str:
    """Render seconds for an error message, in Go's spirit (``60s``, ``0.5s``).

    :param seconds: the duration.
    :return: a short human-readable form.
    """
    return f"{seconds:g}s"


def _is_whole_seconds(seconds: float) -> bool:
    """Tell whether a duration has at most second precision (Go: ``d.Round(time.Second) == d``).

    :param seconds: the duration.
    :return: true if ``seconds`` is a whole number of seconds.
    """
    return math.isclose(seconds, round(seconds), rel_tol=0.0, abs_tol=1e-9)


def _round_half_away(value: float) -> float:
    """Round to the nearest integer, halves away from zero, like Go's ``Duration.Round``.

    Python's :func:`round` rounds halves to even (6.5 -> 6) where Go gives 7.

    :param value: the value to round.
    :return: the rounded value.
    """
    return math.copysign(math.floor(abs(value) + 0.5), value)


# --------------------------------------------------------------------------------------------
# config-autoscaler
# --------------------------------------------------------------------------------------------


class _InvalidConfigKey(ConfigError):
    """A ``config-autoscaler`` validation error that remembers its key and expectation."""

    def __init__(self, key: str, found: str, expected: str) -> None:
        """Build the error.

        :param key: the ConfigMap key.
        :param found: the value found.
        :param expected: what a valid value looks like.
        """
        super().__init__(
            f"config-autoscaler key {key}: invalid value {found!r}, expected {expected}"
        )
        self.key = key
        self.expected = expected


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
        """Validate like ``validate`` in ``pkg/autoscaler/config/config.go``.

        :raises ConfigError: naming the key, the value found and what was expected.
        """
        self._check(
            self.scale_to_zero_grace_period > 0,
            "scale-to-zero-grace-period",
            _format_duration(self.scale_to_zero_grace_period),
            "a positive duration",
        )
        self._check(
            self.scale_down_delay >= 0 and _is_whole_seconds(self.scale_down_delay),
            "scale-down-delay",
            _format_duration(self.scale_down_delay),
            "a non-negative duration in whole seconds",
        )
        self._check(
            self.scale_to_zero_pod_retention_period >= 0,
            "scale-to-zero-pod-retention-period",
            _format_duration(self.scale_to_zero_pod_retention_period),
            "a non-negative duration",
        )
        self._check(
            self.target_burst_capacity >= 0 or self.target_burst_capacity == -1,
            "target-burst-capacity",
            f"{self.target_burst_capacity:g}",
            "a non-negative number or -1",
        )
        pct = self.container_concurrency_target_percentage
        self._check(
            0 < pct <= 100,
            "container-concurrency-target-percentage",
            f"{pct:g}",
            "a percentage in (1, 100] or a fraction in (0, 1]",
        )
        target = (
            self.container_concurrency_target_fraction * self.container_concurrency_target_default
        )
        self._check(
            target >= _TARGET_MIN,
            "container-concurrency-target-default",
            f"{self.container_concurrency_target_default:g}",
            "a value that, times container-concurrency-target-percentage, is at least "
            f"{_TARGET_MIN}",
        )
        self._check(
            self.requests_per_second_target_default >= _TARGET_MIN,
            "requests-per-second-target-default",
            f"{self.requests_per_second_target_default:g}",
            f"at least {_TARGET_MIN}",
        )
        self._check(
            self.activator_capacity >= 1,
            "activator-capacity",
            f"{self.activator_capacity:g}",
            "at least 1",
        )
        self._check(
            self.max_scale_up_rate > 1,
            "max-scale-up-rate",
            f"{self.max_scale_up_rate:g}",
            "a number greater than 1",
        )
        self._check(
            self.max_scale_down_rate > 1,
            "max-scale-down-rate",
            f"{self.max_scale_down_rate:g}",
            "a number greater than 1",
        )
        self._check(
            _WINDOW_MIN <= self.stable_window <= _WINDOW_MAX
            and _is_whole_seconds(self.stable_window),
            "stable-window",
            _format_duration(self.stable_window),
            "a duration in [6s, 1h] in whole seconds",
        )
        self._check(
            _PANIC_WINDOW_PCT_MIN <= self.panic_window_percentage <= _PANIC_WINDOW_PCT_MAX,
            "panic-window-percentage",
            f"{self.panic_window_percentage:g}",
            "a percentage in [1, 100]",
        )
        self._check(
            self.initial_scale > 0 or (self.initial_scale == 0 and self.allow_zero_initial_scale),
            "initial-scale",
            str(self.initial_scale),
            "at least 1 (0 only with allow-zero-initial-scale: true)",
        )
        self._check(
            self.max_scale_limit >= 0, "max-scale-limit", str(self.max_scale_limit), "at least 0"
        )
        if self.max_scale_limit > 0:
            self._check(
                1 <= self.max_scale <= self.max_scale_limit,
                "max-scale",
                str(self.max_scale),
                f"a value in [1, max-scale-limit={self.max_scale_limit}]",
            )
        else:
            self._check(self.max_scale >= 0, "max-scale", str(self.max_scale), "at least 0")
        self._check(
            self.min_scale >= 0 and (self.max_scale == 0 or self.min_scale <= self.max_scale),
            "min-scale",
            str(self.min_scale),
            f"a value in [0, max-scale={self.max_scale}] (max-scale 0 = unbounded)",
        )

    @staticmethod
    def _check(ok: bool, key: str, found: str, expected: str) -> None:
        """Raise a :class:`ConfigError` for ``key`` unless ``ok``.

        :param ok: the validation outcome.
        :param key: the ConfigMap key.
        :param found: the value found, rendered for the message.
        :param expected: what a valid value looks like.
        :raises ConfigError: if not ``ok``.
        """
        if not ok:
            raise _InvalidConfigKey(key, found, expected)

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
        for key, attr in _CONFIG_FLOATS.items():
            if key in data:
                values[attr] = _parse_float(f"config-autoscaler key {key}", data[key])
        for key, attr in _CONFIG_DURATIONS.items():
            if key in data:
                values[attr] = _parse_duration(f"config-autoscaler key {key}", data[key])
        for key, attr in _CONFIG_INTS.items():
            if key in data:
                values[attr] = _parse_int32(f"config-autoscaler key {key}", data[key])
        for key, attr in _CONFIG_BOOLS.items():
            if key in data:
                values[attr] = _parse_bool(f"config-autoscaler key {key}", data[key])
        if "pod-autoscaler-class" in data:
            values["pod_autoscaler_class"] = data["pod-autoscaler-class"].strip()
        try:
            return cls(**values)  # type: ignore[arg-type]
        except _InvalidConfigKey as err:
            # Report the value as written in the ConfigMap ("61500ms"), not as parsed.
            if err.key in data:
                raise _InvalidConfigKey(err.key, data[err.key], err.expected) from None
            raise


# --------------------------------------------------------------------------------------------
# Per-revision settings
# --------------------------------------------------------------------------------------------


def _lookup(annotations: Mapping[str, str], name: str) -> tuple[str, str] | None:
    """Find an autoscaling annotation by canonical name, then by legacy alias (§1.3).

    :param annotations: the revision template's annotations.
    :param name: the canonical name without the ``autoscaling.knative.dev/`` prefix.
    :return: ``(key found, value)``, or ``None`` if neither key is present.
    """
    for key in _ANNOTATION_KEYS[name]:
        if key in annotations:
            return key, annotations[key]
    return None


@dataclass(frozen=True)
class RevisionScaling:
    """Per-revision settings resolved from annotations, ``containerConcurrency`` and defaults.

    This is Knative's ``DeciderSpec`` and ``Metric`` spec plus the PodAutoscaler's bounds
    (§1.3, §1.4; ``pkg/reconciler/autoscaling/kpa/resources/decider.go``,
    ``pkg/reconciler/autoscaling/resources/target.go``). Durations are in seconds. Build it
    with :meth:`resolve`.
    """

    #: ``"concurrency"`` or ``"rps"``.
    metric: str
    #: TargetValue: per-instance target after utilization, ``max(0.01, total * utilization)``.
    target: float
    #: TotalValue: per-instance capacity used for burst-capacity arithmetic.
    total_target: float
    #: Stable window, whole seconds.
    stable_window: float
    #: Panic window, whole seconds, at least 1.
    panic_window: float
    #: Panic threshold as a ratio: ``panic-threshold-percentage / 100`` (200 % -> 2.0).
    panic_threshold: float
    #: Target burst capacity: -1, 0 or > 0.
    target_burst_capacity: float
    #: Lower bound (annotation or ConfigMap); ignored while the revision is unreachable.
    min_scale: int
    #: Upper bound; 0 = unbounded.
    max_scale: int
    #: Instances the revision starts with, kept as a lower bound until first reached.
    initial_scale: int
    #: Minimum non-zero scale when scaling up (1 = no effect).
    activation_scale: int
    #: Scale-down delay; 0 = none.
    scale_down_delay: float
    #: ``scale-to-zero-grace-period`` (ConfigMap only).
    scale_to_zero_grace_period: float
    #: Last-instance retention before scaling to zero.
    scale_to_zero_pod_retention_period: float
    #: ``enable-scale-to-zero`` (ConfigMap only).
    enable_scale_to_zero: bool
    #: ``max-scale-up-rate`` (ConfigMap only).
    max_scale_up_rate: float
    #: ``max-scale-down-rate`` (ConfigMap only).
    max_scale_down_rate: float
    #: ``spec.template.spec.containerConcurrency``; 0 = unlimited.
    container_concurrency: int
    #: ``"linear"`` or ``"weighted-exponential"`` window averaging.
    aggregation_algorithm: str = _LINEAR
    #: Whether a route sends traffic to the revision. Unreachable revisions ignore min scale,
    #: initial scale and scale-down delay and may scale down without the rate limit.
    reachable: bool = True
    #: Progress deadline (``serving.knative.dev/progress-deadline``, default 600 s): an
    #: activation that never gets ready instances is abandoned after it plus 30 s.
    progress_deadline: float = _DEFAULT_PROGRESS_DEADLINE

    @classmethod
    def resolve(
        cls,
        annotations: Mapping[str, str],
        container_concurrency: int,
        defaults: AutoscalerDefaults,
        *,
        reachable: bool = True,
    ) -> "RevisionScaling":
        """Resolve a revision's scaling settings like Knative's decider and metric builders.

        Canonical annotation keys win over their legacy camelCase aliases (§1.3). Values are
        validated like ``pkg/apis/autoscaling/annotation_validation.go``.

        :param annotations: ``spec.template.metadata.annotations``.
        :param container_concurrency: ``spec.template.spec.containerConcurrency`` (0 = unlimited).
        :param defaults: the ``config-autoscaler`` settings.
        :param reachable: whether a route sends traffic to the revision.
        :return: the resolved settings.
        :raises ConfigError: naming the annotation, the value found and what was expected.
        """
        if container_concurrency < 0:
            raise _invalid(
                "spec.template.spec.containerConcurrency",
                str(container_concurrency),
                "an integer >= 0",
            )

        autoscaler_class = defaults.pod_autoscaler_class
        if (found := _lookup(annotations, "class")) is not None:
            key, autoscaler_class = found
            if autoscaler_class.endswith(".knative.dev") and autoscaler_class not in (
                KPA_CLASS,
                HPA_CLASS,
            ):
                raise _invalid(key, autoscaler_class, f"{KPA_CLASS!r} or {HPA_CLASS!r}")
        if autoscaler_class != KPA_CLASS:
            # Simplification 5: no CPU/memory metrics locally, so only KPA can be emulated.
            raise ConfigError(
                f"{_GROUP}class: invalid value {autoscaler_class!r}, expected {KPA_CLASS!r} "
                "(the local runtime implements only the KPA autoscaler)"
            )

        metric = "concurrency"
        if (found := _lookup(annotations, "metric")) is not None:
            key, metric = found
            if metric not in ("concurrency", "rps"):
                raise _invalid(key, metric, '"concurrency" or "rps" (KPA class)')

        # knative-semantics.md §1.4: ResolveMetricTarget.
        if metric == "rps":
            total = defaults.requests_per_second_target_default
            utilization = RPS_TARGET_UTILIZATION
        else:
            total = (
                float(container_concurrency)
                if container_concurrency > 0
                else defaults.container_concurrency_target_default
            )
            utilization = defaults.container_concurrency_target_fraction
        if (found := _lookup(annotations, "target")) is not None:
            key, raw = found
            annotated = _parse_float(key, raw)
            if annotated < _TARGET_MIN:
                raise _invalid(key, raw, f"a number >= {_TARGET_MIN}")
            total = annotated
            # §1.4: a soft concurrency target cannot exceed the hard limit.
            if metric == "concurrency" and container_concurrency > 0:
                total = min(annotated, float(container_concurrency))
        if (found := _lookup(annotations, "target-utilization-percentage")) is not None:
            key, raw = found
            pct = _parse_float(key, raw)
            if not 1 <= pct <= 100:
                raise _invalid(key, raw, "a percentage in [1, 100]")
            utilization = pct / 100.0
        target = max(_TARGET_MIN, total * utilization)

        stable_window = defaults.stable_window
        if (found := _lookup(annotations, "window")) is not None:
            key, raw = found
            stable_window = _parse_duration(key, raw)
            if not (_WINDOW_MIN <= stable_window <= _WINDOW_MAX) or not _is_whole_seconds(
                stable_window
            ):
                raise _invalid(key, raw, "a duration in [6s, 1h] in whole seconds")

        panic_pct = defaults.panic_window_percentage
        if (found := _lookup(annotations, "panic-window-percentage")) is not None:
            key, raw = found
            panic_pct = _parse_float(key, raw)
            if not _PANIC_WINDOW_PCT_MIN <= panic_pct <= _PANIC_WINDOW_PCT_MAX:
                raise _invalid(key, raw, "a percentage in [1, 100]")
        # §1.2: panic window = round(stable * pct / 100) seconds, at least one bucket; Go's
        # Duration.Round rounds halves away from zero.
        panic_window = max(
            float(_BUCKET_SECONDS), _round_half_away(stable_window * panic_pct / 100.0)
        )

        threshold_pct = defaults.panic_threshold_percentage
        if (found := _lookup(annotations, "panic-threshold-percentage")) is not None:
            key, raw = found
            threshold_pct = _parse_float(key, raw)
            if not _PANIC_THRESHOLD_PCT_MIN <= threshold_pct <= _PANIC_THRESHOLD_PCT_MAX:
                raise _invalid(key, raw, "a percentage in [110, 1000]")

        tbc = defaults.target_burst_capacity
        if (found := _lookup(annotations, "target-burst-capacity")) is not None:
            key, raw = found
            tbc = _parse_float(key, raw)
            if tbc < 0 and tbc != -1:
                raise _invalid(key, raw, "a non-negative number or -1")

        min_scale = defaults.min_scale
        if (found := _lookup(annotations, "min-scale")) is not None:
            min_scale = cls._non_negative_int(*found)
        max_scale = defaults.max_scale
        if (found := _lookup(annotations, "max-scale")) is not None:
            key, raw = found
            max_scale = cls._non_negative_int(key, raw)
            limit = defaults.max_scale_limit
            if limit > 0 and not 1 <= max_scale <= limit:
                raise _invalid(key, raw, f"a value in [1, max-scale-limit={limit}]")
        if max_scale != 0 and max_scale < min_scale:
            raise ConfigError(
                f"{_GROUP}max-scale: invalid value {max_scale}, expected 0 (unbounded) or at "
                f"least min-scale={min_scale}"
            )

        initial_scale = defaults.initial_scale
        if (found := _lookup(annotations, "initial-scale")) is not None:
            key, raw = found
            initial_scale = cls._non_negative_int(key, raw)
            if initial_scale == 0 and not defaults.allow_zero_initial_scale:
                raise _invalid(key, raw, "at least 1 (0 only with allow-zero-initial-scale)")

        activation_scale = 1
        if (found := _lookup(annotations, "activation-scale")) is not None:
            key, raw = found
            activation_scale = _parse_int32(key, raw)
            # §1.3: validated min <= activation-scale <= max (max 0 = unbounded).
            upper = max_scale if max_scale > 0 else _INT32_MAX
            if not max(1, min_scale) <= activation_scale <= upper:
                raise _invalid(
                    key,
                    raw,
                    f"an integer in [max(1, min-scale={min_scale}), max-scale={max_scale}] "
                    "(max-scale 0 = unbounded)",
                )

        scale_down_delay = defaults.scale_down_delay
        if (found := _lookup(annotations, "scale-down-delay")) is not None:
            key, raw = found
            scale_down_delay = _parse_duration(key, raw)
            if not 0 <= scale_down_delay <= _WINDOW_MAX or not _is_whole_seconds(scale_down_delay):
                raise _invalid(key, raw, "a duration in [0s, 1h] in whole seconds")

        retention = defaults.scale_to_zero_pod_retention_period
        if (found := _lookup(annotations, "scale-to-zero-pod-retention-period")) is not None:
            key, raw = found
            retention = _parse_duration(key, raw)
            if not 0 <= retention <= _WINDOW_MAX:
                raise _invalid(key, raw, "a duration in [0s, 1h]")

        algorithm = _LINEAR
        if (found := _lookup(annotations, "metric-aggregation-algorithm")) is not None:
            key, raw = found
            if raw not in _ALGORITHMS:
                raise _invalid(key, raw, '"linear" or "weighted-exponential"')
            algorithm = _ALGORITHMS[raw]

        progress_deadline = _DEFAULT_PROGRESS_DEADLINE
        if _PROGRESS_DEADLINE_KEY in annotations:
            raw = annotations[_PROGRESS_DEADLINE_KEY]
            progress_deadline = _parse_duration(_PROGRESS_DEADLINE_KEY, raw)
            if progress_deadline <= 0:
                raise _invalid(_PROGRESS_DEADLINE_KEY, raw, "a positive duration")

        return cls(
            metric=metric,
            target=target,
            total_target=total,
            stable_window=stable_window,
            panic_window=panic_window,
            panic_threshold=threshold_pct / 100.0,
            target_burst_capacity=tbc,
            min_scale=min_scale,
            max_scale=max_scale,
            initial_scale=initial_scale,
            activation_scale=activation_scale,
            scale_down_delay=scale_down_delay,
            scale_to_zero_grace_period=defaults.scale_to_zero_grace_period,
            scale_to_zero_pod_retention_period=retention,
            enable_scale_to_zero=defaults.enable_scale_to_zero,
            max_scale_up_rate=defaults.max_scale_up_rate,
            max_scale_down_rate=defaults.max_scale_down_rate,
            container_concurrency=container_concurrency,
            aggregation_algorithm=algorithm,
            reachable=reachable,
            progress_deadline=progress_deadline,
        )

    @staticmethod
    def _non_negative_int(key: str, raw: str) -> int:
        """Parse a scale annotation: an int32 >= 0 (``getIntGE0``).

        :param key: the annotation key found.
        :param raw: its value.
        :return: the integer.
        :raises ConfigError: if the value is not an integer in [0, 2^31 - 1].
        """
        value = _parse_int32(key, raw)
        if value < 0:
            raise _invalid(key, raw, f"an integer in [0, {_INT32_MAX}]")
        return value


# --------------------------------------------------------------------------------------------
# Metric windows (pkg/autoscaler/aggregation)
# --------------------------------------------------------------------------------------------


class _LinearBuckets:
    """A ring of 1-s buckets averaged linearly over a window (``TimedFloat64Buckets``)."""

    def __init__(self, window: float) -> None:
        """Create an empty window.

        :param window: the window length in whole seconds.
        """
        self._window = int(window)
        self._buckets = [0.0] * max(1, math.ceil(window / _BUCKET_SECONDS))
        self._first_write: int | None = None
        self._last_write: int | None = None

    def record(self, now: float, value: float) -> None:
        """Add ``value`` to the bucket of ``now``; several values in one second are summed.

        :param now: the sample time in seconds.
        :param value: the value to add.
        """
        # bucketing.go Record: buckets between the last write and now are stale, zero them;
        # after a whole window without writes, start over (firstWrite resets).
        bucket = math.floor(now)
        size = len(self._buckets)
        if self._last_write is not None and bucket != self._last_write:
            if bucket + self._window <= self._last_write:
                return  # older than a window: ignored, like Knative
            if self._first_write is None or bucket < self._first_write:
                self._first_write = bucket
        if self._last_write is None or bucket > self._last_write:
            if self._last_write is None or bucket - self._last_write >= self._window:
                self._first_write = bucket
                self._buckets = [0.0] * size
            else:
                for index in range(self._last_write + 1, bucket + 1):
                    self._buckets[index % size] = 0.0
            self._last_write = bucket
        self._buckets[bucket % size] += value

    def is_empty(self, now: float) -> bool:
        """Tell whether nothing was recorded during the last window (``IsEmpty``).

        :param now: the current time in seconds.
        :return: true if there is no data to decide on.
        """
        return self._last_write is None or math.floor(now) - self._last_write > self._window

    def average(self, now: float) -> float:
        """Average the buckets written since the first write, capped at the window.

        :param now: the current time in seconds.
        :return: the window average, 0 if nothing was written for a whole window.
        """
        if self._last_write is None or self._first_write is None:
            return 0.0
        current = math.floor(now)
        size = len(self._buckets)
        age = current - self._last_write
        if age >= self._window:
            return 0.0
        if age <= 0:
            total = sum(self._buckets)
            count = min(self._last_write - self._first_write + 1, size)
        else:
            # Buckets after the last write hold data older than the window: leave them out.
            stale = {index % size for index in range(self._last_write + 1, current + 1)}
            total = sum(v for i, v in enumerate(self._buckets) if i not in stale)
            count = min(self._last_write - self._first_write + 1, size - age)
        # bucketing.go roundToNDigits(6, ...): floor to 6 decimals, so float noise such as
        # 70.00000000000001 cannot push ceil(observed / target) up by one instance.
        return math.floor(total / count * 1e6) / 1e6


class _WeightedBuckets(_LinearBuckets):
    """The same ring averaged with exponentially decaying weights (``WeightedFloat64Buckets``)."""

    # bucketing.go: the weights of a full window sum to at least 0.9999, decay >= 0.2.
    _WEIGHT_PRECISION = 0.9999
    _MIN_EXPONENT = 0.2

    def __init__(self, window: float) -> None:
        """Create an empty window.

        :param window: the window length in whole seconds.
        """
        super().__init__(window)
        size = len(self._buckets)
        self._smoothing = max(1 - (1 - self._WEIGHT_PRECISION) ** (1 / size), self._MIN_EXPONENT)

    def average(self, now: float) -> float:
        """Weighted average: the newest bucket weighs ``m``, the one before ``m(1-m)``, ...

        :param now: the current time in seconds.
        :return: the weighted window average, 0 if nothing was written for a whole window.
        """
        if self._last_write is None or self.is_empty(now):
            return 0.0
        size = len(self._buckets)
        multiplier = self._smoothing
        count = size
        current = math.floor(now)
        if current > self._last_write:
            # Seconds without data count as zeros at the newest end.
            skipped = current - self._last_write
            multiplier *= (1 - self._smoothing) ** skipped
            count -= skipped
        result = 0.0
        for offset in range(count):
            result += self._buckets[(self._last_write - offset) % size] * multiplier
            multiplier *= 1 - self._smoothing
        return result


class _MaxTimeWindow:
    """The maximum of values recorded over a time window (``aggregation/max.TimeWindow``)."""

    def __init__(self, duration: float, granularity: float) -> None:
        """Create an empty window.

        :param duration: the window length in seconds.
        :param granularity: the bucket length in seconds.
        """
        self._size = math.ceil(duration / granularity)
        self._granularity = int(granularity)
        self._entries: list[tuple[int, int]] = []

    def record(self, now: float, value: int) -> None:
        """Record ``value`` at ``now``; values of one bucket keep their maximum.

        :param now: the time in seconds.
        :param value: the value.
        """
        index = math.floor(now) // self._granularity
        self._entries = [(i, v) for i, v in self._entries if index - i < self._size]
        if self._entries and self._entries[-1][0] == index:
            value = max(value, self._entries.pop()[1])
        self._entries.append((index, value))

    def current(self) -> int:
        """Return the maximum over the window as of the last :meth:`record`.

        :return: the maximum, 0 if nothing was recorded.
        """
        return max((v for _, v in self._entries), default=0)


# --------------------------------------------------------------------------------------------
# The autoscaler
# --------------------------------------------------------------------------------------------

#: The PodAutoscaler's ``Active`` condition: Unknown, True, False.
PAState = Literal["activating", "active", "inactive"]


@dataclass(frozen=True)
class ScaleDecision:
    """What the runtime must do for one revision after one evaluation."""

    #: Instances wanted now, after bounds and scale-to-zero gating (§1.5, §1.6).
    desired: int
    #: Whether the decider is in panic mode (§1.5).
    panic: bool
    #: Excess burst capacity (§1.5): -1 with TBC -1, 0 with TBC 0.
    excess_burst_capacity: int
    #: §1.7: the activator must be in the request path (Proxy mode).
    activator_in_path: bool


@dataclass
class _Condition:
    """The PodAutoscaler ``Active`` condition and when it last changed."""

    state: PAState
    since: float


@dataclass
class _DeciderState:
    """The decider's status: last valid desired scale (-1 = never) and EBC (§1.5)."""

    desired: int
    excess_burst_capacity: int


class KPA:
    """One revision's autoscaler: feed it 1-second metric samples, ask it for a decision every tick.

    See the module docstring for how to drive it and for the simplifications.
    """

    #: knative-semantics.md §0.1: the decider runs every 2 s.
    TICK_INTERVAL: ClassVar[float] = 2.0

    def __init__(self, scaling: RevisionScaling, now: float, *, ready: int = 0) -> None:
        """Create the autoscaler of a new revision (or of a restarted autoscaler).

        :param scaling: the revision's resolved settings.
        :param now: the creation time in seconds.
        :param ready: ready instances at creation; more than 1 (an autoscaler restart) starts
            in panic mode holding that scale, like ``newAutoscaler``.
        """
        self.scaling = scaling
        buckets = _WeightedBuckets if scaling.aggregation_algorithm == _WEIGHTED else _LinearBuckets
        # collector.go: stable and panic windows are separate bucket rings, each with its own
        # first-write time; concurrency and RPS are both kept.
        self._stable = {
            "concurrency": buckets(scaling.stable_window),
            "rps": buckets(scaling.stable_window),
        }
        self._panic = {
            "concurrency": buckets(scaling.panic_window),
            "rps": buckets(scaling.panic_window),
        }
        # autoscaler.go newAutoscaler: with more than 1 ready instance start in panic mode so a
        # restart without metric history does not scale down.
        self._panic_time: float | None = now if ready > 1 else None
        self._max_panic_pods = max(0, ready)
        self._delay = (
            _MaxTimeWindow(scaling.scale_down_delay, self.TICK_INTERVAL)
            if scaling.scale_down_delay > 0
            else None
        )
        tbc = scaling.target_burst_capacity
        # §1.7 / multiscaler.go createScaler: desired unknown (-1); EBC from the initial scale.
        initial_ebc = (
            int(tbc) if tbc in (-1, 0) else int(scaling.initial_scale * scaling.total_target - tbc)
        )
        self._decider = _DeciderState(desired=-1, excess_burst_capacity=initial_ebc)
        # The Deployment is created with initial-scale replicas; the PA starts Activating.
        self._current = scaling.initial_scale
        self._condition = _Condition(state="activating", since=now)
        self._initialized = False
        self._proxy_since: float | None = None

    # ---------------------------------------------------------------- inputs

    def record(self, now: float, concurrency: float, requests: float = 0.0) -> None:
        """Add one sample to the 1-s bucket containing ``now``.

        Samples in the same second are summed, as Knative sums per-instance and activator
        stats (``collector.go``): record each source once per second.

        :param now: the sample time in seconds.
        :param concurrency: average in-flight requests over all instances plus those held by
            the activator.
        :param requests: requests received in that second (used with the ``rps`` metric).
        """
        self._stable["concurrency"].record(now, concurrency)
        self._panic["concurrency"].record(now, concurrency)
        self._stable["rps"].record(now, requests)
        self._panic["rps"].record(now, requests)

    # ---------------------------------------------------------------- state

    @property
    def state(self) -> PAState:
        """The PodAutoscaler's ``Active`` condition: activating, active or inactive.

        :return: the current state.
        """
        return self._condition.state

    @property
    def desired_scale(self) -> int:
        """The decider's last valid recommendation, before bounds; -1 until metrics arrive.

        :return: the decider's desired scale.
        """
        return self._decider.desired

    # ---------------------------------------------------------------- decisions

    def decide(self, now: float, ready: int) -> ScaleDecision:
        """Run Knative's ``Scale()`` and the PodAutoscaler reconcile at ``now``.

        Without metric data for a whole stable window the decider keeps its last
        recommendation (§1.5), so the decision does not change because of the missing data.

        :param now: the current time in seconds.
        :param ready: instances ready to serve now.
        :return: the decision to apply.
        :raises ValueError: if ``ready`` is negative.
        """
        if ready < 0:
            raise ValueError(f"ready must be >= 0, got {ready}")
        metric = self.scaling.metric
        if not self._stable[metric].is_empty(now):
            self._tick_decider(now, ready)
        want = self._scale(now, self._decider.desired)
        # kpa.go ReconcileKind: Proxy when scaled to zero, when the EBC is negative, or when
        # the decider knows nothing about an inactive revision. §1.7: at scale 0 it is always
        # Proxy; Knative gets there one reconcile late for initial-scale 0 (first want is -1
        # while still Activating), the local runtime cannot serve 0 instances without it.
        proxy = (
            want == 0
            or self._decider.excess_burst_capacity < 0
            or (want == -1 and self._condition.state == "inactive")
            or self._current == 0
        )
        if not proxy:
            self._proxy_since = None
        elif self._proxy_since is None:
            self._proxy_since = now
        self._compute_active_condition(now, want, ready)
        return ScaleDecision(
            desired=self._current,
            panic=self._panic_time is not None,
            excess_burst_capacity=self._decider.excess_burst_capacity,
            activator_in_path=proxy,
        )

    def poke(self, now: float, ready: int, concurrency: float) -> ScaleDecision | None:
        """Decide at once if a request arrived for a revision the decider has at zero (§1.5).

        Knative's ``MultiScaler.Poke`` runs the decider out of its 2-s cycle when the last
        recommendation is 0 and the activator reports non-zero concurrency. Call
        :meth:`record` with the activator's sample first, then this.

        :param now: the current time in seconds.
        :param ready: instances ready to serve now.
        :param concurrency: the concurrency the activator just reported.
        :return: the decision, or ``None`` when Knative would not poke (wait for the tick).
        """
        if self._decider.desired != 0 or concurrency == 0:
            return None
        return self.decide(now, ready)

    def _tick_decider(self, now: float, ready: int) -> None:
        """Run ``Scale()`` of ``pkg/autoscaler/scaling/autoscaler.go`` and store its result.

        :param now: the current time in seconds.
        :param ready: instances ready to serve now.
        """
        s = self.scaling
        metric = s.metric
        observed_stable = self._stable[metric].average(now)
        observed_panic = self._panic[metric].average(now)
        # §1.5: 0 ready instances count as 1.
        ready_count = max(1.0, float(ready))
        # §1.5: at least one more instance even with a tiny rate; no rate limit on scaling
        # down an unreachable revision.
        max_up = math.ceil(s.max_scale_up_rate * ready_count)
        max_down = math.floor(ready_count / s.max_scale_down_rate) if s.reachable else 0
        dspc = math.ceil(observed_stable / s.target)
        dppc = math.ceil(observed_panic / s.target)
        stable_pods = min(max(dspc, max_down), max_up)
        panic_pods = min(max(dppc, max_down), max_up)
        # §1.5: activation scale is the smallest non-zero count.
        if s.activation_scale > 1:
            if dspc > 0 and s.activation_scale > stable_pods:
                stable_pods = s.activation_scale
            if dppc > 0 and s.activation_scale > panic_pods:
                panic_pods = s.activation_scale

        # §1.5: enter or stay in panic while over the threshold; leave only after a whole
        # stable window under it, so the surge has reached the stable average.
        over_threshold = dppc / ready_count >= s.panic_threshold
        if over_threshold:
            self._panic_time = now
        elif self._panic_time is not None and self._panic_time + s.stable_window < now:
            self._panic_time = None
            self._max_panic_pods = 0

        desired = stable_pods
        if self._panic_time is not None:
            # §1.5: provision for the larger of the two and never scale down in panic.
            desired = max(desired, panic_pods)
            self._max_panic_pods = max(self._max_panic_pods, desired)
            desired = self._max_panic_pods

        # §1.5: scale-down delay keeps the maximum over the delay window.
        if self._delay is not None and s.reachable:
            self._delay.record(now, desired)
            desired = self._delay.current()

        # §1.5: EBC = floor(ready * TotalValue - TBC - observed panic); TBC 0 and -1 are
        # fixed values.
        if s.target_burst_capacity == 0:
            ebc = 0
        elif s.target_burst_capacity > 0:
            ebc = math.floor(ready * s.total_target - s.target_burst_capacity - observed_panic)
        else:
            ebc = -1
        self._decider.desired = desired
        self._decider.excess_burst_capacity = ebc

    def _bounds(self) -> tuple[int, int]:
        """Return ``(min, max)`` scale; min is ignored while unreachable (``ScaleBounds``).

        :return: the bounds, max 0 meaning unbounded.
        """
        s = self.scaling
        return (s.min_scale if s.reachable else 0), s.max_scale

    def _scale(self, now: float, desired: int) -> int:
        """Apply bounds and scale-to-zero gating (``scaler.go`` ``scale``).

        Updates the applied scale when Knative would patch the Deployment.

        :param now: the current time in seconds.
        :param desired: the decider's recommendation (-1 = unknown).
        :return: ``want``: the scale asked for, -1 if unknown, 0 while only marking inactive.
        """
        state = self._condition.state
        if desired < 0 and state != "activating":
            return desired  # "Metrics are not yet being collected."
        low, high = self._bounds()
        s = self.scaling
        # §1.6: initial scale is a lower bound until the revision first reached it.
        if s.initial_scale > 1 and not self._initialized:
            low = max(low, s.initial_scale)
        if desired < low:
            desired = low
        elif high != 0 and desired > high:
            desired = high
        desired, apply = self._handle_scale_to_zero(now, desired)
        if apply:
            self._current = desired
        return desired

    def _handle_scale_to_zero(self, now: float, desired: int) -> tuple[int, bool]:
        """Gate a desired scale of 0 (``scaler.go`` ``handleScaleToZero``).

        :param now: the current time in seconds.
        :param desired: the bounded desired scale.
        :return: ``(scale, apply)``: the scale to report and whether to apply it.
        """
        if desired != 0:
            return desired, True
        s = self.scaling
        if not s.enable_scale_to_zero:
            return 1, True
        elapsed = now - self._condition.since
        state = self._condition.state
        if state == "activating":
            # §1.6: give up an activation stuck past the progress deadline (+30 s buffer).
            if elapsed > s.progress_deadline + _ACTIVATION_TIMEOUT_BUFFER:
                return 0, True
            return -1, False
        if state == "active":
            # §1.6: after a stable window active, only mark Inactive (scale stays); before
            # that, keep one instance.
            if elapsed >= s.stable_window:
                return 0, False
            return 1, True
        # Inactive. Simplification 2: the local activator is in path, so no probe is needed.
        retention = s.scale_to_zero_pod_retention_period
        if elapsed >= max(s.scale_to_zero_grace_period, retention):
            return 0, True
        if retention > 0 and elapsed < retention:
            return 0, False
        proxied_for = 0.0 if self._proxy_since is None else now - self._proxy_since
        if s.scale_to_zero_grace_period - proxied_for <= 0:
            return 0, True
        return 0, False

    def _active_threshold(self) -> int:
        """Ready instances needed to count as Active (``kpa.go`` ``activeThreshold``).

        :return: ``max(min, initial scale)`` until initialized, then ``max(min, 1)``.
        """
        low, _ = self._bounds()
        if not self._initialized:
            return max(low, self.scaling.initial_scale)
        return max(low, 1)

    def _compute_active_condition(self, now: float, want: int, ready: int) -> None:
        """Update the ``Active`` condition (``kpa.go`` ``computeActiveCondition``).

        :param now: the current time in seconds.
        :param want: the scaler's result (-1 unknown, 0 scale to / stay at zero).
        :param ready: instances ready to serve now.
        """
        min_ready = self._active_threshold()
        if ready >= min_ready:
            self._initialized = True
        state = self._condition.state
        if want == 0 or min_ready == 0:
            self._set_state("inactive", now)
        elif ready < min_ready:
            if want > 0 or state != "inactive":
                self._set_state("activating", now)
            else:
                self._set_state("inactive", now)
        elif want > 0 or state != "inactive":
            self._set_state("active", now)

    def _set_state(self, state: PAState, now: float) -> None:
        """Change the ``Active`` condition, restamping its time only on a change.

        :param state: the new state.
        :param now: the current time in seconds.
        """
        if self._condition.state != state:
            self._condition = _Condition(state=state, since=now)

"""One revision's autoscaling spec: the ``autoscaling.knative.dev`` annotations, resolved.

Knative: ``pkg/apis/autoscaling/register.go`` (keys and legacy aliases),
``pkg/apis/autoscaling/annotation_validation.go`` (validation),
``pkg/reconciler/autoscaling/kpa/resources/decider.go`` (``MakeDecider``) and
``pkg/reconciler/autoscaling/resources/target.go`` (``ResolveMetricTarget``); knative-semantics.md
§1.3, §1.4. The ranges are the :class:`~knlocal.serving.autoscaler.config.Rule` objects of
:mod:`knlocal.serving.autoscaler.config`, shared with the ConfigMap.

Simplification 5 (class): only the KPA class is implemented; ``autoscaling.knative.dev/class:
hpa.autoscaling.knative.dev`` raises :class:`~knlocal.errors.ConfigError` because the local
runtime has no CPU/memory metrics (Knative would hand the revision to a Kubernetes HPA).
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from knlocal.errors import ConfigError
from knlocal.serving.autoscaler.config import (
    ANNOTATION_PANIC_THRESHOLD_PERCENTAGE,
    ANNOTATION_RETENTION,
    ANNOTATION_SCALE_DOWN_DELAY,
    ANNOTATION_TARGET_UTILIZATION_PERCENTAGE,
    BUCKET_SECONDS,
    HPA_CLASS,
    KPA_CLASS,
    NON_NEGATIVE_INT,
    PANIC_WINDOW_PERCENTAGE,
    POSITIVE_DURATION,
    RPS_TARGET_UTILIZATION,
    STABLE_WINDOW,
    TARGET,
    TARGET_BURST_CAPACITY,
    TARGET_MIN,
    AutoscalerDefaults,
    Rule,
    initial_scale_rule,
    max_scale_rule,
    min_scale_rule,
)
from knlocal.serving.autoscaler.goparse import (
    INT32_MAX,
    invalid,
    parse_duration,
    parse_float,
    parse_int32,
    round_half_away,
)
from knlocal.serving.autoscaler.metrics import ALGORITHMS, LINEAR

# knative-semantics.md §1.3: config-deployment progress-deadline default.
DEFAULT_PROGRESS_DEADLINE = 600.0

GROUP = "autoscaling.knative.dev/"
PROGRESS_DEADLINE_KEY = "serving.knative.dev/progress-deadline"
_LEGACY_ALIASES = {
    "target-utilization-percentage": "targetUtilizationPercentage",
    "panic-window-percentage": "panicWindowPercentage",
    "panic-threshold-percentage": "panicThresholdPercentage",
    "target-burst-capacity": "targetBurstCapacity",
    "min-scale": "minScale",
    "max-scale": "maxScale",
    "initial-scale": "initialScale",
    "scale-down-delay": "scaleDownDelay",
    "scale-to-zero-pod-retention-period": "scaleToZeroPodRetentionPeriod",
    "metric-aggregation-algorithm": "metricAggregationAlgorithm",
}


class _Annotations:
    """The revision template's annotations, read by canonical name, then legacy alias (§1.3).

    Knative's ``kmap.KeyPriority`` takes the first key present: the canonical key, then the
    legacy camelCase alias.
    """

    def __init__(self, annotations: Mapping[str, str]) -> None:
        """Wrap the annotations.

        :param annotations: ``spec.template.metadata.annotations``.
        """
        self._annotations = annotations

    def get(self, name: str) -> tuple[str, str] | None:
        """Find an annotation.

        :param name: the canonical name without the ``autoscaling.knative.dev/`` prefix.
        :return: ``(key found, value)``, or ``None`` if neither key is present.
        """
        keys = [GROUP + name]
        if name in _LEGACY_ALIASES:
            keys.append(GROUP + _LEGACY_ALIASES[name])
        for key in keys:
            if key in self._annotations:
                return key, self._annotations[key]
        return None

    def read(
        self, name: str, parse: Callable[[str, str], float], rule: Rule, default: float
    ) -> float:
        """Read a number or duration annotation checked by ``rule``, or ``default`` if absent.

        :param name: the canonical name.
        :param parse: :func:`parse_float` or :func:`parse_duration` (seconds).
        :param rule: the range rule.
        :param default: the value when the annotation is absent.
        :return: the value.
        :raises ConfigError: if the value does not parse or breaks the rule.
        """
        if (found := self.get(name)) is None:
            return default
        key, raw = found
        value = parse(key, raw)
        rule.check(key, value, raw)
        return value

    def count(self, name: str) -> tuple[str, str, int] | None:
        """Read a scale annotation: an int32 >= 0 (``getIntGE0``).

        :param name: the canonical name.
        :return: ``(key found, value as written, value)``, or ``None`` when absent.
        :raises ConfigError: if the value is not an integer in [0, 2^31 - 1].
        """
        if (found := self.get(name)) is None:
            return None
        key, raw = found
        value = parse_int32(key, raw)
        NON_NEGATIVE_INT.check(key, value, raw)
        return key, raw, value


@dataclass(frozen=True)
class ScaleBounds:
    """A revision's scale bounds and its initial and activation scale."""

    #: Lower bound (annotation or ConfigMap).
    min_scale: int
    #: Upper bound; 0 = unbounded.
    max_scale: int
    #: Instances the revision starts with.
    initial_scale: int
    #: Minimum non-zero scale when scaling up (1 = no effect).
    activation_scale: int


def _resolve_bounds(found: _Annotations, defaults: AutoscalerDefaults) -> ScaleBounds:
    """Resolve min, max, initial and activation scale (``validateMinMaxScale``, ``ScaleBounds``).

    As in ``annotation_validation.go``, the cross checks (max >= min, min <= activation <=
    max) compare the annotations' own values, an absent one counting as 0; the ConfigMap's
    bounds were checked against each other by :class:`AutoscalerDefaults`.

    :param found: the annotations.
    :param defaults: the ``config-autoscaler`` settings.
    :return: the bounds.
    :raises ConfigError: naming the annotation, the value found and what was expected.
    """
    annotated_min = found.count("min-scale")
    annotated_max = found.count("max-scale")
    own_min = 0 if annotated_min is None else annotated_min[2]
    own_max = 0 if annotated_max is None else annotated_max[2]
    if annotated_max is not None:
        key, raw, _ = annotated_max
        max_scale_rule(defaults.max_scale_limit).check(key, own_max, raw)
    if annotated_min is not None:
        key, raw, _ = annotated_min
        min_scale_rule(own_max, GROUP + "max-scale").check(key, own_min, raw)
    initial_scale = defaults.initial_scale
    if (annotated := found.count("initial-scale")) is not None:
        key, raw, initial_scale = annotated
        initial_scale_rule(defaults.allow_zero_initial_scale).check(key, initial_scale, raw)
    activation_scale = 1
    if (activation := found.get("activation-scale")) is not None:
        key, raw = activation
        activation_scale = parse_int32(key, raw)
        # §1.3: validated min <= activation-scale <= max (max 0 = unbounded).
        upper = own_max if own_max > 0 else INT32_MAX
        if not max(1, own_min) <= activation_scale <= upper:
            raise invalid(
                key,
                raw,
                f"an integer in [max(1, min-scale={own_min}), max-scale={own_max}] "
                "(max-scale 0 = unbounded)",
            )
    return ScaleBounds(
        min_scale=defaults.min_scale if annotated_min is None else own_min,
        max_scale=defaults.max_scale if annotated_max is None else own_max,
        initial_scale=initial_scale,
        activation_scale=activation_scale,
    )


def _check_class(found: _Annotations, defaults: AutoscalerDefaults) -> None:
    """Accept only the KPA class (``validateClass``; simplification 5).

    :param found: the annotations.
    :param defaults: the ``config-autoscaler`` settings (``pod-autoscaler-class``).
    :raises ConfigError: for an unknown ``*.knative.dev`` class, or any class but KPA.
    """
    autoscaler_class = defaults.pod_autoscaler_class
    if (annotated := found.get("class")) is not None:
        key, autoscaler_class = annotated
        if autoscaler_class.endswith(".knative.dev") and autoscaler_class not in (
            KPA_CLASS,
            HPA_CLASS,
        ):
            raise invalid(key, autoscaler_class, f"{KPA_CLASS!r} or {HPA_CLASS!r}")
    if autoscaler_class != KPA_CLASS:
        # Simplification 5: no CPU/memory metrics locally, so only KPA can be emulated.
        raise ConfigError(
            f"{GROUP}class: invalid value {autoscaler_class!r}, expected {KPA_CLASS!r} "
            "(the local runtime implements only the KPA autoscaler)"
        )


def _resolve_metric(found: _Annotations) -> str:
    """Read the metric (``validateMetric``, KPA class).

    :param found: the annotations.
    :return: ``"concurrency"`` or ``"rps"``.
    :raises ConfigError: for any other metric.
    """
    if (annotated := found.get("metric")) is None:
        return "concurrency"
    key, metric = annotated
    if metric not in ("concurrency", "rps"):
        raise invalid(key, metric, '"concurrency" or "rps" (KPA class)')
    return metric


def _resolve_target(
    found: _Annotations, metric: str, container_concurrency: int, defaults: AutoscalerDefaults
) -> tuple[float, float]:
    """Resolve TargetValue and TotalValue (knative-semantics.md §1.4, ``ResolveMetricTarget``).

    :param found: the annotations.
    :param metric: ``"concurrency"`` or ``"rps"``.
    :param container_concurrency: the hard limit; 0 = unlimited.
    :param defaults: the ``config-autoscaler`` settings.
    :return: ``(target, total)``.
    :raises ConfigError: for an invalid target or utilization annotation.
    """
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
    if found.get("target") is not None:
        annotated = found.read("target", parse_float, TARGET, total)
        # §1.4: a soft concurrency target cannot exceed the hard limit.
        total = annotated
        if metric == "concurrency" and container_concurrency > 0:
            total = min(annotated, float(container_concurrency))
    if found.get("target-utilization-percentage") is not None:
        pct = found.read(
            "target-utilization-percentage",
            parse_float,
            ANNOTATION_TARGET_UTILIZATION_PERCENTAGE,
            0.0,
        )
        utilization = pct / 100.0
    return max(TARGET_MIN, total * utilization), total


@dataclass(frozen=True)
class Windows:
    """The decider's windows and panic threshold."""

    #: Stable window in whole seconds.
    stable_window: float
    #: Panic window in whole seconds, at least 1.
    panic_window: float
    #: Panic threshold as a ratio (200 % -> 2.0).
    panic_threshold: float


def _resolve_windows(found: _Annotations, defaults: AutoscalerDefaults) -> Windows:
    """Resolve the stable and panic windows and the panic threshold (§1.2, §1.3).

    :param found: the annotations.
    :param defaults: the ``config-autoscaler`` settings.
    :return: the windows.
    :raises ConfigError: for an invalid window, panic window or threshold annotation.
    """
    stable = found.read("window", parse_duration, STABLE_WINDOW, defaults.stable_window)
    panic_pct = found.read(
        "panic-window-percentage",
        parse_float,
        PANIC_WINDOW_PERCENTAGE,
        defaults.panic_window_percentage,
    )
    threshold_pct = found.read(
        "panic-threshold-percentage",
        parse_float,
        ANNOTATION_PANIC_THRESHOLD_PERCENTAGE,
        defaults.panic_threshold_percentage,
    )
    return Windows(
        stable_window=stable,
        # §1.2: panic window = round(stable * pct / 100) seconds, at least one bucket; Go's
        # Duration.Round rounds halves away from zero.
        panic_window=max(float(BUCKET_SECONDS), round_half_away(stable * panic_pct / 100.0)),
        panic_threshold=threshold_pct / 100.0,
    )


def _resolve_progress_deadline(annotations: Mapping[str, str]) -> float:
    """Read ``serving.knative.dev/progress-deadline`` (default 600 s, ``config-deployment``).

    :param annotations: the revision template's annotations.
    :return: the deadline in seconds.
    :raises ConfigError: if it is not a positive duration.
    """
    if PROGRESS_DEADLINE_KEY not in annotations:
        return DEFAULT_PROGRESS_DEADLINE
    raw = annotations[PROGRESS_DEADLINE_KEY]
    deadline = parse_duration(PROGRESS_DEADLINE_KEY, raw)
    POSITIVE_DURATION.check(PROGRESS_DEADLINE_KEY, deadline, raw)
    return deadline


def _resolve_algorithm(found: _Annotations) -> str:
    """Read ``metric-aggregation-algorithm`` (``validateAlgorithm``).

    :param found: the annotations.
    :return: the canonical algorithm name.
    :raises ConfigError: for an unknown algorithm.
    """
    if (annotated := found.get("metric-aggregation-algorithm")) is None:
        return LINEAR
    key, raw = annotated
    if raw not in ALGORITHMS:
        raise invalid(key, raw, '"linear" or "weighted-exponential"')
    return ALGORITHMS[raw]


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
    aggregation_algorithm: str = LINEAR
    #: Whether a route sends traffic to the revision. Unreachable revisions ignore min scale,
    #: initial scale and scale-down delay and may scale down without the rate limit.
    reachable: bool = True
    #: Progress deadline (``serving.knative.dev/progress-deadline``, default 600 s): an
    #: activation that never gets ready instances is abandoned after it plus 30 s.
    progress_deadline: float = DEFAULT_PROGRESS_DEADLINE

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
        validated like ``pkg/apis/autoscaling/annotation_validation.go``, with the rules of
        :mod:`knlocal.serving.autoscaler.config`.

        :param annotations: ``spec.template.metadata.annotations``.
        :param container_concurrency: ``spec.template.spec.containerConcurrency`` (0 = unlimited).
        :param defaults: the ``config-autoscaler`` settings.
        :param reachable: whether a route sends traffic to the revision.
        :return: the resolved settings.
        :raises ConfigError: naming the annotation, the value found and what was expected.
        """
        # Long only because it names each of the spec's fields once; the reading and checking
        # are in the helpers above.
        if container_concurrency < 0:
            raise invalid(
                "spec.template.spec.containerConcurrency",
                str(container_concurrency),
                "an integer >= 0",
            )
        found = _Annotations(annotations)
        _check_class(found, defaults)
        metric = _resolve_metric(found)
        target, total = _resolve_target(found, metric, container_concurrency, defaults)
        windows = _resolve_windows(found, defaults)
        tbc = found.read(
            "target-burst-capacity",
            parse_float,
            TARGET_BURST_CAPACITY,
            defaults.target_burst_capacity,
        )
        bounds = _resolve_bounds(found, defaults)
        return cls(
            metric=metric,
            target=target,
            total_target=total,
            stable_window=windows.stable_window,
            panic_window=windows.panic_window,
            panic_threshold=windows.panic_threshold,
            target_burst_capacity=tbc,
            min_scale=bounds.min_scale,
            max_scale=bounds.max_scale,
            initial_scale=bounds.initial_scale,
            activation_scale=bounds.activation_scale,
            scale_down_delay=found.read(
                "scale-down-delay",
                parse_duration,
                ANNOTATION_SCALE_DOWN_DELAY,
                defaults.scale_down_delay,
            ),
            scale_to_zero_grace_period=defaults.scale_to_zero_grace_period,
            scale_to_zero_pod_retention_period=found.read(
                "scale-to-zero-pod-retention-period",
                parse_duration,
                ANNOTATION_RETENTION,
                defaults.scale_to_zero_pod_retention_period,
            ),
            enable_scale_to_zero=defaults.enable_scale_to_zero,
            max_scale_up_rate=defaults.max_scale_up_rate,
            max_scale_down_rate=defaults.max_scale_down_rate,
            container_concurrency=container_concurrency,
            aggregation_algorithm=_resolve_algorithm(found),
            reachable=reachable,
            progress_deadline=_resolve_progress_deadline(annotations),
        )

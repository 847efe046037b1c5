"""The KPA decider: ``Scale()`` of ``pkg/autoscaler/scaling/autoscaler.go`` (semantics §1.5).

Fed by 1-second metric buckets (``pkg/autoscaler/metrics/collector.go``,
:mod:`knlocal.serving.autoscaler.metrics`), it recommends a number of instances and computes
the excess burst capacity. It knows nothing of bounds, scale to zero or the activator: those
are the scaler's (:mod:`knlocal.serving.autoscaler.scaler`). Pure and clock-injected.

Simplification 7 (inputs): Knative counts ready endpoints of the private service
(``podCounter``) and subtracts proxied requests from pod stats to avoid double counting
(``collector.go`` ``record``); here the caller passes ``ready`` and the already de-duplicated
totals.
"""

import math

from knlocal.serving.autoscaler.metrics import LinearBuckets, MaxTimeWindow, window_buckets
from knlocal.serving.autoscaler.spec import RevisionScaling

#: The two metrics a KPA revision may scale on (§1.3).
METRICS = ("concurrency", "rps")


def initial_excess_burst_capacity(spec: RevisionScaling) -> int:
    """The EBC before any data (§1.7, ``multiscaler.go`` ``createScaler``).

    :param spec: the revision's settings.
    :return: ``initialScale * TotalValue - TBC``; TBC -1 and 0 are fixed values.
    """
    tbc = spec.target_burst_capacity
    if tbc in (-1, 0):
        return int(tbc)
    return int(spec.initial_scale * spec.total_target - tbc)


class Decider:
    """One revision's decider: its metric windows, panic state and scale-down delay window."""

    def __init__(self, spec: RevisionScaling, now: float, ready: int, tick_interval: float) -> None:
        """Create the decider of a new revision (or of a restarted autoscaler).

        :param spec: the revision's settings.
        :param now: the creation time in seconds.
        :param ready: ready instances at creation; more than 1 (an autoscaler restart) starts
            in panic mode holding that scale, like ``newAutoscaler``.
        :param tick_interval: seconds between decisions (the delay window's granularity).
        """
        self.spec = spec
        # collector.go: stable and panic windows are separate bucket rings, each with its own
        # first-write time; concurrency and RPS are both kept.
        algorithm = spec.aggregation_algorithm
        self._stable: dict[str, LinearBuckets] = {
            metric: window_buckets(algorithm, spec.stable_window) for metric in METRICS
        }
        self._panic: dict[str, LinearBuckets] = {
            metric: window_buckets(algorithm, spec.panic_window) for metric in METRICS
        }
        # autoscaler.go newAutoscaler: with more than 1 ready instance start in panic mode so a
        # restart without metric history does not scale down.
        self._panic_time: float | None = now if ready > 1 else None
        self._max_panic_pods = max(0, ready)
        self._delay = (
            MaxTimeWindow(spec.scale_down_delay, tick_interval)
            if spec.scale_down_delay > 0
            else None
        )
        #: The last valid recommendation, before bounds; -1 until metrics arrive (§1.5).
        self.desired = -1
        #: The excess burst capacity of the last recommendation (§1.5, §1.7).
        self.excess_burst_capacity = initial_excess_burst_capacity(spec)

    @property
    def in_panic(self) -> bool:
        """Whether the decider is in panic mode (§1.5).

        :return: true while in panic.
        """
        return self._panic_time is not None

    def record(self, now: float, concurrency: float, requests: float) -> None:
        """Add one sample to the 1-s bucket containing ``now`` of every window.

        :param now: the sample time in seconds.
        :param concurrency: in-flight requests over all instances and the activator.
        :param requests: requests received in that second.
        """
        for windows in (self._stable, self._panic):
            windows["concurrency"].record(now, concurrency)
            windows["rps"].record(now, requests)

    def has_data(self, now: float) -> bool:
        """Tell whether the stable window holds data (``IsEmpty``; no data, no decision).

        :param now: the current time in seconds.
        :return: true if :meth:`scale` may run.
        """
        return not self._stable[self.spec.metric].is_empty(now)

    def scale(self, now: float, ready: int) -> None:
        """Run ``Scale()`` and store its recommendation and EBC.

        :param now: the current time in seconds.
        :param ready: instances ready to serve now.
        """
        s = self.spec
        observed_stable = self._stable[s.metric].average(now)
        observed_panic = self._panic[s.metric].average(now)
        # §1.5: 0 ready instances count as 1.
        ready_count = max(1.0, float(ready))
        dspc = math.ceil(observed_stable / s.target)
        dppc = math.ceil(observed_panic / s.target)
        stable_pods, panic_pods = self._rate_limited(ready_count, dspc, dppc)

        # §1.5: enter or stay in panic while over the threshold; leave only after a whole
        # stable window under it, so the surge has reached the stable average.
        if dppc / ready_count >= s.panic_threshold:
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

        self.desired = desired
        self.excess_burst_capacity = self._excess_burst_capacity(ready, observed_panic)

    def _rate_limited(self, ready_count: float, dspc: int, dppc: int) -> tuple[int, int]:
        """Clamp the stable and panic pod counts to the scale rates and the activation scale.

        :param ready_count: ready instances, at least 1.
        :param dspc: desired stable pod count, ``ceil(observed stable / target)``.
        :param dppc: desired panic pod count, ``ceil(observed panic / target)``.
        :return: ``(stable pods, panic pods)``.
        """
        s = self.spec
        # §1.5: at least one more instance even with a tiny rate; no rate limit on scaling
        # down an unreachable revision.
        max_up = math.ceil(s.max_scale_up_rate * ready_count)
        max_down = math.floor(ready_count / s.max_scale_down_rate) if s.reachable else 0
        stable_pods = min(max(dspc, max_down), max_up)
        panic_pods = min(max(dppc, max_down), max_up)
        # §1.5: activation scale is the smallest non-zero count.
        if s.activation_scale > 1:
            if dspc > 0 and s.activation_scale > stable_pods:
                stable_pods = s.activation_scale
            if dppc > 0 and s.activation_scale > panic_pods:
                panic_pods = s.activation_scale
        return stable_pods, panic_pods

    def _excess_burst_capacity(self, ready: int, observed_panic: float) -> int:
        """EBC = floor(ready * TotalValue - TBC - observed panic); TBC 0 and -1 are fixed (§1.5).

        :param ready: instances ready to serve now.
        :param observed_panic: the panic window's average.
        :return: the excess burst capacity.
        """
        s = self.spec
        if s.target_burst_capacity == 0:
            return 0
        if s.target_burst_capacity > 0:
            return math.floor(ready * s.total_target - s.target_burst_capacity - observed_panic)
        return -1

"""The KPA scaler and PodAutoscaler reconcile: what one revision's decisions come to.

Knative: ``scale()`` and ``handleScaleToZero()`` in ``pkg/reconciler/autoscaling/kpa/scaler.go``
(knative-semantics.md §1.6: min/max/initial bounds and the gating of scale to zero), and the
PodAutoscaler state machine of ``pkg/reconciler/autoscaling/kpa/kpa.go`` (``ReconcileKind``,
``computeActiveCondition``): Active / Activating / Inactive, and the ServerlessService mode,
Serve or Proxy (activator in path, §1.7). :class:`KPA` drives the
:class:`~knlocal.serving.autoscaler.decider.Decider` and applies its recommendation.

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
7. Inputs (see also :mod:`~knlocal.serving.autoscaler.decider`). ``ServiceName != ""`` (needed
   to mark the scale target initialized) is taken as true. The Deployment's replica count is
   taken to be whatever the last applied decision was.
8. Activator at zero. ``kpa.go`` ``ReconcileKind`` chooses Proxy from ``want`` and the EBC;
   for ``initial-scale: 0`` its first reconcile still says Serve (``want`` is -1 while the
   revision is Activating) and only the next one says Proxy. Here
   :attr:`ScaleDecision.activator_in_path` is also true whenever the applied scale is 0
   (§1.7 "at scale 0 it is always Proxy"), because nothing else could take the request.
9. Not modelled: the number of activators (``kpa.go`` ``computeNumActivators``) and
   configuration updates of a running autoscaler (``Update``); build a new :class:`KPA`
   instead. Autoscaler restart with several ready instances (``newAutoscaler`` starts in panic
   mode) is supported through the ``ready`` argument of :class:`KPA`.

(Simplifications 4, 5 and 6 concern the metric windows, the spec and Go's number syntax; they
are described in :mod:`~knlocal.serving.autoscaler.metrics`, :mod:`~knlocal.serving.autoscaler.spec`
and :mod:`~knlocal.serving.autoscaler.goparse`.)
"""

from dataclasses import dataclass
from typing import ClassVar, Literal

from knlocal.serving.autoscaler.decider import Decider
from knlocal.serving.autoscaler.spec import RevisionScaling

# pkg/reconciler/autoscaling/kpa/scaler.go: activationTimeoutBuffer, added to the progress
# deadline before an activation that never gets ready instances is given up (scale to 0).
ACTIVATION_TIMEOUT_BUFFER = 30.0

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


@dataclass(frozen=True)
class _Condition:
    """The PodAutoscaler ``Active`` condition and when it last changed."""

    state: PAState
    since: float


class KPA:
    """One revision's autoscaler: feed it 1-second metric samples, ask it for a decision every tick.

    See the package docstring for how to drive it and this module's for the simplifications.
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
        self._decider = Decider(scaling, now, ready, self.TICK_INTERVAL)
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
        self._decider.record(now, concurrency, requests)

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
        if self._decider.has_data(now):
            self._decider.scale(now, ready)
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
            panic=self._decider.in_panic,
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
        # scaler.go applyBounds: the lower bound wins over the upper one.
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
            if elapsed > s.progress_deadline + ACTIVATION_TIMEOUT_BUFFER:
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

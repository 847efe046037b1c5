"""Helpers of the autoscaler tests: resolve settings from short names, play scenarios.

The scenario runner feeds a :class:`KPA` one sample a second and checks the decisions it
makes (knative-semantics.md §1.5-§1.7).
"""

from collections.abc import Mapping
from dataclasses import dataclass

from knlocal.serving.autoscaler.config import AutoscalerDefaults
from knlocal.serving.autoscaler.scaler import KPA
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

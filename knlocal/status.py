"""The runtime's status: one typed snapshot that every view reads.

The admin API serves it as JSON (`/status`), `knlocal status` prints it, `/metrics` exports it,
and `knlocal burst` samples it. :meth:`StatusSnapshot.to_json` and
:meth:`StatusSnapshot.from_json` are the two sides of the admin API's JSON, kept in one place.
"""

import statistics
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from knlocal.runtime import Runtime


@dataclass(frozen=True)
class ServiceStatus:
    """A Knative Service's revision: instances, autoscaler, requests, cold starts."""

    revision: str
    ready: int
    starting: int
    #: The instances the autoscaler wants.
    desired: int
    in_flight: int
    requests_per_second: float
    requests: int
    cold_starts: int
    cold_start_ms_p50: float | None
    cold_start_ms_p99: float | None
    cold_start_ms_last: float | None
    panic: bool
    responses_503: int
    responses_504: int
    #: The instances' process ids (each leads its process group), e.g. to kill one in a fault
    #: test, as a pod would die.
    pids: tuple[int, ...] = ()


@dataclass(frozen=True)
class TriggerStatus:
    """A Trigger's dispatcher: what it received and what became of it."""

    received: int
    filtered_out: int
    delivered: int
    retried: int
    dead_lettered: int
    dropped: int
    in_flight: int
    #: Events the Broker accepted that the Trigger has not finished; None when unknown.
    backlog: int | None


@dataclass(frozen=True)
class StatusSnapshot:
    """Every Broker, Knative Service and Trigger of a running runtime, at one moment."""

    #: Each Broker's ingress URL, by `<namespace>/<name>`.
    brokers: Mapping[str, str]
    broker_backend: str
    store: str
    services: Mapping[str, ServiceStatus]
    triggers: Mapping[str, TriggerStatus]
    #: Injected faults per Trigger or Broker and kind (`knlocal run --faults`), else None.
    faults: Mapping[str, Mapping[str, int]] | None = None
    #: Events each Broker accepted since the runtime started, by `<namespace>/<name>`.
    accepted: Mapping[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The admin API's `/status` body (`faults` only when a fault plan runs)."""
        body = {
            "brokers": dict(self.brokers),
            "broker_backend": self.broker_backend,
            "store": self.store,
            "services": {
                name: {**asdict(s), "pids": list(s.pids)} for name, s in self.services.items()
            },
            "triggers": {name: asdict(t) for name, t in self.triggers.items()},
            "accepted": dict(self.accepted),
        }
        if self.faults is not None:
            body["faults"] = {name: dict(kinds) for name, kinds in self.faults.items()}
        return body

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> "StatusSnapshot":
        """Read a `/status` body (as :meth:`to_json` writes it)."""
        services = {
            name: ServiceStatus(**{**s, "pids": tuple(s.get("pids", ()))})
            for name, s in body["services"].items()
        }
        return cls(
            brokers=body["brokers"],
            broker_backend=body["broker_backend"],
            store=body["store"],
            services=services,
            triggers={name: TriggerStatus(**t) for name, t in body["triggers"].items()},
            faults=body.get("faults"),
            accepted=body.get("accepted", {}),
        )


def snapshot(runtime: "Runtime") -> StatusSnapshot:
    """The status of `runtime` now."""
    services = {}
    for name, revision in runtime.revisions.items():
        stats = revision.stats
        cold = stats.cold_start_seconds
        services[name] = ServiceStatus(
            revision=revision.service.revision,
            ready=revision.ready,
            starting=revision.starting,
            desired=stats.desired,
            in_flight=revision.in_flight,
            requests_per_second=round(stats.requests_last_second, 1),
            requests=stats.requests,
            cold_starts=stats.cold_starts,
            cold_start_ms_p50=round(statistics.median(cold) * 1000, 1) if cold else None,
            cold_start_ms_p99=_p99_ms(cold),
            cold_start_ms_last=round(cold[-1] * 1000, 1) if cold else None,
            panic=stats.panic,
            responses_503=stats.responses_503,
            responses_504=stats.responses_504,
            pids=tuple(instance.process.pid for instance in revision.instances),
        )
    broker_of = {
        t.key: runtime.brokers.get((t.namespace, t.broker)) for t in runtime.system.triggers
    }
    triggers = {}
    for dispatcher in runtime.dispatchers:
        s = dispatcher.stats
        broker = broker_of.get(dispatcher.name)
        # Every event the broker accepted reaches every trigger's consumer group; the ones the
        # trigger has not finished with are queued or in flight. Counted since the runtime
        # started (a Kafka consumer group may also resume older events: never below 0).
        # Events the backend filtered out before the dispatcher saw them (Kafka) count as both.
        prefiltered = dispatcher.subscription.prefiltered
        finished = s.filtered_out + prefiltered + s.delivered + s.dead_lettered + s.dropped
        triggers[dispatcher.name] = TriggerStatus(
            received=s.received + prefiltered,
            filtered_out=s.filtered_out + prefiltered,
            delivered=s.delivered,
            retried=s.retried,
            dead_lettered=s.dead_lettered,
            dropped=s.dropped,
            in_flight=s.in_flight,
            backlog=max(0, broker.accepted - finished) if broker is not None else None,
        )
    return StatusSnapshot(
        brokers=runtime.broker_urls,
        broker_backend=runtime.settings.broker,
        store=runtime.settings.store,
        services=services,
        triggers=triggers,
        faults=runtime.faults.snapshot() if runtime.faults is not None else None,
        accepted={f"{ns}/{name}": b.accepted for (ns, name), b in runtime.brokers.items()},
    )


def _p99_ms(seconds: list[float]) -> float | None:
    if not seconds:
        return None
    if len(seconds) == 1:
        return round(seconds[0] * 1000, 1)
    return round(statistics.quantiles(seconds, n=100, method="inclusive")[98] * 1000, 1)

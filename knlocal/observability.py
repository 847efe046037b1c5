"""The runtime's admin endpoint: `/status` (JSON, what `knlocal status` shows), `/metrics`, and
`POST /pingsources/<namespace>/<name>` (fire a PingSource now; an optional body replaces its data).
"""

import dataclasses
import json
import statistics
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from knlocal.edge import json_error
from knlocal.sources import ping

if TYPE_CHECKING:
    from knlocal.runtime import Runtime


def status(runtime: "Runtime") -> dict[str, Any]:
    """A snapshot of every service and trigger."""
    services = {}
    for name, revision in runtime.revisions.items():
        cold = revision.stats.cold_start_seconds
        services[name] = {
            "revision": revision.service.revision,
            "ready": revision.ready,
            "starting": revision.starting,
            "desired": revision.stats.desired,
            "in_flight": revision.in_flight,
            "requests_per_second": round(revision.stats.requests_last_second, 1),
            "requests": revision.stats.requests,
            "cold_starts": revision.stats.cold_starts,
            "cold_start_ms_p50": round(statistics.median(cold) * 1000, 1) if cold else None,
            "cold_start_ms_p99": _p99_ms(cold),
            "cold_start_ms_last": round(cold[-1] * 1000, 1) if cold else None,
            "panic": revision.stats.panic,
            "responses_503": revision.stats.responses_503,
            "responses_504": revision.stats.responses_504,
            # The instances' process ids (each leads its process group), e.g. to kill one in a
            # fault test, as a pod would die.
            "pids": [instance.process.pid for instance in revision.instances],
        }
    triggers = {}
    broker_of = {
        f"{t.namespace}/{t.name}": runtime.brokers.get((t.namespace, t.broker))
        for t in runtime.system.triggers
    }
    for dispatcher in runtime.dispatchers:
        s = dispatcher.stats
        broker = broker_of.get(dispatcher.name)
        # Every event the broker accepted reaches every trigger's consumer group; the ones the
        # trigger has not finished with are queued or in flight. Counted since the runtime
        # started (a Kafka consumer group may also resume older events: never below 0).
        finished = s.filtered_out + s.delivered + s.dead_lettered + s.dropped
        backlog = max(0, broker.accepted - finished) if broker is not None else None
        triggers[dispatcher.name] = {
            "received": s.received,
            "filtered_out": s.filtered_out,
            "delivered": s.delivered,
            "retried": s.retried,
            "dead_lettered": s.dead_lettered,
            "dropped": s.dropped,
            "in_flight": s.in_flight,
            "backlog": backlog,
        }
    return {
        "brokers": runtime.broker_urls,
        "broker_backend": runtime.settings.broker,
        "store": runtime.settings.store,
        "services": services,
        "triggers": triggers,
        # Injected faults per Trigger or Broker and kind (knlocal run --faults), else absent.
        **({"faults": runtime.faults.snapshot()} if runtime.faults is not None else {}),
    }


def _p99_ms(seconds: list[float]) -> float | None:
    if not seconds:
        return None
    if len(seconds) == 1:
        return round(seconds[0] * 1000, 1)
    return round(statistics.quantiles(seconds, n=100, method="inclusive")[98] * 1000, 1)


class _Collector:
    def __init__(self, runtime: "Runtime") -> None:
        self.runtime = runtime

    def collect(self) -> Any:
        snap = status(self.runtime)
        gauges = {
            "ready": "Ready instances",
            "desired": "Instances the autoscaler wants",
            "in_flight": "Requests in the revision (held or served)",
        }
        for key, help_text in gauges.items():
            family = GaugeMetricFamily(f"knlocal_service_{key}", help_text, labels=["service"])
            for name, svc in snap["services"].items():
                family.add_metric([name], svc[key])
            yield family
        panic = GaugeMetricFamily("knlocal_service_panic", "1 in panic mode", labels=["service"])
        for name, svc in snap["services"].items():
            panic.add_metric([name], 1 if svc["panic"] else 0)
        yield panic
        for key in ("requests", "cold_starts", "responses_503", "responses_504"):
            counter = CounterMetricFamily(
                f"knlocal_service_{key}", key.replace("_", " "), labels=["service"]
            )
            for name, svc in snap["services"].items():
                counter.add_metric([name], svc[key])
            yield counter
        cold = GaugeMetricFamily(
            "knlocal_service_cold_start_seconds_last",
            "Duration of the last cold start",
            labels=["service"],
        )
        quantiles = GaugeMetricFamily(
            "knlocal_service_cold_start_seconds",
            "Cold start (process start to first response served), by quantile",
            labels=["service", "quantile"],
        )
        for name, revision in self.runtime.revisions.items():
            if revision.stats.cold_start_seconds:
                cold.add_metric([name], revision.stats.cold_start_seconds[-1])
            for key, quantile in (("cold_start_ms_p50", "0.5"), ("cold_start_ms_p99", "0.99")):
                value = snap["services"][name][key]
                if value is not None:
                    quantiles.add_metric([name, quantile], value / 1000)
        yield cold
        yield quantiles
        for key in ("received", "delivered", "retried", "dead_lettered", "dropped"):
            counter = CounterMetricFamily(
                f"knlocal_trigger_{key}", f"Events {key}", labels=["trigger"]
            )
            for name, trig in snap["triggers"].items():
                counter.add_metric([name], trig[key])
            yield counter
        in_flight = GaugeMetricFamily(
            "knlocal_trigger_in_flight", "Deliveries in progress", labels=["trigger"]
        )
        backlog = GaugeMetricFamily(
            "knlocal_trigger_backlog",
            "Events accepted by the broker that the trigger has not finished (queued or in flight)",
            labels=["trigger"],
        )
        for name, trig in snap["triggers"].items():
            in_flight.add_metric([name], trig["in_flight"])
            if trig["backlog"] is not None:
                backlog.add_metric([name], trig["backlog"])
        yield in_flight
        yield backlog
        faults = CounterMetricFamily(
            "knlocal_faults_injected",
            "Faults injected by the fault plan (knlocal run --faults), per Trigger or Broker",
            labels=["target", "kind"],
        )
        for name, kinds in snap.get("faults", {}).items():
            for kind, count in kinds.items():
                faults.add_metric([name, kind], count)
        yield faults


def metrics_app(runtime: "Runtime") -> web.Application:
    """`/status` and `/metrics` for `runtime`."""
    registry = CollectorRegistry()
    registry.register(_Collector(runtime))

    async def get_status(_: web.Request) -> web.Response:
        return web.Response(text=json.dumps(status(runtime)), content_type="application/json")

    async def get_metrics(_: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(registry), headers={"Content-Type": "text/plain; version=0.0.4"}
        )

    async def tick_ping_source(request: web.Request) -> web.Response:
        # Not Knative's: a local tool to fire a PingSource now instead of at its next tick.
        key = (request.match_info["namespace"], request.match_info["name"])
        if key not in runtime.pings:
            return json_error(404, f"no PingSource {key[1]!r} in namespace {key[0]!r}")
        source, target = runtime.pings[key]
        if body := await request.read():
            source = dataclasses.replace(source, body=body)
        headers, event_body = source.event(datetime.now(UTC))
        reply = await target.send(headers, event_body, ping.SEND_TIMEOUT_SECONDS)
        if reply.status is None:
            return json_error(502, f"{target.url} did not answer: {reply.error}")
        kept = {k: v for k, v in reply.headers.items() if k.lower() == "content-type"}
        return web.Response(status=reply.status, body=reply.body, headers=kept)

    app = web.Application()
    app.router.add_get("/status", get_status)
    app.router.add_post("/pingsources/{namespace}/{name}", tick_ping_source)
    app.router.add_get("/metrics", get_metrics)
    return app

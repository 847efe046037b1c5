"""The runtime's admin endpoint: `/status` (JSON, what `knlocal status` shows), `/metrics`, and
`POST /pingsources/<namespace>/<name>` (fire a PingSource now; an optional body replaces its data).
"""

import dataclasses
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from knlocal.edge import json_error
from knlocal.sources import ping
from knlocal.status import StatusSnapshot, snapshot

if TYPE_CHECKING:
    from knlocal.runtime import Runtime


class _Collector:
    def __init__(self, runtime: "Runtime") -> None:
        self.runtime = runtime

    def collect(self) -> Any:
        yield from metric_families(snapshot(self.runtime))


def metric_families(snap: StatusSnapshot) -> Any:
    """The Prometheus metric families of a status snapshot, as `/metrics` serves them."""
    yield from _service_metrics(snap)
    yield from _trigger_metrics(snap)


def _service_metrics(snap: StatusSnapshot) -> Any:
    """The gauges and counters of each Knative Service."""
    gauges = {
        "ready": "Ready instances",
        "desired": "Instances the autoscaler wants",
        "in_flight": "Requests in the revision (held or served)",
    }
    for key, help_text in gauges.items():
        family = GaugeMetricFamily(f"knlocal_service_{key}", help_text, labels=["service"])
        for name, svc in snap.services.items():
            family.add_metric([name], getattr(svc, key))
        yield family
    panic = GaugeMetricFamily("knlocal_service_panic", "1 in panic mode", labels=["service"])
    for name, svc in snap.services.items():
        panic.add_metric([name], 1 if svc.panic else 0)
    yield panic
    for key in ("requests", "cold_starts", "responses_503", "responses_504"):
        counter = CounterMetricFamily(
            f"knlocal_service_{key}", key.replace("_", " "), labels=["service"]
        )
        for name, svc in snap.services.items():
            counter.add_metric([name], getattr(svc, key))
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
    for name, svc in snap.services.items():
        if svc.cold_start_ms_last is not None:
            cold.add_metric([name], svc.cold_start_ms_last / 1000)
        for value, quantile in (
            (svc.cold_start_ms_p50, "0.5"),
            (svc.cold_start_ms_p99, "0.99"),
        ):
            if value is not None:
                quantiles.add_metric([name, quantile], value / 1000)
    yield cold
    yield quantiles


def _trigger_metrics(snap: StatusSnapshot) -> Any:
    """The counters and gauges of each Trigger, and the faults injected."""
    for key in ("received", "delivered", "retried", "dead_lettered", "dropped"):
        counter = CounterMetricFamily(f"knlocal_trigger_{key}", f"Events {key}", labels=["trigger"])
        for name, trig in snap.triggers.items():
            counter.add_metric([name], getattr(trig, key))
        yield counter
    in_flight = GaugeMetricFamily(
        "knlocal_trigger_in_flight", "Deliveries in progress", labels=["trigger"]
    )
    backlog = GaugeMetricFamily(
        "knlocal_trigger_backlog",
        "Events accepted by the broker that the trigger has not finished (queued or in flight)",
        labels=["trigger"],
    )
    for name, trig in snap.triggers.items():
        in_flight.add_metric([name], trig.in_flight)
        if trig.backlog is not None:
            backlog.add_metric([name], trig.backlog)
    yield in_flight
    yield backlog
    faults = CounterMetricFamily(
        "knlocal_faults_injected",
        "Faults injected by the fault plan (knlocal run --faults), per Trigger or Broker",
        labels=["target", "kind"],
    )
    for name, kinds in (snap.faults or {}).items():
        for kind, count in kinds.items():
            faults.add_metric([name, kind], count)
    yield faults


def metrics_app(runtime: "Runtime") -> web.Application:
    """`/status` and `/metrics` for `runtime`."""
    registry = CollectorRegistry()
    registry.register(_Collector(runtime))

    async def get_status(_: web.Request) -> web.Response:
        return web.Response(
            text=json.dumps(snapshot(runtime).to_json()), content_type="application/json"
        )

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
        headers, event_body = ping.make_event(source, datetime.now(UTC))
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

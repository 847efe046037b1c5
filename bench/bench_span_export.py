"""CPU per exported span, leantrace's spans and exporter against OpenTelemetry's, in one run.

`python -m bench.bench_span_export` (needs `make zipkin`). Two processes' shapes:

- the runtime, four services (ingress, activator, broker-ingress, broker-filter): its own
  `tracing.configure` (leantrace's spans, one BatchSpanProcessor, leantrace's Zipkin exporter)
  or, as the baseline, what it did before: the SDK's spans, one processor and OpenTelemetry's
  ZipkinExporter per service;
- a function instance, one service: functions/tracing.py's own `configure` (leantrace's spans
  and exporter), or the SDK's spans and OpenTelemetry's ZipkinExporter (what it built before).

Each round makes the same spans (a delivery attempt's five attributes) round-robin over the
services, pausing as a live process does so the export threads run, flushes, and reads
`time.process_time` (every thread of the process: making, batching, encoding, sending). The
kinds alternate within one run (the machine is shared); the result goes to
bench/results/span-export-<date-time>.json with the command and the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opentelemetry.exporter.zipkin.json import ZipkinExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind

import leantrace
from functions import tracing as function_tracing
from knlocal import tracing
from knuser_tools.burst import machine_info

RESULTS = Path(__file__).resolve().parent / "results"
ATTRIBUTES = {
    "http.request.method": "POST",
    "url.full": "http://127.0.0.1:8080/",
    "knative.delivery.attempt": 1,
    "cloudevents.event_id": "5b0e3c1e-8a57-4d0f-9d3c-2f6a1c0e7b11",
    "cloudevents.event_type": "user.created",
}


#: What each kind measures: the runtime's four services or one function's, and the exporter.
KINDS = ("knlocal", "knlocal_opentelemetry", "function", "function_opentelemetry")


def _tracers(how: str, url: str) -> tuple[list[Any], Callable[[], None]]:
    """The tracers of the services `how` names, and what flushes and stops them."""
    environ = {"OTEL_TRACES_EXPORTER": "zipkin", "OTEL_EXPORTER_ZIPKIN_ENDPOINT": url}
    if how == "knlocal":
        tracing.configure(environ)
        return [tracing._tracers[service] for service in tracing.SERVICES], tracing.shutdown
    if how == "function":
        function_tracing.configure("user-create", environ)
        return [function_tracing._tracer], function_tracing.shutdown
    services = tracing.SERVICES if how.startswith("knlocal") else ("user-create",)
    providers = []
    for service in services:
        provider = TracerProvider(resource=Resource({"service.name": service}))
        provider.add_span_processor(BatchSpanProcessor(ZipkinExporter(endpoint=url)))
        providers.append(provider)

    def stop() -> None:
        for provider in providers:
            provider.shutdown()

    return [provider.get_tracer("knlocal") for provider in providers], stop


def cpu_us_per_span(how: str, spans: int, url: str) -> float:
    """CPU µs of one span, made, batched, encoded and sent, exported as `how` says."""
    tracers, stop = _tracers(how, url)
    start = time.process_time()
    for number in range(spans):
        span = tracers[number % len(tracers)].start_span(
            "POST", kind=SpanKind.CLIENT, attributes=ATTRIBUTES
        )
        span.end()
        if number % 400 == 0:
            time.sleep(0.05)
    stop()  # exports what is left: part of the cost
    return (time.process_time() - start) / spans * 1e6


def main(argv: list[str] | None = None) -> int:
    """Alternate the two exports, print and record the figures."""
    parser = argparse.ArgumentParser(prog="bench.bench_span_export", description=__doc__)
    parser.add_argument("--rounds", type=int, default=5, help="rounds of each (default 5)")
    parser.add_argument("--spans", type=int, default=8000, help="spans a round (default 8000)")
    parser.add_argument("--out", default=str(RESULTS), help="results folder")
    args = parser.parse_args(argv)
    url = leantrace.ZIPKIN_SPANS_URL
    load_before = os.getloadavg()
    figures: dict[str, list[float]] = {how: [] for how in KINDS}
    for _ in range(args.rounds):
        for how in KINDS:
            figures[how].append(round(cpu_us_per_span(how, args.spans, url), 1))
    medians = {how: statistics.median(values) for how, values in figures.items()}
    result: dict[str, Any] = {
        "what": "CPU µs per exported span: the runtime's four services in one process, and one "
        "function instance's service; leantrace's spans and exporter against the SDK's",
        "command": "python -m bench.bench_span_export " + " ".join(argv or sys.argv[1:]),
        "machine": machine_info(load_before, os.getloadavg()),
        "zipkin": url,
        "cpu_us_per_span_median": medians,
        "over_baseline": {
            how: round(medians[how] / medians[f"{how}_opentelemetry"], 3)
            for how in ("knlocal", "function")
        },
        "rounds": figures,
    }
    out = Path(args.out)
    out.mkdir(exist_ok=True)
    path = out / f"span-export-{datetime.now(UTC):%Y-%m-%dT%H%M%S}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("cpu_us_per_span_median", "over_baseline")}))
    print(f"→ {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

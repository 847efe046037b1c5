"""Tracing's cost per hop, in one process: the CPU of the hooks themselves (issue 12).

`python -m bench.bench_tracing_hooks`. The full bench (bench/bench_tracing.py) measures the
whole system, which swings by ±15 % from run to run on a loaded shared machine; this one times
the hooks of one broker hop (knlocal/tracing.py: a Trigger's process span, its delivery attempt,
the activator finding an instance ready, the reply's publish) and of one function request
(functions/tracing.py: its SERVER span, two store calls, one send) with `time.process_time`,
their spans ended into an exporter that drops them: span making and context, not the encoding
(bench/bench_span_export.py has it) nor the event's decoding (done once, outside the timing).
In the running runtime the same hooks cost two to three times more (their code runs off the
CPU's caches there): compare versions with this, and the system with bench_tracing.
"""

import json
import time
from collections.abc import Callable, Sequence

from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

import functions.tracing as ftracing
import knlocal.tracing as ktracing
from knlocal.eventing.events import decode_http

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
CE_HEADERS = {
    "ce-specversion": "1.0",
    "ce-id": "1",
    "ce-type": "user.created",
    "ce-source": "bench",
    "ce-operationid": "op-1",
    "ce-traceparent": PARENT,
    "content-type": "application/json",
}

EVENT = decode_http(CE_HEADERS, b"{}")


class Dropped(SpanExporter):
    """Ends spans nowhere: what is timed is their making."""

    def export(self, spans: Sequence[object]) -> SpanExportResult:  # type: ignore[override]
        return SpanExportResult.SUCCESS


class _Table:
    def get(self, record_id: str) -> None:
        return None


def broker_hop() -> None:
    """One Trigger delivery and the reply's publish, as the runtime's edges call the hooks."""
    event = EVENT
    with ktracing.consume_span("default/user-create", "default", event, time.time_ns()):
        with ktracing.attempt_span("http://127.0.0.1:1/", 1, 0.0) as span:
            ktracing.inject({"content-type": "application/json"})
            with ktracing.activator_span("user-create") as activator:
                activator.held(None)
                ktracing.inject({"content-type": "application/json"})
            ktracing.attempt_result(span, 200, "", False)
        with (
            ktracing.incoming({"traceparent": PARENT}),
            ktracing.publish_span("default", "inmemory", event),
        ):
            pass


def function_request() -> None:
    """One event function's request: its SERVER span, two store calls, one send."""
    event = EVENT
    table = ftracing.TracedTable(_Table(), "operations", "aws.dynamodb")  # type: ignore[arg-type]
    with ftracing.server_span("user-create", "POST", "/", {}, event) as span:
        table.get("a")
        table.get("b")
        with ftracing.send_span("http://127.0.0.1:1/"):
            ftracing.outgoing_headers()
        ftracing.set_status(span, 202)


def cpu_us(work: Callable[[], None], times: int) -> float:
    """CPU microseconds of one `work()`, the best of three timings of `times` calls."""
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        for _ in range(times):
            work()
        best = min(best, time.process_time() - start)
    return best / times * 1e6


def main() -> int:
    """Print the CPU µs of one broker hop and of one function request, traced."""
    ktracing.span_exporter = lambda name, environ: Dropped()
    ftracing.span_exporter = lambda name, environ: Dropped()
    ktracing.configure({"OTEL_TRACES_EXPORTER": "zipkin", "OTEL_TRACES_SAMPLER": "always_on"})
    ftracing.configure("user-create", {"OTEL_TRACES_EXPORTER": "zipkin"})
    figures = {
        "broker_hop_us": round(cpu_us(broker_hop, 2000), 1),
        "function_request_us": round(cpu_us(function_request, 2000), 1),
    }
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""leantrace's Zipkin exporter writes what OpenTelemetry's Zipkin encoder writes, per span.

The reference is `opentelemetry-exporter-zipkin-json`'s JsonV2Encoder given each span's own
service; the runtime's and the functions' traces in a real Zipkin server are tested in
tests/knlocal/test_tracing.py.
"""

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest
from opentelemetry.exporter.zipkin.json.v2 import JsonV2Encoder
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context

import leantrace
from functions import tracing as function_tracing
from functions.errors import ConfigError as FunctionConfigError
from knlocal import tracing
from knlocal.errors import ConfigError
from leantrace.zipkin import ZipkinJsonExporter, _Resources, encode


def _spans() -> list[ReadableSpan]:
    """Spans of two services, of every kind, with every shape of attribute, event and status."""
    memory = InMemorySpanExporter()
    for service in ("ingress", "broker-filter"):
        provider = TracerProvider(
            resource=Resource({"service.name": service}),
            span_limits=SpanLimits(max_attributes=6, max_events=2),
        )
        provider.add_span_processor(SimpleSpanProcessor(memory))
        tracer = provider.get_tracer("knlocal", "1.2")
        root = tracer.start_span("root", kind=SpanKind.SERVER, attributes={"url.path": "/users"})
        parent = set_span_in_context(root)
        for kind in SpanKind:
            child = tracer.start_span(
                f"{kind.name.lower()} child",
                parent,
                kind=kind,
                attributes={
                    "text": 'ä"quoted"',
                    "flag": True,
                    "count": 3,
                    "ratio": 0.25,
                    "list": [1, 2],
                    "flags": [True, False],
                },
            )
            child.add_event("cold start", {"knative.cold_start.ms": 12.5, "b": "x"})
            child.end()
        failed = tracer.start_span("failed", parent, attributes={"a": 1, "b": 2})
        for name in ("c", "d", "e", "f", "g"):
            failed.set_attribute(name, name)  # past the limit: dropped, and counted
        for number in range(3):
            failed.add_event(f"event {number}")
        failed.set_status(Status(StatusCode.ERROR, "HTTP 503"))
        failed.end()
        fine = tracer.start_span("fine", parent)
        fine.set_status(Status(StatusCode.OK))
        fine.end()
        root.end()
    return list(memory.get_finished_spans())


def _reference(span: ReadableSpan) -> dict[str, Any]:
    assert span.resource is not None
    endpoint = {"serviceName": span.resource.attributes["service.name"]}
    reference = JsonV2Encoder()._encode_span(span, endpoint)  # type: ignore[arg-type]
    encoded: dict[str, Any] = json.loads(json.dumps(reference))
    return encoded


def test_each_span_is_encoded_as_opentelemetrys_zipkin_encoder_does() -> None:
    spans = _spans()
    assert len(spans) == 2 * (len(SpanKind) + 3)
    resources = _Resources()
    for span in spans:
        assert json.loads(json.dumps(encode(span, resources))) == _reference(span), span.name
    failed = next(span for span in spans if span.name == "failed")
    tags = encode(failed, resources)["tags"]
    assert tags["otel.dropped_attributes_count"] == "1"
    assert tags["otel.dropped_events_count"] == "1"
    assert tags["error"] == "HTTP 503"


def test_one_batch_names_each_span_after_its_own_service() -> None:
    resources = _Resources()
    services = {encode(span, resources)["localEndpoint"]["serviceName"] for span in _spans()}
    assert services == {"ingress", "broker-filter"}


class _Zipkin(BaseHTTPRequestHandler):
    status = 202
    bodies: ClassVar[list[tuple[str, bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).bodies.append((self.headers["Content-Type"], body))
        self.send_response(self.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[tuple[str, type[_Zipkin]]]:
    handler = type("Handler", (_Zipkin,), {"bodies": [], "status": 202})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/api/v2/spans", handler
    server.shutdown()
    server.server_close()


def test_a_batch_is_posted_as_json(collector: tuple[str, type[_Zipkin]]) -> None:
    url, handler = collector
    spans = _spans()
    exporter = ZipkinJsonExporter(url)
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    [(content_type, body)] = handler.bodies
    assert content_type == "application/json"
    assert [span["name"] for span in json.loads(body)] == [span.name for span in spans]
    exporter.shutdown()


def test_a_refused_or_unreachable_batch_fails_and_says_so(
    collector: tuple[str, type[_Zipkin]], caplog: pytest.LogCaptureFixture
) -> None:
    url, handler = collector
    handler.status = 400
    assert ZipkinJsonExporter(url).export(_spans()) is SpanExportResult.FAILURE
    assert "refused 16 spans: 400" in caplog.text
    nowhere = ZipkinJsonExporter("http://127.0.0.1:1/api/v2/spans", timeout_seconds=2)
    assert nowhere.export(_spans()) is SpanExportResult.FAILURE
    assert "16 spans not exported to http://127.0.0.1:1/api/v2/spans" in caplog.text


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"OTEL_TRACES_EXPORTER": "jaeger"}, "OTEL_TRACES_EXPORTER: expected zipkin, otlp"),
        (
            {"OTEL_TRACES_EXPORTER": "zipkin", "OTEL_EXPORTER_ZIPKIN_TIMEOUT": "soon"},
            "OTEL_EXPORTER_ZIPKIN_TIMEOUT: expected seconds; found 'soon'",
        ),
    ],
)
def test_a_setting_no_exporter_takes_is_refused_saying_what_was_expected(
    environ: dict[str, str], expected: str
) -> None:
    name = leantrace.exporter_name(environ)
    assert name is not None
    with pytest.raises(leantrace.ConfigError, match=expected):
        leantrace.span_exporter(name, environ)
    # Each user of it says so with its own package's error (what its command reports).
    with pytest.raises(ConfigError, match=expected):
        tracing.span_exporter(name, environ)
    with pytest.raises(FunctionConfigError, match=expected):
        function_tracing.span_exporter(name, environ)

"""Tracing of the functions: W3C Trace Context on every request and event, OpenTelemetry spans.

The trace context is carried whether or not spans are recorded. A request continues its
`traceparent` header, else its event's `traceparent` extension (the CloudEvents Distributed
Tracing extension); a public-API request without either starts a trace (`POST /users` is where
an operation's trace begins). Every event built while the request is served
(:func:`functions.ce.new_event`) carries the context as its `traceparent`/`tracestate`, and a
public-API answer returns it as the `traceparent` header.

Spans are recorded only when `OTEL_TRACES_EXPORTER` names an exporter (zipkin, otlp, console):
each request is a SERVER span of the function's service (`K_SERVICE`), each store call a
CLIENT span, each send to `K_SINK` a PRODUCER span. Otherwise nothing of the SDK is imported.
Handlers know none of this: the app factory, the registry and the sink call the helpers below.
"""

from __future__ import annotations

import atexit
import contextlib
import os
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import leantrace
from functions.errors import ConfigError
from functions.stores.base import Record, Table

if TYPE_CHECKING:
    from opentelemetry.trace import SpanContext

    from leantrace.spans import Span, Tracer

#: The trace context of the request being served: `{"traceparent": …, "tracestate": …}`.
_context: ContextVar[dict[str, str] | None] = ContextVar("trace_context", default=None)
#: The SERVER span of the request being served: the parent of its store calls and sends.
_span: ContextVar[Span | None] = ContextVar("trace_span", default=None)
_tracer: Tracer | None = None


def configure(service: str, environ: Mapping[str, str]) -> None:
    """Record spans as `service` if the OTEL_* variables name an exporter."""
    global _tracer
    name = leantrace.exporter_name(environ)
    if name is None or _tracer is not None:
        return
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    from leantrace.spans import Tracer, sampler_from_environ

    # The service alone: the SDK's default attributes would be tags of every exported span.
    _tracer = Tracer(
        Resource({"service.name": service}),
        BatchSpanProcessor(span_exporter(name, environ)),
        sampler_from_environ(),
        InstrumentationScope("functions", ""),  # version "": as the SDK does; Zipkin refuses null
    )
    # The last spans leave with the process, as the SDK's TracerProvider does it.
    atexit.register(shutdown)


def shutdown() -> None:
    """Export the spans still buffered and stop recording (at the process's exit)."""
    global _tracer
    if _tracer is not None:
        _tracer.processor.shutdown()
        _tracer = None


def warm_up(environ: Mapping[str, str]) -> None:
    """Import the SDK and the exporter ahead of need, when spans will be recorded.

    Run in knlocal's warm template: every instance forked from it then finds them imported
    (about 100 ms of CPU per cold start otherwise).
    """
    name = leantrace.exporter_name(environ)
    if name is None:
        return
    import opentelemetry.sdk.trace.export  # noqa: F401

    from leantrace import spans  # noqa: F401

    with contextlib.suppress(ConfigError):  # said by the instance itself, when it starts
        span_exporter(name, environ)


def span_exporter(name: str, environ: Mapping[str, str]) -> Any:
    """The SpanExporter called `name` (see :func:`leantrace.span_exporter`)."""
    try:
        return leantrace.span_exporter(name, environ)
    except leantrace.ConfigError as error:
        raise ConfigError(str(error)) from None


#: The trace id of a `traceparent` value, or None when it is not a valid one.
trace_id = leantrace.trace_id_of


def event_extensions() -> dict[str, str]:
    """The extensions an event built now carries: the current trace context, if any."""
    return dict(_context.get() or {})


def response_headers() -> dict[str, str]:
    """The headers a public-API answer carries: its `traceparent`."""
    current = _context.get()
    return {"traceparent": current["traceparent"]} if current else {}


def outgoing_headers() -> dict[str, str]:
    """The W3C headers of a request sent now (the current span as the parent)."""
    return dict(_context.get() or {})


def _new_traceparent() -> str:
    return f"00-{os.urandom(16).hex()}-{os.urandom(8).hex()}-00"


def _carrier(headers: Mapping[str, str], event: Any, start: bool) -> dict[str, str]:
    """The incoming context: the header, else the event's extension, else a new one if `start`.

    A new one is made here only while no spans are recorded (flags 00: not sampled); while
    recording, the tracer starts the trace itself, under its sampler.
    """
    lowered = {k.lower(): v for k, v in headers.items() if k[:1] in "tT"}
    parent, state = lowered.get("traceparent"), lowered.get("tracestate")
    if trace_id(parent) is None and event is not None:
        parent, state = event.get_extension("traceparent"), event.get_extension("tracestate")
    if trace_id(parent) is None:
        if not start:
            return {}
        parent, state = _new_traceparent(), None
    return {"traceparent": str(parent), **({"tracestate": str(state)} if state else {})}


@contextlib.contextmanager
def server_span(
    function: str, method: str, route: str, headers: Mapping[str, str], event: Any = None
) -> Iterator[Span | None]:
    """Serve one request within its trace context (and, when recording, its SERVER span).

    :param event: the decoded CloudEvent of an event function's request, if any.
    """
    carrier = _carrier(headers, event, start=event is None and _tracer is None)
    if _tracer is None:
        token = _context.set(carrier or None)
        try:
            yield None
        finally:
            _context.reset(token)
        return
    from opentelemetry.trace import SpanKind

    attributes: dict[str, Any] = {"http.request.method": method, "http.route": route}
    if event is not None:
        attributes["cloudevents.event_id"] = event.get_id()
        attributes["cloudevents.event_type"] = event.get_type()
        attributes["operationid"] = str(event.get_extension("operationid") or "")
    span = _tracer.start_span(f"{method} {route}", _parent(carrier), SpanKind.SERVER, attributes)
    token = _context.set(_headers_of(span, carrier.get("tracestate")))
    span_token = _span.set(span)
    try:
        yield span
    except BaseException as error:
        _record_error(span, error)
        raise
    finally:
        span.end()
        _span.reset(span_token)
        _context.reset(token)


def _parent(carrier: Mapping[str, str]) -> SpanContext | None:
    """The remote parent a carrier's `traceparent` names, if it is a valid one."""
    from leantrace.spans import parse_traceparent

    return parse_traceparent(carrier.get("traceparent"), carrier.get("tracestate"))


def _headers_of(span: Span, tracestate: str | None) -> dict[str, str]:
    """The W3C headers naming `span` as the parent (what a propagator's inject writes)."""
    from leantrace.spans import traceparent_of

    parent = traceparent_of(span.get_span_context())
    return {"traceparent": parent, **({"tracestate": tracestate} if tracestate else {})}


def _record_error(span: Span, error: BaseException) -> None:
    from opentelemetry.trace import Status, StatusCode

    span.record_exception(error)
    span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))


def set_status(span: Span | None, status: int, operation_id: object = None) -> None:
    """Record the answer's status (and the operation it concerns) on a SERVER span."""
    if span is None:
        return
    span.set_attribute("http.response.status_code", status)
    if isinstance(operation_id, str):
        span.set_attribute("operationid", operation_id)
    if status >= 500:
        from opentelemetry.trace import Status, StatusCode

        span.set_status(Status(StatusCode.ERROR))


class _ClientSpan:
    """A child span of the request's SERVER span while entered, its context the outgoing one.

    A class rather than a generator-based context manager: it wraps every store call.
    """

    __slots__ = ("span", "token")

    def __init__(self, name: str, kind: str, attributes: Mapping[str, Any]) -> None:
        from opentelemetry.trace import SpanKind

        assert _tracer is not None
        parent = _span.get()
        self.span = _tracer.start_span(
            name, parent.context if parent is not None else None, SpanKind[kind], attributes
        )
        self.token: Any = None

    def __enter__(self) -> Span:
        current = _context.get() or {}
        self.token = _context.set(_headers_of(self.span, current.get("tracestate")))
        return self.span

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, _: Any
    ) -> None:
        if error is not None:
            _record_error(self.span, error)
        self.span.end()
        _context.reset(self.token)


def send_span(url: str) -> contextlib.AbstractContextManager[Any]:
    """The PRODUCER span of one send to the broker (the sink), when recording."""
    if _tracer is None:
        return contextlib.nullcontext()
    attributes = {
        "http.request.method": "POST",
        "url.full": url,
        "messaging.operation.type": "send",
    }
    return _ClientSpan("send broker", "PRODUCER", attributes)


class TracedTable(Table):
    """A table whose calls are CLIENT spans named as OpenTelemetry's database conventions say."""

    def __init__(self, table: Table, collection: str, system: str) -> None:
        self.table = table
        self.collection = collection
        self.system = system

    def _span(self, operation: str) -> contextlib.AbstractContextManager[Any]:
        attributes = {
            "db.system.name": self.system,
            "db.collection.name": self.collection,
            "db.operation.name": operation,
        }
        return _ClientSpan(f"{operation} {self.collection}", "CLIENT", attributes)

    def put_if_absent(self, record: Record) -> Record:
        """See :meth:`Table.put_if_absent`."""
        with self._span("put_if_absent"):
            return self.table.put_if_absent(record)

    def get(self, record_id: str) -> Record | None:
        """See :meth:`Table.get`."""
        with self._span("get"):
            return self.table.get(record_id)

    def replace_if_status(self, record: Record, expected_status: str) -> bool:
        """See :meth:`Table.replace_if_status`."""
        with self._span("replace_if_status"):
            return self.table.replace_if_status(record, expected_status)

    def with_status(self, status: str, limit: int) -> list[Record]:
        """See :meth:`Table.with_status`."""
        with self._span("with_status"):
            return self.table.with_status(status, limit)

    def close(self) -> None:
        """See :meth:`Table.close`."""
        self.table.close()


def traced_table(table: Table, collection: str, store: str) -> Table:
    """`table` with spans when recording, else `table` itself."""
    if _tracer is None:
        return table
    return TracedTable(table, collection, {"dynamodb": "aws.dynamodb"}.get(store, store))

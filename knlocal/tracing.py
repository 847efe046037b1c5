"""The runtime's spans (issue 12): W3C Trace Context and OpenTelemetry, one module.

Every hook below is a plain call from edge code (the ingress, the activator, the broker ingress,
each Trigger's dispatcher, the send path). While tracing is off (:func:`configure` found no
exporter in the `OTEL_*` variables) each hook returns at its first line: no SDK is imported, no
span object is made, headers and events pass unchanged.

While it is on, one operation is one trace:

    ingress            POST /users                       SERVER
    activator          activator operation-create        INTERNAL, only while it holds a request
                                                         (+ `hold`, cold start event); else an
                                                         event of the current span
    (function spans)   …
    broker-ingress     publish default                   PRODUCER: the event's `traceparent`
    broker-filter      process default                   CONSUMER, per event a Trigger's filter
                                                         passes (the filter: an event of it)
    broker-filter        POST                            CLIENT: one per delivery attempt
    broker-filter        dead-letter <trigger>           INTERNAL, around the dead-letter sends

The services are Knative's own component names (activator, broker-ingress, broker-filter), so
the same picture reads alike on a cluster. The broker ingress writes its PRODUCER span into the
event as the CloudEvents Distributed Tracing extension (`traceparent`, `tracestate`): that is
how the consumer of a stored event, on any backend (a Kafka record's `ce_traceparent` header
included), continues the trace. Attribute names follow OpenTelemetry's semantic conventions for
HTTP, messaging and CloudEvents (`cloudevents.event_id`, `cloudevents.event_type`, …).

The spans are leantrace's (leantrace/spans.py: OpenTelemetry's ReadableSpans made without the
SDK's per-span machinery, which costs several times more inside the running runtime), exported
through the SDK's BatchSpanProcessor; the current span is this module's own context variable.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import leantrace
from knlocal.errors import ConfigError
from knlocal.eventing.events import BaseCloudEvent, replace_attributes

if TYPE_CHECKING:
    from opentelemetry.trace import SpanContext

    from leantrace.spans import Span, Tracer

#: The CloudEvents Distributed Tracing extension's attributes (and the W3C header names).
TRACE_EXTENSIONS = ("traceparent", "tracestate")
#: The extension naming the operation (functions/catalog.py): an attribute of every event span,
#: so that Zipkin finds an operation's trace by `annotationQuery=operationid=<id>`.
OPERATION_ID = "operationid"
#: The services whose spans the runtime makes, each a resource of its own.
SERVICES = ("ingress", "activator", "broker-ingress", "broker-filter")

_tracers: dict[str, Tracer] = {}
_shutdown: list[Any] = []
#: The parent of spans started now: the current span, or a request's remote `traceparent`.
_current: ContextVar[Span | SpanContext | None] = ContextVar("knlocal_span", default=None)


def enabled() -> bool:
    """Whether spans are recorded (see :func:`configure`)."""
    return bool(_tracers)


def exporter_name(environ: Mapping[str, str]) -> str | None:
    """The exporter the OTEL_* variables choose (zipkin, otlp, console), or None when off."""
    return leantrace.exporter_name(environ)


def configure(environ: Mapping[str, str] = os.environ) -> bool:
    """Record spans if `OTEL_TRACES_EXPORTER` names an exporter; return whether it does.

    The sampler (`OTEL_TRACES_SAMPLER`, `…_ARG`), the batch settings (`OTEL_BSP_*`) and the
    endpoints are read by the SDK itself from the same variables.
    """
    name = exporter_name(environ)
    if name is None or _tracers:
        return bool(_tracers)
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    from leantrace.spans import Tracer, sampler_from_environ

    # One processor (one thread, one exporter) for the four services: each exporter names
    # every span after its own resource.
    processor = BatchSpanProcessor(span_exporter(name, environ))
    # Version "": what the SDK gives a tracer without one (Zipkin refuses a null tag).
    sampler, scope = sampler_from_environ(), InstrumentationScope("knlocal", "")
    for service in SERVICES:
        # The service alone: the SDK's default attributes would be tags of every exported span.
        _tracers[service] = Tracer(Resource({"service.name": service}), processor, sampler, scope)
    _shutdown.append(processor)
    return True


def span_exporter(name: str, environ: Mapping[str, str]) -> Any:
    """The SpanExporter called `name` (see :func:`leantrace.span_exporter`)."""
    try:
        return leantrace.span_exporter(name, environ)
    except leantrace.ConfigError as error:
        raise ConfigError(str(error)) from None


def shutdown() -> None:
    """Export what is buffered and stop (the runtime's last step)."""
    while _shutdown:
        _shutdown.pop().shutdown()
    _tracers.clear()


# -- context ------------------------------------------------------------------------------------


def _extract(carrier: Mapping[str, str]) -> SpanContext | None:
    """The remote parent a carrier's `traceparent` names (None when it is no valid one)."""
    from leantrace.spans import parse_traceparent

    return parse_traceparent(carrier.get("traceparent"), carrier.get("tracestate"))


def _parent() -> SpanContext | None:
    """The context of the current span, or the remote parent `incoming` set, if any."""
    current = _current.get()
    if current is None or isinstance(current, tuple):  # a SpanContext is a tuple
        return current
    return current.context


def _current_headers() -> dict[str, str]:
    """The W3C headers of the current span (what a propagator's inject writes)."""
    from leantrace.spans import traceparent_of

    context = _parent()
    if context is None:
        return {}
    carrier = {"traceparent": traceparent_of(context)}
    if context.trace_state:
        carrier["tracestate"] = context.trace_state.to_header()
    return carrier


def inject(headers: Mapping[str, str]) -> Mapping[str, str]:
    """`headers` with the current span as `traceparent` (a copy), or `headers` when off."""
    if not _tracers:
        return headers
    out = {k: v for k, v in headers.items() if k.lower() not in TRACE_EXTENSIONS}
    out.update(_current_headers())
    return out


@contextlib.contextmanager
def _attached(parent: SpanContext) -> Iterator[None]:
    token = _current.set(parent)
    try:
        yield
    finally:
        _current.reset(token)


def incoming(headers: Mapping[str, str]) -> contextlib.AbstractContextManager[None]:
    """Make an HTTP request's `traceparent` the parent of the spans started within."""
    if not _tracers or "traceparent" not in headers:
        return contextlib.nullcontext()
    parent = _extract(headers)
    return _attached(parent) if parent is not None else contextlib.nullcontext()


# -- spans --------------------------------------------------------------------------------------


def _event_attributes(event: BaseCloudEvent) -> dict[str, Any]:
    attributes = {
        "cloudevents.event_id": event.get_id(),
        "cloudevents.event_type": event.get_type(),
    }
    operation = event.get_extension(OPERATION_ID)
    if operation is not None:
        attributes[OPERATION_ID] = str(operation)
    return attributes


class _Current:
    """A started span as the current one while entered; ended on exit (an error: ERROR)."""

    __slots__ = ("span", "token")

    def __init__(self, span: Span) -> None:
        self.span = span
        self.token: Any = None

    def __enter__(self) -> Span:
        self.token = _current.set(self.span)
        return self.span

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, _: Any
    ) -> None:
        if error is not None:
            from opentelemetry.trace import Status, StatusCode

            self.span.record_exception(error)
            self.span.set_status(
                Status(StatusCode.ERROR, f"{kind.__name__ if kind else ''}: {error}")
            )
        self.span.end()
        _current.reset(self.token)


def _span(
    service: str,
    name: str,
    kind: str,
    attributes: Mapping[str, Any],
    parent: SpanContext | None = None,
    start_time: int | None = None,
) -> _Current:
    """A span of `service`, a child of `parent` if given, else of the current span."""
    from opentelemetry.trace import SpanKind

    span = _tracers[service].start_span(
        name, parent or _parent(), SpanKind[kind], attributes, start_time
    )
    return _Current(span)


def ingress_span(method: str, path: str, headers: Mapping[str, str]) -> Any:
    """The public ingress's SERVER span for one request (parent: its `traceparent`)."""
    if not _tracers:
        return contextlib.nullcontext()
    context = _extract(headers)
    attributes = {"http.request.method": method, "url.path": path, "url.scheme": "http"}
    return _span("ingress", f"{method} {path}", "SERVER", attributes, context)


def response(span: Span | None, status: int) -> None:
    """Record an HTTP answer on a SERVER or CLIENT span (5xx, or a None status, is an error)."""
    if span is None:
        return
    from opentelemetry.trace import Status, StatusCode

    if status:
        span.set_attribute("http.response.status_code", status)
    if not status or status >= 500:
        span.set_status(Status(StatusCode.ERROR))


class _Activator:
    """The activator's part in one request: a span only while it holds the request.

    A request that finds an instance ready is an event of the current span (the ingress's, or
    a delivery attempt's); one held while the revision scales from zero is an `activator`
    span from its arrival, with the `hold` as a child span and the cold start as an event,
    current while the request is forwarded (the function's SERVER span is its child).
    """

    def __init__(self, service: str) -> None:
        self.service = service
        self.arrived_ns = time.time_ns()
        self.current: _Current | None = None
        self.answered = False

    def held(self, cold_start_seconds: float | None) -> None:
        """The request got an instance; `cold_start_seconds` when it waited for a new one."""
        self.answered = True
        if cold_start_seconds is None:
            current = _current.get()
            if current is not None and not isinstance(current, tuple):
                current.add_event(f"activator {self.service}")
            return
        now_ns = time.time_ns()
        attributes = {
            "knative.service": self.service,
            "knative.activator.held_ms": round((now_ns - self.arrived_ns) / 1e6, 3),
        }
        self.current = _span(
            "activator",
            f"activator {self.service}",
            "INTERNAL",
            attributes,
            start_time=self.arrived_ns,
        )
        span = self.current.__enter__()
        span.add_event("cold start", {"knative.cold_start.ms": round(cold_start_seconds * 1000, 3)})
        hold = _tracers["activator"].start_span(
            "hold (scale from zero)", span.context, start_time=self.arrived_ns
        )
        hold.end(end_time=now_ns)

    def __enter__(self) -> _Activator:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: Any
    ) -> None:
        if self.current is not None:
            self.current.__exit__(kind, error, tb)
        elif not self.answered:
            # Held, and no instance came in time (the activator's 504): the hold as a span.
            span = _tracers["activator"].start_span(
                f"activator {self.service}",
                _parent(),
                attributes={"knative.service": self.service},
                start_time=self.arrived_ns,
            )
            response(span, 504 if error is None else 0)
            span.end()


def activator_span(service: str) -> Any:
    """The activator's part in one request to `service` (None-yielding when off)."""
    if not _tracers:
        return contextlib.nullcontext()
    return _Activator(service)


@contextlib.contextmanager
def _publish(broker: str, system: str, event: BaseCloudEvent) -> Iterator[list[BaseCloudEvent]]:
    attributes = {
        **_event_attributes(event),
        "messaging.system": system,
        "messaging.operation.type": "send",
        "messaging.destination.name": broker,
    }
    with _span("broker-ingress", f"publish {broker}", "PRODUCER", attributes):
        carrier = _current_headers()
        yield [replace_attributes(event, {k: carrier[k] for k in carrier})]


def publish_span(broker: str, system: str, event: BaseCloudEvent) -> Any:
    """The broker ingress's PRODUCER span; yields `[event]` carrying it as its `traceparent`."""
    if not _tracers:
        return contextlib.nullcontext([event])
    return _publish(broker, system, event)


@contextlib.contextmanager
def _consume(trigger: str, broker: str, event: BaseCloudEvent, filtered_ns: int) -> Iterator[Span]:
    carrier = {k: str(event.get_extension(k) or "") for k in TRACE_EXTENSIONS}
    attributes = {
        **_event_attributes(event),
        "messaging.operation.type": "process",
        "messaging.destination.name": broker,
        "messaging.consumer.group.name": trigger,
    }
    context = _extract(carrier)
    with _span(
        "broker-filter", f"process {broker}", "CONSUMER", attributes, context, filtered_ns
    ) as span:
        # The filter, evaluated in microseconds just before: an event of the span.
        span.add_event(f"filter {trigger}: pass", timestamp=filtered_ns)
        yield span


def consume_span(trigger: str, broker: str, event: BaseCloudEvent, filtered_ns: int) -> Any:
    """A Trigger's CONSUMER span for an event its filter passed (parent: the event's
    `traceparent`), from the filter's evaluation at `filtered_ns` on."""
    if not _tracers:
        return contextlib.nullcontext()
    return _consume(trigger, broker, event, filtered_ns)


def attempt_span(url: str, attempt: int, backoff_seconds: float) -> Any:
    """A CLIENT span for one delivery attempt (retries carry `http.request.resend_count`)."""
    if not _tracers:
        return contextlib.nullcontext()
    attributes: dict[str, Any] = {
        "http.request.method": "POST",
        "url.full": url,
        "knative.delivery.attempt": attempt,
    }
    if attempt > 1:
        attributes["http.request.resend_count"] = attempt - 1
        attributes["knative.delivery.backoff_ms"] = round(backoff_seconds * 1000, 3)
    return _span("broker-filter", "POST", "CLIENT", attributes)


def attempt_result(span: Span | None, status: int | None, error: str, retriable: bool) -> None:
    """Record how an attempt ended; a failed one says whether it will be retried."""
    if span is None:
        return
    response(span, status or 0)
    if error or (status is not None and status >= 300):
        from opentelemetry.trace import Status, StatusCode

        span.set_status(Status(StatusCode.ERROR, error or f"HTTP {status}"))
        span.set_attribute("knative.delivery.retriable", retriable)
        if error:
            span.set_attribute("error.type", error.split(":")[0])
        elif status is not None:
            span.set_attribute("error.type", str(status))


def dead_letter_span(trigger: str, destination: str, status: int | None) -> Any:
    """The span around a dead-letter delivery: which destination failed, with what status."""
    if not _tracers:
        return contextlib.nullcontext()
    attributes = {"knative.trigger": trigger, "knative.error.destination": destination}
    if status is not None:
        attributes["knative.error.code"] = str(status)
    return _span("broker-filter", f"dead-letter {trigger}", "INTERNAL", attributes)

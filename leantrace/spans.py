"""Spans recorded the lean way, handed to OpenTelemetry's span processors as its ReadableSpans.

The SDK's `Tracer.start_span` → `Span.end` path costs about 20 µs a span in a tight loop and
50 to 150 µs a hook inside the running runtime (timed in place: its sampler, context, attribute
cleaning, locks and copies run among the runtime's own work, off the CPU's caches). The spans of
the runtime and of the functions are our own code's, with a few known-good attributes (strings,
numbers, booleans), so this module keeps only what a span is: ids, parent, times, attributes,
events, status; on `end` it makes the one `ReadableSpan` the SDK would have made and gives it to
the SDK's span processor (batching, exporters, OTLP and console alike stay OpenTelemetry's).

Sampling is the SDK's sampler read from `OTEL_TRACES_SAMPLER` / `…_ARG`: a root span asks it; a
child of a valid parent follows the parent's sampled flag under a parent-based sampler (what
`ParentBased` decides with its default delegates, the only ones the variables configure) and
asks the sampler otherwise. No span limits are applied (the SDK's 128 attributes, events and
links): these spans carry fewer than ten.
"""

from __future__ import annotations

import random
import time
import traceback
from collections.abc import Mapping
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.sampling import Decision, ParentBased, Sampler
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import TraceState

from leantrace import trace_id_of

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_NOT_SAMPLED = TraceFlags(TraceFlags.DEFAULT)
_UNSET = Status(StatusCode.UNSET)


def sampler_from_environ() -> Sampler:
    """The sampler `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG` name, as the SDK reads them."""
    return TracerProvider(shutdown_on_exit=False).sampler


def parse_traceparent(traceparent: object, tracestate: object = None) -> SpanContext | None:
    """The remote parent a W3C `traceparent` (and `tracestate`) names; None when it is no valid
    version-00 value (W3C Trace Context §3.2: lowercase hex, ids not all zero)."""
    if not isinstance(traceparent, str) or trace_id_of(traceparent) is None:
        return None
    trace_id, span_id = int(traceparent[3:35], 16), int(traceparent[36:52], 16)
    state = (
        TraceState.from_header([tracestate]) if isinstance(tracestate, str) and tracestate else None
    )
    return SpanContext(trace_id, span_id, True, TraceFlags(int(traceparent[53:], 16)), state)


def traceparent_of(context: SpanContext) -> str:
    """The W3C `traceparent` naming `context` as the parent."""
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"


class Tracer:
    """Starts the spans of one service (its `Resource`) into one span processor."""

    def __init__(
        self,
        resource: Resource,
        processor: SpanProcessor,
        sampler: Sampler,
        scope: InstrumentationScope,
    ) -> None:
        self.resource = resource
        self.processor = processor
        self.sampler = sampler
        self.scope = scope
        self._follows_parent = isinstance(sampler, ParentBased)

    def start_span(
        self,
        name: str,
        parent: SpanContext | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Mapping[str, Any] | None = None,
        start_time: int | None = None,
    ) -> Span:
        """A started span; its parent is `parent` (a remote or local span's context) if valid."""
        if parent is not None and parent.is_valid:
            trace_id = parent.trace_id
            state = parent.trace_state
        else:
            parent = None
            trace_id = random.getrandbits(128) or 1
            state = None
        if parent is not None and self._follows_parent:
            sampled = parent.trace_flags.sampled
        else:
            decision = self.sampler.should_sample(None, trace_id, name, kind, attributes)
            sampled = decision.decision is Decision.RECORD_AND_SAMPLE
        context = SpanContext(
            trace_id,
            random.getrandbits(64) or 1,
            False,
            _SAMPLED if sampled else _NOT_SAMPLED,
            state,
        )
        return Span(self, name, context, parent, kind, attributes, start_time, sampled)


class Span:
    """One span: what OpenTelemetry's `Span` records, with the methods our code calls on it."""

    __slots__ = (
        "attributes",
        "context",
        "events",
        "kind",
        "name",
        "parent",
        "recording",
        "start_time",
        "status",
        "tracer",
    )

    def __init__(
        self,
        tracer: Tracer,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: Mapping[str, Any] | None,
        start_time: int | None,
        recording: bool,
    ) -> None:
        self.tracer = tracer
        self.name = name
        self.context = context
        self.parent = parent
        self.kind = kind
        self.attributes = dict(attributes) if attributes else {}
        self.events: list[Event] = []
        self.status = _UNSET
        self.start_time = start_time if start_time is not None else time.time_ns()
        self.recording = recording

    def get_span_context(self) -> SpanContext:
        """The span's context (what a child names as its parent)."""
        return self.context

    def is_recording(self) -> bool:
        """Whether the span is sampled: exported when it ends."""
        return self.recording

    def set_attribute(self, key: str, value: Any) -> None:
        """Set one attribute (a string, number or boolean, or a sequence of them)."""
        if self.recording:  # an ended span's attributes belong to its ReadableSpan
            self.attributes[key] = value

    def add_event(
        self, name: str, attributes: Mapping[str, Any] | None = None, timestamp: int | None = None
    ) -> None:
        """Add an event (now, unless `timestamp` says when, in ns since the epoch)."""
        if self.recording:
            self.events.append(Event(name, dict(attributes) if attributes else None, timestamp))

    def set_status(self, status: Status) -> None:
        """Set the status; as in OpenTelemetry, OK is final and UNSET changes nothing."""
        if self.status.status_code is not StatusCode.OK and status.status_code is not (
            StatusCode.UNSET
        ):
            self.status = status

    def record_exception(self, error: BaseException) -> None:
        """The `exception` event OpenTelemetry's `record_exception` adds."""
        if not self.recording:
            return
        module, name = type(error).__module__, type(error).__qualname__
        self.add_event(
            "exception",
            {
                "exception.type": f"{module}.{name}" if module and module != "builtins" else name,
                "exception.message": str(error),
                "exception.stacktrace": "".join(traceback.format_exception(error)),
                "exception.escaped": "False",
            },
        )

    def end(self, end_time: int | None = None) -> None:
        """End the span: a sampled one goes to the span processor, as a ReadableSpan."""
        if not self.recording:
            return
        self.recording = False
        tracer = self.tracer
        tracer.processor.on_end(
            ReadableSpan(
                name=self.name,
                context=self.context,
                parent=self.parent,
                resource=tracer.resource,
                attributes=self.attributes,
                events=self.events,
                kind=self.kind,
                status=self.status,
                start_time=self.start_time,
                end_time=end_time if end_time is not None else time.time_ns(),
                instrumentation_scope=tracer.scope,
            )
        )

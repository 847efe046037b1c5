"""leantrace's spans reach the span processor as the SDK's own would, and sample as it does."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanKind,
    Status,
    StatusCode,
    set_span_in_context,
)

import leantrace
from leantrace.spans import Tracer, parse_traceparent, sampler_from_environ, traceparent_of

RESOURCE = Resource({"service.name": "broker-filter"})
SCOPE = InstrumentationScope("knlocal", "")
PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
UNSAMPLED_PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"


def _lean(sampler: Sampler = ALWAYS_ON) -> tuple[Tracer, InMemorySpanExporter]:
    exported = InMemorySpanExporter()
    return Tracer(RESOURCE, SimpleSpanProcessor(exported), sampler, SCOPE), exported


def _sdk(sampler: Sampler = ALWAYS_ON) -> tuple[Any, InMemorySpanExporter]:
    exported = InMemorySpanExporter()
    provider = TracerProvider(resource=RESOURCE, sampler=sampler, shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exported))
    return provider.get_tracer("knlocal"), exported


def _shape(span: ReadableSpan) -> dict[str, Any]:
    """What an exporter reads of a span, but its own ids and times."""
    assert span.context is not None and span.parent is not None
    return {
        "name": span.name,
        "kind": span.kind,
        "trace_id": span.context.trace_id,
        "flags": span.context.trace_flags,
        "parent": (span.parent.trace_id, span.parent.span_id, span.parent.is_remote),
        "attributes": dict(span.attributes or {}),
        "events": [
            (event.name, {k: v for k, v in (event.attributes or {}).items() if "stack" not in k})
            for event in span.events
        ],
        "status": (span.status.status_code, span.status.description),
        "resource": span.resource.attributes,
        "scope": span.instrumentation_scope,
        "dropped": (span.dropped_attributes, span.dropped_events, span.dropped_links),
    }


def _exercise(span: Any) -> None:
    span.set_attribute("http.response.status_code", 503)
    span.add_event("filter default/user-create: pass", timestamp=1_700_000_000_000_000_000)
    span.add_event("cold start", {"knative.cold_start.ms": 12.5})
    span.record_exception(ValueError("no instance came in time"))
    span.set_status(Status(StatusCode.ERROR, "HTTP 503"))
    span.set_status(Status(StatusCode.UNSET))  # ignored, as by the SDK
    span.end()


def test_a_span_reaches_the_processor_as_the_sdks_would() -> None:
    attributes: Mapping[str, Any] = {
        "http.request.method": "POST",
        "url.full": "http://127.0.0.1:8080/",
        "knative.delivery.attempt": 2,
        "knative.delivery.retriable": True,
        "knative.delivery.backoff_ms": 400.0,
    }
    parent = parse_traceparent(PARENT, "vendor=1")
    assert parent is not None
    lean, lean_out = _lean()
    sdk, sdk_out = _sdk()
    _exercise(lean.start_span("POST", parent, SpanKind.CLIENT, attributes))
    sdk_span = sdk.start_span(
        "POST",
        set_span_in_context(NonRecordingSpan(parent)),
        kind=SpanKind.CLIENT,
        attributes=attributes,
    )
    _exercise(sdk_span)
    [lean_span], [reference] = lean_out.get_finished_spans(), sdk_out.get_finished_spans()
    assert _shape(lean_span) == _shape(reference)
    assert lean_span.context is not None and reference.context is not None
    assert lean_span.context.trace_state == reference.context.trace_state
    [exception] = [event for event in lean_span.events if event.name == "exception"]
    assert "ValueError: no instance came in time" in str(exception.attributes)


def test_a_child_names_its_local_parent_and_inherits_its_trace() -> None:
    tracer, exported = _lean()
    root = tracer.start_span("POST /users", kind=SpanKind.SERVER)
    child = tracer.start_span("publish default", root.context, SpanKind.PRODUCER)
    child.end()
    root.end()
    [ended_child, ended_root] = exported.get_finished_spans()
    assert ended_root.parent is None
    assert ended_child.parent == root.context
    assert ended_child.context is not None
    assert ended_child.context.trace_id == root.context.trace_id
    assert not ended_child.context.is_remote


def test_an_ended_span_changes_no_more() -> None:
    tracer, exported = _lean()
    span = tracer.start_span("POST", kind=SpanKind.CLIENT, attributes={"a": "1"})
    span.set_status(Status(StatusCode.OK))
    span.set_status(Status(StatusCode.ERROR, "too late"))  # OK is final
    span.end()
    span.set_attribute("b", "2")
    span.add_event("late")
    span.end()
    [ended] = exported.get_finished_spans()
    assert dict(ended.attributes or {}) == {"a": "1"}
    assert ended.events == ()
    assert ended.status.status_code is StatusCode.OK


@pytest.mark.parametrize(
    ("sampler", "parent", "exported"),
    [
        (ALWAYS_ON, None, True),
        (ALWAYS_OFF, None, False),
        (ParentBased(ALWAYS_ON), None, True),
        (ParentBased(ALWAYS_ON), PARENT, True),
        (ParentBased(ALWAYS_ON), UNSAMPLED_PARENT, False),
        (ParentBased(ALWAYS_OFF), PARENT, True),
        (ALWAYS_ON, UNSAMPLED_PARENT, True),  # not parent-based: the parent's flag is ignored
        (ALWAYS_OFF, PARENT, False),
    ],
)
def test_spans_are_sampled_as_the_sdk_samples_them(
    sampler: Sampler, parent: str | None, exported: bool
) -> None:
    context = parse_traceparent(parent) if parent else None
    lean, lean_out = _lean(sampler)
    sdk, sdk_out = _sdk(sampler)
    span = lean.start_span("POST", context, SpanKind.CLIENT)
    span.end()
    sdk.start_span(
        "POST", set_span_in_context(NonRecordingSpan(context)) if context else None
    ).end()
    assert bool(lean_out.get_finished_spans()) is exported
    assert bool(sdk_out.get_finished_spans()) is exported
    # Sampled or not, the span's context propagates, its flag saying which.
    assert span.context.is_valid
    assert span.context.trace_flags.sampled is exported


def test_a_ratio_sampler_decides_by_trace_id_as_the_sdks() -> None:
    sampler = TraceIdRatioBased(0.5)
    tracer, exported = _lean(sampler)
    decisions = []
    for _ in range(200):
        span = tracer.start_span("POST /users", kind=SpanKind.SERVER)
        span.end()
        expected = sampler.should_sample(None, span.context.trace_id, "POST /users")
        decisions.append(span.context.trace_flags.sampled)
        assert span.context.trace_flags.sampled is expected.decision.is_sampled()
    assert len(exported.get_finished_spans()) == sum(decisions)
    assert 40 < sum(decisions) < 160


def test_the_sampler_is_the_one_the_variables_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.25")
    sampler = sampler_from_environ()
    assert isinstance(sampler, ParentBased)
    assert "0.25" in sampler.get_description()


@pytest.mark.parametrize(
    "value",
    [
        "",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
        "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "00-00000000000000000000000000000000-b7ad6b7169203331-01",
        "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
        "00-0af7651916cd43dd8448eb211c80319x-b7ad6b7169203331-01",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-1",
        "00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01",  # W3C: lowercase only
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-",
        None,
        42,
    ],
)
def test_a_traceparent_that_is_no_valid_one_names_no_parent(value: object) -> None:
    assert parse_traceparent(value) is None
    assert leantrace.trace_id_of(value) is None  # the same rule for the untraced functions


def test_a_valid_traceparent_round_trips_with_its_state() -> None:
    assert leantrace.trace_id_of(PARENT) == PARENT[3:35]
    context = parse_traceparent(PARENT, "vendor=1,other=2")
    assert context is not None and context.is_remote
    assert traceparent_of(context) == PARENT
    assert context.trace_state.to_header() == "vendor=1,other=2"
    unsampled = parse_traceparent(UNSAMPLED_PARENT, "")
    assert unsampled is not None and not unsampled.trace_flags.sampled
    assert not unsampled.trace_state

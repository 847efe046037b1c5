"""A Zipkin exporter for spans of any number of services, with a cheaper encoder.

OpenTelemetry's `ZipkinExporter` names a whole batch after the service of its first span, so
a process playing several services (the runtime: ingress, activator, broker-ingress,
broker-filter) needed one processor, thread and exporter per service, and its JSON v2 encoder
costs as much CPU as making the span. This one names each span after its own resource's
`service.name` and writes the same JSON as that encoder (tested field for field against it)
in a third of its time: a leaner encoder, and orjson for the batch's text.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
import urllib3
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, StatusCode

log = logging.getLogger(__name__)

_KINDS = {
    SpanKind.INTERNAL: None,
    SpanKind.SERVER: "SERVER",
    SpanKind.CLIENT: "CLIENT",
    SpanKind.PRODUCER: "PRODUCER",
    SpanKind.CONSUMER: "CONSUMER",
}


def _tag(value: Any) -> str | None:
    """A tag's string as OpenTelemetry's Zipkin encoder writes it (None: not exported)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, Sequence):
        items: list[str | None] = []
        for item in value:
            if item is None or isinstance(item, str):
                items.append(item)
            elif isinstance(item, (bool, int, float)):
                items.append(_tag(item))
        return json.dumps(items, separators=(",", ":"))
    return None


def _tags(attributes: Mapping[str, Any] | None, into: dict[str, str]) -> None:
    for key, value in (attributes or {}).items():
        text = value if type(value) is str else _tag(value)
        if text is not None:
            into[key] = text


class _Resources:
    """Per resource (one per service): its endpoint and the tags every span of it carries."""

    def __init__(self) -> None:
        # Keyed by identity: a Resource's own hash encodes its attributes as JSON on every
        # call. The value holds the objects, so an id is never reused while it is a key.
        self._known: dict[tuple[int, int], tuple[dict[str, str], dict[str, str], object]] = {}

    def of(self, span: ReadableSpan) -> tuple[dict[str, str], dict[str, str]]:
        resource, scope = span.resource, span.instrumentation_scope
        found = self._known.get((id(resource), id(scope)))
        if found is None:
            attributes = resource.attributes if resource else {}
            tags: dict[str, str] = {}
            _tags(attributes, tags)
            if scope is not None:
                tags["otel.library.name"] = tags["otel.scope.name"] = scope.name
                version: Any = scope.version
                tags["otel.library.version"] = tags["otel.scope.version"] = version
            endpoint = {"serviceName": str(attributes.get("service.name", "unknown_service"))}
            found = (endpoint, tags, (resource, scope))
            self._known[(id(resource), id(scope))] = found
        return found[0], found[1]


def encode(span: ReadableSpan, resources: _Resources) -> dict[str, Any]:
    """One span as Zipkin's JSON v2 (what OpenTelemetry's JsonV2Encoder makes of it)."""
    context = span.context
    assert context is not None and span.start_time is not None and span.end_time is not None
    endpoint, shared = resources.of(span)
    encoded: dict[str, Any] = {
        "traceId": f"{context.trace_id:032x}",
        "id": f"{context.span_id:016x}",
        "name": span.name,
        "timestamp": (span.start_time + 500) // 1000,
        "duration": (span.end_time - span.start_time + 500) // 1000,
        "localEndpoint": endpoint,
        "kind": _KINDS[span.kind],
    }
    tags: dict[str, str] = {}
    _tags(span.attributes, tags)
    tags.update(shared)
    status = span.status
    if status.status_code is not StatusCode.UNSET:
        tags["otel.status_code"] = status.status_code.name
        if status.status_code is StatusCode.ERROR:
            tags["error"] = status.description or ""
    if span.dropped_attributes:
        tags["otel.dropped_attributes_count"] = str(span.dropped_attributes)
    if span.dropped_events:
        tags["otel.dropped_events_count"] = str(span.dropped_events)
    if span.dropped_links:
        tags["otel.dropped_links_count"] = str(span.dropped_links)
    if tags:
        encoded["tags"] = tags
    events = span.events
    if events:
        encoded["annotations"] = [
            {
                "timestamp": (event.timestamp + 500) // 1000,
                # The annotation's value is JSON text in Zipkin: Python's, as OpenTelemetry's
                # encoder writes it (", " and ": " separators, sorted keys).
                "value": json.dumps({event.name: dict(event.attributes or {})}, sort_keys=True),
            }
            for event in events
        ]
    if context.trace_flags.sampled:
        encoded["debug"] = True
    if span.parent is not None:
        encoded["parentId"] = f"{span.parent.span_id:016x}"
    return encoded


class ZipkinJsonExporter(SpanExporter):
    """Spans of any service to a Zipkin server's `POST /api/v2/spans`, as JSON v2."""

    def __init__(self, endpoint: str, timeout_seconds: float = 10) -> None:
        self.endpoint = endpoint
        self.timeout_seconds = timeout_seconds
        self._resources = _Resources()
        self._pool = urllib3.PoolManager(headers={"Content-Type": "application/json"})

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Send one batch; a refused or failed send is logged and the batch dropped."""
        body = orjson.dumps([encode(span, self._resources) for span in spans])
        try:
            answer = self._pool.request(
                "POST", self.endpoint, body=body, timeout=self.timeout_seconds, retries=False
            )
        except urllib3.exceptions.HTTPError as error:
            log.warning(
                "tracing: %d spans not exported to %s: %s", len(spans), self.endpoint, error
            )
            return SpanExportResult.FAILURE
        if answer.status >= 400:
            log.warning(
                "tracing: %s refused %d spans: %d %s",
                self.endpoint,
                len(spans),
                answer.status,
                answer.data[:200].decode(errors="replace"),
            )
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Close the HTTP connections."""
        self._pool.clear()

"""Spans at a fraction of the SDK's cost, and where they go, for any of our processes.

- here: the exporter the standard `OTEL_*` variables choose;
- `leantrace.spans`: spans made without the SDK's per-span machinery, handed to its span
  processor as the ReadableSpans it would have made;
- `leantrace.zipkin`: a Zipkin exporter for spans of any number of services.

Shared by the local runtime (`knlocal/tracing.py`, four services in one process) and the
functions (`functions/tracing.py`, one service per instance), so that both read the variables
alike and record and export spans the same way; it imports neither of them, so the function
image ships it without the runtime. Nothing of the SDK is imported until a span exporter is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

#: Where `make zipkin` listens; OpenTelemetry's default is `localhost`, which may be ::1.
ZIPKIN_SPANS_URL = "http://127.0.0.1:9411/api/v2/spans"


_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}")
_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16


def trace_id_of(traceparent: object) -> str | None:
    """The trace id (hex) of a W3C `traceparent`; None when it is no valid version-00 value
    (W3C Trace Context §3.2: lowercase hex, ids not all zero)."""
    match = _TRACEPARENT.fullmatch(traceparent) if isinstance(traceparent, str) else None
    if match is None or match[1] == _ZERO_TRACE or match[2] == _ZERO_SPAN:
        return None
    return match[1]


class ConfigError(ValueError):
    """An `OTEL_*` variable holds a value no exporter takes; the message says which."""


def exporter_name(environ: Mapping[str, str]) -> str | None:
    """The exporter the OTEL_* variables choose (zipkin, otlp, console), or None when off."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    name = environ.get("OTEL_TRACES_EXPORTER", "").split(",")[0].strip().lower()
    return name if name and name != "none" else None


def span_exporter(name: str, environ: Mapping[str, str]) -> Any:
    """The SpanExporter called `name` (the values OTEL_TRACES_EXPORTER takes).

    :raises ConfigError: `name` is no exporter, or `OTEL_EXPORTER_ZIPKIN_TIMEOUT` no number.
    """
    if name == "zipkin":
        from leantrace.zipkin import ZipkinJsonExporter

        timeout = environ.get("OTEL_EXPORTER_ZIPKIN_TIMEOUT", "10")
        try:
            seconds = float(timeout)
        except ValueError:
            raise ConfigError(
                f"OTEL_EXPORTER_ZIPKIN_TIMEOUT: expected seconds; found {timeout!r}"
            ) from None
        return ZipkinJsonExporter(
            environ.get("OTEL_EXPORTER_ZIPKIN_ENDPOINT", ZIPKIN_SPANS_URL), seconds
        )
    if name == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    raise ConfigError(
        f"OTEL_TRACES_EXPORTER: expected zipkin, otlp, console or none; found {name!r}"
    )

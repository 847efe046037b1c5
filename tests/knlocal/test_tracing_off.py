"""Tracing off (no OTEL_TRACES_EXPORTER): every hook of knlocal/tracing.py is a no-op.

No span object is made and nothing is copied: headers and events pass through as the very same
objects, so an untraced runtime pays one function call and one test per hook.
"""

import contextlib

import pytest

from knlocal import tracing
from knlocal.errors import ConfigError
from knlocal.eventing.events import BaseCloudEvent, decode_http


def _event() -> BaseCloudEvent:
    headers = {"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/s", "ce-type": "t"}
    return decode_http(headers, b"")


def test_hooks_are_no_ops_while_off() -> None:
    assert not tracing.enabled()
    assert tracing.configure({}) is False
    assert tracing.configure({"OTEL_TRACES_EXPORTER": "none"}) is False
    assert (
        tracing.configure({"OTEL_TRACES_EXPORTER": "zipkin", "OTEL_SDK_DISABLED": "true"}) is False
    )
    headers = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    assert tracing.inject(headers) is headers
    event = _event()
    with tracing.publish_span("default", "memory", event) as traced:
        assert traced[0] is event
    for hook in (
        tracing.ingress_span("POST", "/users", headers),
        tracing.activator_span("user-create"),
        tracing.consume_span("default/user-create", "default", event, 0),
        tracing.attempt_span("http://x", 2, 0.4),
        tracing.dead_letter_span("default/user-create", "http://x", 503),
        tracing.incoming(headers),
    ):
        assert isinstance(hook, contextlib.nullcontext)


def test_the_exporter_is_chosen_by_otel_traces_exporter() -> None:
    assert tracing.exporter_name({"OTEL_TRACES_EXPORTER": "zipkin"}) == "zipkin"
    assert tracing.exporter_name({"OTEL_TRACES_EXPORTER": " OTLP,console"}) == "otlp"
    assert tracing.exporter_name({"OTEL_TRACES_EXPORTER": "none"}) is None


def test_an_unknown_exporter_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="expected zipkin, otlp, console or none; found 'jaeger'"):
        tracing.configure({"OTEL_TRACES_EXPORTER": "jaeger"})
    assert not tracing.enabled()

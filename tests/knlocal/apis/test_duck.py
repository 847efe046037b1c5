"""Knative's duck types (DeliverySpec, Destination), parsed as Knative validates them (§2.4, §2.7).

Knative: ``pkg/apis/duck/v1/delivery_types.go``, ``pkg/apis/duck/v1/destination.go``. Which
delivery applies to a Trigger: tests/knlocal/eventing/test_delivery.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from knlocal.apis.duck import (
    BackoffPolicy,
    DeliverySpec,
    Destination,
    ObjectRef,
    parse_iso8601_duration,
)
from knlocal.errors import ManifestError

EXP = BackoffPolicy.EXPONENTIAL
LIN = BackoffPolicy.LINEAR

SUBSCRIBER = "http://user-created.default.svc.cluster.local/"


# --- §2.7 ISO-8601 durations ------------------------------------------------------------------

DURATION_ROWS: list[tuple[str, float]] = [
    ("PT0.2S", 0.2),
    ("PT0S", 0.0),
    ("PT10S", 10.0),
    ("PT0.001S", 0.001),
    ("PT1.5S", 1.5),
    ("PT0,5S", 0.5),  # ISO 8601 allows a comma as decimal sign
    ("PT1M", 60.0),  # 1·60
    ("PT1H30M", 5400.0),  # 1·3600 + 30·60
    ("PT1H0.5M", 3630.0),  # 3600 + 0.5·60
    ("P1D", 86400.0),  # 24·3600
    ("P1DT1H", 90000.0),  # 86400 + 3600
    ("P1W", 604800.0),  # 7·86400
    ("P2DT3H4M5S", 183845.0),  # 2·86400 + 3·3600 + 4·60 + 5 = 172800 + 10800 + 240 + 5
]


@pytest.mark.parametrize(("text", "seconds"), DURATION_ROWS, ids=[t for t, _ in DURATION_ROWS])
def test_s2_7_iso8601_durations_parse(text: str, seconds: float) -> None:
    """Durations in Knative's ISO-8601 form convert to seconds."""
    assert parse_iso8601_duration(text) == pytest.approx(seconds)


DURATION_ERRORS: list[tuple[str, Any, str]] = [
    ("empty", "", "found ''"),
    ("bare-p", "P", "found 'P'"),
    ("bare-pt", "PT", "found 'PT'"),
    ("dangling-t", "P1DT", "found 'P1DT'"),
    ("no-designator", "PT1", "found 'PT1'"),
    ("go-style", "0.2s", "found '0.2s'"),
    ("lowercase", "pt1s", "found 'pt1s'"),
    ("wrong-order", "PT1S1M", "found 'PT1S1M'"),
    ("repeated", "PT1H1H", "found 'PT1H1H'"),
    ("space", " PT1S", "found ' PT1S'"),
    ("number", 0.2, r"found 0\.2 \(float\)"),
    ("negative", "-PT1S", r"\(not negative\), found '-PT1S'"),
    ("years", "P1Y", r"\(years and months have no fixed length\)"),
    ("months", "P1M", r"\(years and months have no fixed length\)"),
    ("fraction-not-last", "PT1.5H30M", r"\(only the last component may have a fraction\)"),
]


@pytest.mark.parametrize(
    ("text", "message"), [r[1:] for r in DURATION_ERRORS], ids=[r[0] for r in DURATION_ERRORS]
)
def test_s2_7_iso8601_durations_rejected(text: Any, message: str) -> None:
    """Anything else is refused with what was expected and what was found."""
    with pytest.raises(ManifestError, match=r"retry\.delay: expected an ISO-8601 duration"):
        parse_iso8601_duration(text, field="retry.delay")
    with pytest.raises(ManifestError, match=message):
        parse_iso8601_duration(text, field="retry.delay")


# --- §2.7 DeliverySpec from manifests ---------------------------------------------------------

DLS_REF = {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "dls"}


def test_s2_7_delivery_spec_parses_every_field() -> None:
    """Each field maps to its typed value; durations in seconds."""
    data = {
        "retry": 3,
        "backoffPolicy": "linear",
        "backoffDelay": "PT0.5S",
        "timeout": "PT10S",
        "retryAfterMax": "PT1M",
        "format": "json",
        "deadLetterSink": {"ref": DLS_REF},
    }
    assert DeliverySpec.from_manifest(data) == DeliverySpec(
        retry=3,
        backoff_policy=LIN,
        backoff_delay=0.5,
        timeout=10.0,
        dead_letter_sink=Destination(
            ref=ObjectRef("serving.knative.dev/v1", "Service", "dls", None), uri=None
        ),
        retry_after_max=60.0,
        format="json",
    )


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (None, None),
        ({}, DeliverySpec()),
        ({"retry": 0}, DeliverySpec(retry=0)),
        ({"backoffPolicy": "exponential"}, DeliverySpec(backoff_policy=EXP)),
        ({"backoffDelay": "PT0S"}, DeliverySpec(backoff_delay=0.0)),
        ({"format": "binary"}, DeliverySpec(format="binary")),
        ({"retryAfterMax": "PT0S"}, DeliverySpec(retry_after_max=0.0)),
    ],
    ids=["absent", "empty", "retry-zero", "policy", "zero-delay", "binary", "retry-after-off"],
)
def test_s2_7_delivery_spec_accepts(data: dict[str, Any] | None, expected: Any) -> None:
    """Valid specs parse; an absent spec stays absent and an empty one is not absent."""
    assert DeliverySpec.from_manifest(data) == expected


DELIVERY_ERRORS: list[tuple[str, Any, str]] = [
    ("not-mapping", "retry: 3", r"spec\.delivery: expected a mapping, found 'retry: 3' \(str\)"),
    ("unknown-field", {"retries": 3},
     r"spec\.delivery: unknown field\(s\) retries: expected only deadLetterSink, retry,"),
    ("retry-negative", {"retry": -1},
     r"spec\.delivery\.retry: expected an integer >= 0, found -1 \(int\)"),
    ("retry-string", {"retry": "3"}, r"found '3' \(str\)"),
    ("retry-bool", {"retry": True}, r"found True \(bool\)"),
    ("retry-float", {"retry": 1.5}, r"found 1\.5 \(float\)"),
    ("retry-over-int32", {"retry": 2**31}, r"found 2147483648 \(int\)"),
    ("policy-capitalised", {"backoffPolicy": "Exponential"},
     r"spec\.delivery\.backoffPolicy: expected one of exponential, linear, found 'Exponential'"),
    ("policy-unknown", {"backoffPolicy": "fibonacci"}, "found 'fibonacci'"),
    ("delay-not-iso", {"backoffDelay": "200ms"},
     r"spec\.delivery\.backoffDelay: expected an ISO-8601 duration .*found '200ms'"),
    ("delay-number", {"backoffDelay": 0.2}, r"backoffDelay: .*found 0\.2 \(float\)"),
    ("timeout-zero", {"timeout": "PT0S"},
     r"spec\.delivery\.timeout: expected a non-zero duration, found 'PT0S'"),
    ("timeout-zero-days", {"timeout": "P0D"}, "expected a non-zero duration, found 'P0D'"),
    ("timeout-not-iso", {"timeout": "10"}, r"spec\.delivery\.timeout: expected an ISO-8601"),
    ("retry-after-negative", {"retryAfterMax": "-PT1S"}, r"retryAfterMax: .*not negative"),
    ("format-unknown", {"format": "xml"},
     r"spec\.delivery\.format: expected one of json, binary, found 'xml'"),
    ("dls-empty", {"deadLetterSink": {}},
     r"spec\.delivery\.deadLetterSink: expected at least one of ref and uri, found none"),
    ("dls-relative-uri-alone", {"deadLetterSink": {"uri": "/dls"}},
     r"deadLetterSink\.uri: expected an absolute URI with a host when ref is absent"),
    ("dls-uri-without-scheme", {"deadLetterSink": {"uri": "dls.default.svc"}},
     "expected an absolute URI with a host"),
    ("dls-absolute-uri-with-ref", {"deadLetterSink": {"ref": DLS_REF, "uri": "http://x/"}},
     r"deadLetterSink\.uri: expected a URI relative to ref"),
    ("dls-ref-without-api-version", {"deadLetterSink": {"ref": {"kind": "Service", "name": "x"}}},
     r"deadLetterSink\.ref\.apiVersion: expected a non-empty string, found None"),
    ("dls-ref-empty-name", {"deadLetterSink": {"ref": {**DLS_REF, "name": ""}}},
     r"deadLetterSink\.ref\.name: expected a non-empty string"),
    ("dls-ref-unknown-field", {"deadLetterSink": {"ref": {**DLS_REF, "group": "serving"}}},
     r"deadLetterSink\.ref: unknown field\(s\) group"),
    ("dls-unknown-field", {"deadLetterSink": {"uri": "http://x/", "CACerts": "pem"}},
     r"deadLetterSink: unknown field\(s\) CACerts: expected only ref, uri"),
    ("dls-not-mapping", {"deadLetterSink": "http://x/"},
     r"deadLetterSink: expected a mapping"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("data", "message"), [r[1:] for r in DELIVERY_ERRORS], ids=[r[0] for r in DELIVERY_ERRORS]
)
def test_s2_7_delivery_spec_rejected_like_knative(data: Any, message: str) -> None:
    """Invalid specs are refused with the field, what was expected and what was found."""
    with pytest.raises(ManifestError, match=message):
        DeliverySpec.from_manifest(data)


def test_s2_7_delivery_spec_errors_name_the_given_field() -> None:
    """Callers name the field, e.g. a Broker's delivery."""
    with pytest.raises(ManifestError, match=r"^Broker default: spec\.delivery\.retry: expected"):
        DeliverySpec.from_manifest({"retry": -2}, field="Broker default: spec.delivery")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"uri": "http://dls.default.svc.cluster.local/"},
         Destination(None, "http://dls.default.svc.cluster.local/")),
        ({"ref": DLS_REF, "uri": "/dead"},
         Destination(ObjectRef("serving.knative.dev/v1", "Service", "dls", None), "/dead")),
        ({"ref": {**DLS_REF, "namespace": "ops"}},
         Destination(ObjectRef("serving.knative.dev/v1", "Service", "dls", "ops"), None)),
        # An empty namespace means the parent's namespace, like an absent one (§2.4).
        ({"ref": {**DLS_REF, "namespace": ""}},
         Destination(ObjectRef("serving.knative.dev/v1", "Service", "dls", None), None)),
    ],
    ids=["absolute-uri", "ref-and-relative-uri", "ref-namespace", "ref-empty-namespace"],
)  # fmt: skip
def test_s2_4_destination_forms(data: dict[str, Any], expected: Destination) -> None:
    """A destination is a ref, an absolute uri, or a ref with a relative uri."""
    assert Destination.from_manifest(data, field="spec.subscriber") == expected

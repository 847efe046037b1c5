"""Delivery specs, destinations and which delivery applies, against knative-semantics.md §2.7.

Retries and backoff: test_retries.py; dead-letter extensions: test_deadletter.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from knlocal.errors import ManifestError
from knlocal.eventing.classes import KAFKA_BROKER, MT_CHANNEL_BASED_BROKER
from knlocal.eventing.delivery import (
    BROKER_DEFAULT_DELIVERY,
    BackoffPolicy,
    DeliverySpec,
    Destination,
    ObjectRef,
    effective_delivery,
    parse_iso8601_duration,
)
from knlocal.eventing.retries import backoff_seconds, total_attempts

MT = MT_CHANNEL_BASED_BROKER
KAFKA = KAFKA_BROKER
EXP = BackoffPolicy.EXPONENTIAL
LIN = BackoffPolicy.LINEAR

SUBSCRIBER = "http://user-created.default.svc.cluster.local/"


def test_s0_10_broker_default_delivery() -> None:
    """``config-br-defaults``: retry 10, exponential, PT0.2S, no sink."""
    expected = DeliverySpec(retry=10, backoff_policy=EXP, backoff_delay=0.2)
    assert expected == BROKER_DEFAULT_DELIVERY


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


# --- §2.7 which delivery applies ------------------------------------------------------------

BROKER_DLS = Destination(None, "http://broker-dls.default.svc.cluster.local/")
TRIGGER_DLS = Destination(None, "http://trigger-dls.default.svc.cluster.local/")

BROKER = DeliverySpec(
    retry=5, backoff_policy=LIN, backoff_delay=0.3, timeout=20.0, dead_letter_sink=BROKER_DLS
)
T_FULL = DeliverySpec(retry=2, backoff_policy=EXP, backoff_delay=0.1, dead_letter_sink=TRIGGER_DLS)
T_RETRY_ONLY = DeliverySpec(retry=3)
T_DLS_ONLY = DeliverySpec(dead_letter_sink=TRIGGER_DLS)
T_BACKOFF_ONLY = DeliverySpec(backoff_policy=LIN, backoff_delay=2.0)
T_TIMEOUT_ONLY = DeliverySpec(timeout=5.0)
T_RETRY_ZERO = DeliverySpec(retry=0)
T_EMPTY = DeliverySpec()

# (broker delivery, trigger delivery, expected MT, expected Kafka)
_Merge = tuple[str, DeliverySpec | None, DeliverySpec | None, DeliverySpec, DeliverySpec]
MERGE_ROWS: list[_Merge] = [
    # A Broker without delivery gets config-br-defaults, whatever its class.
    ("no-delivery-anywhere", None, None, BROKER_DEFAULT_DELIVERY,
     DeliverySpec(retry=10, backoff_policy=EXP, backoff_delay=0.2)),
    ("broker-only", BROKER, None, BROKER,
     DeliverySpec(5, LIN, 0.3, 20.0, BROKER_DLS)),
    # MT: the trigger's object as is. Kafka: trigger fields win; timeout 0 → broker's 20.
    ("full-trigger", BROKER, T_FULL, T_FULL,
     DeliverySpec(2, EXP, 0.1, 20.0, TRIGGER_DLS)),
    # MT: retry 3, nothing else, and no dead-letter sink: the Trigger's delivery is copied
    # whole to the Subscription (pkg/reconciler/broker/trigger/trigger.go; knative-semantics.md,
    # corrections to §2.7). Kafka: retry set ⇒ delay 1 s, policy exponential (broker's linear is
    # not inherited).
    ("trigger-retry-only", BROKER, T_RETRY_ONLY, T_RETRY_ONLY,
     DeliverySpec(3, EXP, 1.0, 20.0, BROKER_DLS)),
    # MT: 1 attempt, trigger's sink. Kafka: retry 0 → broker's 5, delay 0 → broker's 0.3,
    # policy the trigger's zero value (exponential).
    ("trigger-dls-only", BROKER, T_DLS_ONLY, DeliverySpec(dead_letter_sink=TRIGGER_DLS),
     DeliverySpec(5, EXP, 0.3, 20.0, TRIGGER_DLS)),
    # Kafka: without dls, retry or timeout the trigger has no egress config at all.
    ("trigger-backoff-only", BROKER, T_BACKOFF_ONLY,
     T_BACKOFF_ONLY,
     DeliverySpec(5, LIN, 0.3, 20.0, BROKER_DLS)),
    # Kafka: a timeout makes an egress config whose zero-valued policy (exponential) wins.
    ("trigger-timeout-only", BROKER, T_TIMEOUT_ONLY,
     T_TIMEOUT_ONLY,
     DeliverySpec(5, EXP, 0.3, 5.0, BROKER_DLS)),
    # MT: retry 0 means no retries. Kafka: 0 is "unset" → broker's 5; delay defaults to 1 s.
    ("trigger-retry-zero", BROKER, T_RETRY_ZERO, T_RETRY_ZERO,
     DeliverySpec(5, EXP, 1.0, 20.0, BROKER_DLS)),
    # MT: an empty (non-null) delivery still replaces the broker's, sink included.
    # Kafka: ignored.
    ("trigger-empty", BROKER, T_EMPTY, T_EMPTY,
     DeliverySpec(5, LIN, 0.3, 20.0, BROKER_DLS)),
    # Default broker: Kafka merges trigger retry 3 (delay 1 s) over retry 10, PT0.2S.
    ("default-broker-trigger-retry", None, T_RETRY_ONLY, T_RETRY_ONLY,
     DeliverySpec(3, EXP, 1.0, None, None)),
    # An explicit empty broker delivery is not defaulted: no retries anywhere.
    ("empty-broker", T_EMPTY, None, T_EMPTY, DeliverySpec()),
    # Kafka broker with only a sink: retry 0, delay 0 (no retry ⇒ no defaulting).
    ("broker-dls-only", DeliverySpec(dead_letter_sink=BROKER_DLS), None,
     DeliverySpec(dead_letter_sink=BROKER_DLS), DeliverySpec(0, EXP, 0.0, None, BROKER_DLS)),
    # Kafka ignores format and retryAfterMax; retry 1 without delay ⇒ 1 s.
    ("broker-format-retry-after", DeliverySpec(retry=1, format="json", retry_after_max=5.0), None,
     DeliverySpec(retry=1, format="json", retry_after_max=5.0), DeliverySpec(1, EXP, 1.0)),
]  # fmt: skip


@pytest.mark.parametrize(
    ("broker", "trigger", "expected_mt", "expected_kafka"),
    [row[1:] for row in MERGE_ROWS],
    ids=[row[0] for row in MERGE_ROWS],
)
def test_s2_7_effective_delivery_per_class(
    broker: DeliverySpec | None,
    trigger: DeliverySpec | None,
    expected_mt: DeliverySpec,
    expected_kafka: DeliverySpec,
) -> None:
    """MT replaces the whole object, sink included; Kafka merges field by field."""
    assert effective_delivery(broker, trigger, MT) == expected_mt
    assert effective_delivery(broker, trigger, KAFKA) == expected_kafka


def test_s2_7_kafka_controller_default_delay_drives_backoff() -> None:
    """A Kafka trigger with ``retry: 3`` alone waits 1·2^1, 1·2^2, 1·2^3 = 2, 4, 8 s."""
    spec = effective_delivery(None, DeliverySpec.from_manifest({"retry": 3}), KAFKA)
    waits = [backoff_seconds(spec, k, KAFKA) for k in range(1, total_attempts(spec))]
    assert waits == pytest.approx([2.0, 4.0, 8.0])


def test_s2_7_mt_trigger_retry_alone_retries_immediately() -> None:
    """An MT trigger with ``retry: 3`` alone (no policy, no delay) retries at once, 3 times."""
    spec = effective_delivery(BROKER, DeliverySpec.from_manifest({"retry": 3}), MT)
    waits = [backoff_seconds(spec, k, MT) for k in range(1, total_attempts(spec))]
    assert waits == [0.0, 0.0, 0.0]


def test_s2_7_mt_trigger_delivery_without_sink_does_not_fall_back_to_the_broker_sink() -> None:
    """Corrections to §2.7 (EVENTING pkg/reconciler/broker/trigger/trigger.go): the Trigger's
    delivery is copied whole to the Subscription, so the Broker's sink is not used; Kafka's
    per-field merge (control-plane MergeEgressConfig) does inherit it."""
    trigger = DeliverySpec.from_manifest({"retry": 1})
    assert effective_delivery(BROKER, trigger, MT).dead_letter_sink is None
    assert effective_delivery(BROKER, trigger, KAFKA).dead_letter_sink == BROKER_DLS

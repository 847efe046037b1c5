"""Which delivery applies to a Trigger, per broker class, against knative-semantics.md §2.7.

Parsing the delivery and destinations: tests/knlocal/apis/test_duck.py.
Retries and backoff: test_retries.py; dead-letter extensions: test_deadletter.py.
"""

from __future__ import annotations

import pytest

from knlocal.apis.classes import KAFKA_BROKER, MT_CHANNEL_BASED_BROKER
from knlocal.apis.duck import (
    BackoffPolicy,
    DeliverySpec,
    Destination,
)
from knlocal.eventing.delivery import BROKER_DEFAULT_DELIVERY, effective_delivery
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

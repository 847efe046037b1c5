"""Retries and backoff per broker class, against knative-semantics.md §2.1 and §2.7.

Every expected value is worked out by hand from the formulas of §2.7; the arithmetic is in the
comments.
"""

from __future__ import annotations

import pytest

from knlocal.eventing.classes import KAFKA_BROKER, MT_CHANNEL_BASED_BROKER
from knlocal.eventing.delivery import (
    BROKER_DEFAULT_DELIVERY,
    BackoffPolicy,
    DeliverySpec,
    effective_delivery,
)
from knlocal.eventing.retries import backoff_seconds, is_retryable, is_success, total_attempts

MT = MT_CHANNEL_BASED_BROKER
KAFKA = KAFKA_BROKER
EXP = BackoffPolicy.EXPONENTIAL
LIN = BackoffPolicy.LINEAR


# --- §2.7 backoff ---------------------------------------------------------------------------

# (broker class, policy, delay d, retry k, expected wait)
BACKOFF_ROWS: list[tuple[str, str, BackoffPolicy | None, float | None, int, float]] = [
    # MT (Go) exponential d·2^(k-1), d = 0.2: 0.2·1, 0.2·2, 0.2·4, 0.2·8
    ("mt-exp-k1", MT, EXP, 0.2, 1, 0.2),
    ("mt-exp-k2", MT, EXP, 0.2, 2, 0.4),
    ("mt-exp-k3", MT, EXP, 0.2, 3, 0.8),
    ("mt-exp-k4", MT, EXP, 0.2, 4, 1.6),
    # MT (Go) linear d·(k-1), d = 0.2: 0.2·0, 0.2·1, 0.2·2, 0.2·3 (first retry immediate)
    ("mt-linear-k1", MT, LIN, 0.2, 1, 0.0),
    ("mt-linear-k2", MT, LIN, 0.2, 2, 0.2),
    ("mt-linear-k3", MT, LIN, 0.2, 3, 0.4),
    ("mt-linear-k4", MT, LIN, 0.2, 4, 0.6),
    # Kafka (Java) exponential d·2^k, d = 0.2: 0.2·2, 0.2·4, 0.2·8, 0.2·16
    ("kafka-exp-k1", KAFKA, EXP, 0.2, 1, 0.4),
    ("kafka-exp-k2", KAFKA, EXP, 0.2, 2, 0.8),
    ("kafka-exp-k3", KAFKA, EXP, 0.2, 3, 1.6),
    ("kafka-exp-k4", KAFKA, EXP, 0.2, 4, 3.2),
    # Kafka (Java) linear d·k, d = 0.2: 0.2·1, 0.2·2, 0.2·3, 0.2·4
    ("kafka-linear-k1", KAFKA, LIN, 0.2, 1, 0.2),
    ("kafka-linear-k2", KAFKA, LIN, 0.2, 2, 0.4),
    ("kafka-linear-k3", KAFKA, LIN, 0.2, 3, 0.6),
    ("kafka-linear-k4", KAFKA, LIN, 0.2, 4, 0.8),
    # d = 1.5 s, k = 3: MT exp 1.5·4 = 6, MT linear 1.5·2 = 3, Kafka exp 1.5·8 = 12, linear 4.5
    ("mt-exp-1.5s-k3", MT, EXP, 1.5, 3, 6.0),
    ("mt-linear-1.5s-k3", MT, LIN, 1.5, 3, 3.0),
    ("kafka-exp-1.5s-k3", KAFKA, EXP, 1.5, 3, 12.0),
    ("kafka-linear-1.5s-k3", KAFKA, LIN, 1.5, 3, 4.5),
    # No policy or no delay: Go waits 0 unless both are set.
    ("mt-no-policy", MT, None, 0.2, 2, 0.0),
    ("mt-no-delay", MT, EXP, None, 2, 0.0),
    ("mt-zero-delay", MT, EXP, 0.0, 2, 0.0),
    # Java waits 0 unless the delay is > 0; no policy is exponential: 0.5·2^1 = 1.0.
    ("kafka-no-delay", KAFKA, EXP, None, 2, 0.0),
    ("kafka-zero-delay", KAFKA, LIN, 0.0, 2, 0.0),
    ("kafka-no-policy-is-exponential", KAFKA, None, 0.5, 1, 1.0),
]


@pytest.mark.parametrize(
    ("broker_class", "policy", "delay", "retry_number", "expected"),
    [row[1:] for row in BACKOFF_ROWS],
    ids=[row[0] for row in BACKOFF_ROWS],
)
def test_s2_7_backoff_table_per_class(
    broker_class: str,
    policy: BackoffPolicy | None,
    delay: float | None,
    retry_number: int,
    expected: float,
) -> None:
    """The wait before retry k follows the §2.7 formula of the class."""
    spec = DeliverySpec(retry=10, backoff_policy=policy, backoff_delay=delay)
    assert backoff_seconds(spec, retry_number, broker_class) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("broker_class", "expected_total"),
    # Go: Σ_{k=1..10} 0.2·2^(k-1) = 0.2·(2^10 - 1) = 0.2·1023 = 204.6
    # Kafka: Σ_{k=1..10} 0.2·2^k = 0.2·(2^11 - 2) = 0.2·2046 = 409.2
    [(MT, 204.6), (KAFKA, 409.2)],
    ids=["mt", "kafka"],
)
def test_s2_7_total_wait_of_the_broker_default(broker_class: str, expected_total: float) -> None:
    """With the default broker delivery, all retries together wait 204.6 s (Go), 409.2 s (Java)."""
    spec = effective_delivery(None, None, broker_class)
    retries = total_attempts(spec) - 1
    total = sum(backoff_seconds(spec, k, broker_class) for k in range(1, retries + 1))
    assert total == pytest.approx(expected_total)


def test_s2_7_retry_number_counts_from_one() -> None:
    """Retry 0 does not exist: the first attempt is not a retry."""
    with pytest.raises(ValueError, match="counts from 1"):
        backoff_seconds(BROKER_DEFAULT_DELIVERY, 0, MT)


@pytest.mark.parametrize(
    ("spec", "expected"),
    # 1 + retry; retry unset = 0 retries; the broker default has 10 retries.
    [(DeliverySpec(), 1), (DeliverySpec(retry=0), 1), (DeliverySpec(retry=3), 4),
     (BROKER_DEFAULT_DELIVERY, 11)],
    ids=["unset", "zero", "three", "broker-default"],
)  # fmt: skip
def test_s2_7_total_attempts_is_one_plus_retry(spec: DeliverySpec, expected: int) -> None:
    """Total attempts = 1 + ``retry``."""
    assert total_attempts(spec) == expected


# --- §2.1 / §2.7 status codes -----------------------------------------------------------------

# (status, retried?) from the §2.1 table and the §2.7 predicate shared by Go and Java.
RETRY_ROWS: list[tuple[int | None, bool]] = [
    (None, True),  # no response: transport error or timeout
    (500, True), (501, True), (502, True), (503, True), (504, True), (599, True),
    (404, True), (408, True), (409, True), (429, True),
    (400, False), (401, False), (403, False), (405, False), (406, False), (410, False),
    (412, False), (413, False), (415, False), (422, False), (499, False),
    (100, False), (101, False), (199, False),  # 1xx: error, not retried
    (300, False), (301, False), (302, False), (304, False), (307, False), (308, False),
    (200, False), (202, False), (204, False),  # success: nothing to retry
]  # fmt: skip


@pytest.mark.parametrize(
    ("status", "expected"), RETRY_ROWS, ids=[str(status) for status, _ in RETRY_ROWS]
)
def test_s2_1_retryable_statuses(status: int | None, expected: bool) -> None:
    """Retried: no response, >= 500, 404, 408, 409, 429; not: 1xx, 3xx, other 4xx."""
    assert is_retryable(status) is expected


@pytest.mark.parametrize(
    ("status", "expected"),
    [(200, True), (201, True), (202, True), (204, True), (299, True),
     (100, False), (199, False), (300, False), (302, False), (404, False), (500, False)],
)  # fmt: skip
def test_s2_1_success_is_any_2xx(status: int, expected: bool) -> None:
    """Only 2xx completes a delivery (§2.7 ``isFailure``: < 200 or >= 300)."""
    assert is_success(status) is expected

"""Which attempts are retried, how many, and the wait before each, per broker class.

The rules each emulated class applies to a delivery spec (knative-semantics.md §2.1, §2.7, §6;
Knative: `pkg/kncloudevents/retries.go` for the Go data plane; the Kafka broker's Java
dispatcher for Kafka). The retrying send itself is :func:`knlocal.eventing.sender.send`.
Everything here is pure: no I/O, no clock, no state.
"""

from typing import Final

from knlocal.eventing.classes import BrokerClass, DataPlane
from knlocal.eventing.delivery import BackoffPolicy, DeliverySpec

__all__ = ["backoff_seconds", "is_retryable", "is_success", "total_attempts"]

# knative-semantics.md §2.1/§2.7: the statuses below 500 that both implementations retry.
_RETRYABLE_4XX: Final = frozenset({404, 408, 409, 429})


def is_success(status: int) -> bool:
    """Tell whether a status ends a delivery successfully: any 2xx (§2.1).

    :param status: HTTP status of the response.
    :return: ``True`` for 200 to 299.
    """
    return 200 <= status < 300


def is_retryable(status: int | None) -> bool:
    """Tell whether a failed attempt is retried (knative-semantics.md §2.1, §2.7).

    Go's ``SelectiveRetry`` and Java's ``isRetryableStatusCode`` agree: no response
    (transport error, timeout), any status >= 500, and 404, 408, 409, 429 are retried;
    1xx, 3xx and other 4xx are not (neither is a success).

    :param status: HTTP status, or ``None`` when no response arrived.
    :return: whether to retry.
    """
    if status is None:
        return True
    return status >= 500 or status in _RETRYABLE_4XX


def total_attempts(spec: DeliverySpec) -> int:
    """Count the attempts a delivery gets: the first plus ``retry`` retries (§2.7).

    :param spec: the effective delivery spec.
    :return: ``1 + retry`` (``1`` when ``retry`` is unset).
    """
    return 1 + (spec.retry or 0)


def backoff_seconds(spec: DeliverySpec, retry_number: int, broker_class: BrokerClass) -> float:
    """Return the wait before retry ``retry_number``, as the broker class computes it.

    knative-semantics.md §2.7 (d = ``backoffDelay``, k = ``retry_number``):

    * MT (Go, go-retryablehttp counts from 0): exponential ``d·2^(k-1)``, linear
      ``d·(k-1)``; ``0`` unless both policy and delay are set.
    * Kafka (Java, called with ``retryCounter + 1``): exponential ``d·2^k``, linear
      ``d·k``; ``0`` unless the delay is positive; no policy means exponential.

    :param spec: the effective delivery spec.
    :param retry_number: which retry, from 1.
    :param broker_class: class of the Broker.
    :return: seconds to wait.
    :raises ValueError: ``retry_number`` is below 1.
    """
    if retry_number < 1:
        raise ValueError(f"retry_number counts from 1, got {retry_number}")
    delay = spec.backoff_delay
    if broker_class.data_plane is DataPlane.JAVA:
        if delay is None or delay <= 0:
            return 0.0
        if spec.backoff_policy is BackoffPolicy.LINEAR:
            return delay * retry_number
        return delay * 2.0**retry_number
    if spec.backoff_policy is None or delay is None:
        return 0.0
    if spec.backoff_policy is BackoffPolicy.LINEAR:
        return delay * (retry_number - 1)
    return delay * 2.0 ** (retry_number - 1)

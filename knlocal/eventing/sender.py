"""The one send path: subscriber, reply and dead-letter sink alike, with retries.

Knative's `pkg/kncloudevents/event_dispatcher.go` (`executeRequest`) and `retries.go`: one
request is retried under the delivery's policy while its failure is retriable; what counts
as a failure and whether it is retriable is decided per answer, so a non-retriable failure
ends the send at once (knative-semantics.md §2.7).
"""

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from knlocal import tracing
from knlocal.eventing.classes import BrokerClass
from knlocal.eventing.delivery import DeliverySpec
from knlocal.eventing.retries import backoff_seconds, is_retryable, is_success

log = logging.getLogger("knlocal.eventing")


@dataclass(frozen=True)
class Reply:
    """What a destination answered."""

    status: int | None
    headers: Mapping[str, str]
    body: bytes
    #: Transport error or timeout text when `status` is None.
    error: str = ""
    #: No answer came within the request timeout.
    timed_out: bool = False


class Target(Protocol):
    """A resolved destination: a subscriber, a dead-letter sink, or a Broker for replies."""

    #: The URL Knative would report (e.g. in `knativeerrordest`).
    url: str

    async def send(self, headers: Mapping[str, str], body: bytes, timeout: float | None) -> Reply:
        """POST an event; never raise for transport errors, return `Reply(status=None)`."""
        ...


@dataclass(frozen=True)
class Failure:
    """A failed attempt: the answer to report and whether another attempt may succeed."""

    answer: Reply
    retriable: bool
    #: False: the dead letter carries no `knativeerror*` extensions for this failure.
    reported: bool = True


#: Classifies an answer: None when it is a success, else the failure.
Check = Callable[[Reply], Failure | None]


def check_status(answer: Reply) -> Failure | None:
    """The plain classification: 2xx succeeds; the rest fails, retriable per `SelectiveRetry`."""
    if answer.status is not None and is_success(answer.status):
        return None
    return Failure(answer, is_retryable(answer.status))


@dataclass(frozen=True)
class RetryPolicy:
    """The retries one send gets: the effective delivery under the class's formulas."""

    delivery: DeliverySpec
    broker_class: BrokerClass

    @property
    def attempts(self) -> int:
        """The first attempt plus `retry` retries (§2.7)."""
        return 1 + (self.delivery.retry or 0)

    @property
    def timeout(self) -> float | None:
        """Per-request timeout: `delivery.timeout`, else the class's default (§2.7)."""
        if self.delivery.timeout is not None:
            return self.delivery.timeout
        return self.broker_class.default_timeout

    def wait_before(self, retry: int) -> float:
        """Seconds to wait before retry `retry` (from 1), by the class's formula (§2.7)."""
        return backoff_seconds(self.delivery, retry, self.broker_class)


@dataclass(frozen=True)
class Sent:
    """How a send ended: the last answer, its failure if any, and the attempts made."""

    answer: Reply
    failure: Failure | None
    attempts: int


async def send(
    target: Target,
    headers: Mapping[str, str],
    body: bytes,
    policy: RetryPolicy,
    check: Check = check_status,
    *,
    about: str = "",
    log_extra: Mapping[str, object] | None = None,
) -> Sent:
    """Send one message to `target`, retrying retriable failures under `policy`.

    :param check: classifies each answer (see :func:`check_status`).
    :param about: what is sent, for the log line of a failed attempt.
    :param log_extra: the `extra` of that log line.
    :return: the outcome; `failure` is None when an attempt succeeded.
    """
    attempt = 0
    waited = 0.0
    while True:
        attempt += 1
        with tracing.attempt_span(target.url, attempt, waited) as span:
            answer = await target.send(tracing.inject(headers), body, policy.timeout)
            failure = check(answer)
            if span is not None:
                retriable = failure is not None and failure.retriable and attempt < policy.attempts
                error = answer.error if failure is not None else ""
                tracing.attempt_result(
                    span, failure.answer.status if failure else answer.status, error, retriable
                )
        if failure is None:
            return Sent(answer, None, attempt)
        log.info(
            "%s to %s: attempt %d/%d failed: %s",
            about,
            target.url,
            attempt,
            policy.attempts,
            failure.answer.status or failure.answer.error,
            extra=log_extra,
        )
        if not failure.retriable or attempt >= policy.attempts:
            return Sent(answer, failure, attempt)
        waited = policy.wait_before(attempt)
        await asyncio.sleep(waited)

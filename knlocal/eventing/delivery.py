"""Which delivery applies to a Trigger, per broker class.

Works out the delivery that applies to a Trigger from the Broker's and the Trigger's
``spec.delivery`` (parsed in :mod:`knlocal.apis.duck`; knative-semantics.md §2.7, §6);
the retry and backoff rules that follow from it are in :mod:`knlocal.eventing.retries`, the
dead-letter extensions in :mod:`knlocal.eventing.deadletter`:

* ``MTChannelBasedBroker`` (Go): the Trigger's delivery replaces the Broker's as a whole,
  dead-letter sink included; retry k waits ``d·2^(k-1)``
  (exponential) or ``d·(k-1)`` (linear), and only when both policy and delay are set.
* ``Kafka`` (Java): Trigger and Broker delivery merge field by field; with ``retry`` set
  the controller defaults the delay to 1 s and the policy to exponential; retry k waits
  ``d·2^k`` or ``d·k``.

Everything here is pure: no I/O, no clock, no state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from knlocal.apis.classes import BrokerClass, DataPlane
from knlocal.apis.duck import BackoffPolicy, DeliverySpec, Destination

__all__ = [
    "BROKER_DEFAULT_DELIVERY",
    "KAFKA_DEFAULT_BACKOFF_DELAY",
    "effective_delivery",
]

#: Kafka controller's ``BROKER_DEFAULT_BACKOFF_DELAY_MS`` (1000 ms), in seconds (§2.7).
KAFKA_DEFAULT_BACKOFF_DELAY: Final = 1.0


#: ``config-br-defaults``: what a Broker without ``spec.delivery`` gets (§0.10, §2.7).
BROKER_DEFAULT_DELIVERY: Final = DeliverySpec(
    retry=10, backoff_policy=BackoffPolicy.EXPONENTIAL, backoff_delay=0.2
)


# --- Which delivery applies ---------------------------------------------------------------


@dataclass(frozen=True)
class _KafkaEgress:
    """The Kafka control plane's ``EgressConfig``: zero values mean "unset"."""

    dead_letter_sink: Destination | None
    retry: int
    backoff_policy: BackoffPolicy
    backoff_delay: float
    timeout: float


def _kafka_egress(spec: DeliverySpec) -> _KafkaEgress | None:
    """Convert a DeliverySpec as the Kafka controller's ``EgressConfigFromDelivery`` does.

    knative-semantics.md §2.7: without ``deadLetterSink``, ``retry`` or ``timeout`` there
    is no egress config at all; with ``retry`` a missing delay becomes 1 s and a missing
    policy exponential; without ``retry`` delay and policy keep their zero values.
    """
    if spec.dead_letter_sink is None and spec.retry is None and spec.timeout is None:
        return None
    if spec.retry is None:
        retry, policy, delay = 0, BackoffPolicy.EXPONENTIAL, 0.0
    else:
        retry = spec.retry
        policy = spec.backoff_policy or BackoffPolicy.EXPONENTIAL
        delay = KAFKA_DEFAULT_BACKOFF_DELAY if spec.backoff_delay is None else spec.backoff_delay
    return _KafkaEgress(spec.dead_letter_sink, retry, policy, delay, spec.timeout or 0.0)


def _merge_kafka_egress(trigger: _KafkaEgress, broker: _KafkaEgress) -> _KafkaEgress:
    """``MergeEgressConfig``: the Trigger's non-zero fields win; its policy always wins."""
    return _KafkaEgress(
        dead_letter_sink=trigger.dead_letter_sink or broker.dead_letter_sink,
        retry=trigger.retry or broker.retry,
        backoff_policy=trigger.backoff_policy,
        backoff_delay=trigger.backoff_delay or broker.backoff_delay,
        timeout=trigger.timeout or broker.timeout,
    )


def effective_delivery(
    broker: DeliverySpec | None, trigger: DeliverySpec | None, broker_class: BrokerClass
) -> DeliverySpec:
    """Work out the delivery a Trigger's events get.

    A Broker without ``spec.delivery`` gets :data:`BROKER_DEFAULT_DELIVERY`, whatever
    its class (knative-semantics.md §2.7). Then, per class:

    * MT: the Trigger's delivery, if it has one, replaces the Broker's as a whole: the
      reconciler copies it to the Subscription, so a Trigger delivery without
      ``deadLetterSink`` has none (EVENTING ``pkg/reconciler/broker/trigger/trigger.go``;
      knative-semantics.md, corrections to §2.7).
    * Kafka: both are converted to egress configs (retry set ⇒ delay defaults to 1 s and
      policy to exponential) and merged field by field, the Trigger's non-zero fields
      winning and its policy always winning when it has an egress config. A Trigger
      cannot lower the Broker's ``retry`` to 0 this way, as in Kafka. ``format`` and
      ``retryAfterMax`` are dropped: the Kafka broker ignores them.

    :param broker: the Broker's ``spec.delivery``, or ``None``.
    :param trigger: the Trigger's ``spec.delivery``, or ``None``.
    :param broker_class: class of the Broker.
    :return: the delivery spec to dispatch with.
    """
    broker_spec = BROKER_DEFAULT_DELIVERY if broker is None else broker
    if broker_class.data_plane is DataPlane.GO:
        return broker_spec if trigger is None else trigger

    trigger_egress = None if trigger is None else _kafka_egress(trigger)
    broker_egress = _kafka_egress(broker_spec)
    if trigger_egress is None:
        egress = broker_egress
    elif broker_egress is None:
        egress = trigger_egress
    else:
        egress = _merge_kafka_egress(trigger_egress, broker_egress)
    if egress is None:
        return DeliverySpec()
    return DeliverySpec(
        retry=egress.retry,
        backoff_policy=egress.backoff_policy,
        backoff_delay=egress.backoff_delay,
        timeout=egress.timeout or None,
        dead_letter_sink=egress.dead_letter_sink,
    )

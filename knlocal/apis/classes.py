"""The Broker classes the local runtime emulates: one :class:`BrokerClass` object each.

Where Knative's implementations disagree (knative-semantics.md §6), the rule of a class is a
field of its object, so no module compares class names. The rules that are whole algorithms
(backoff formula, delivery merging, dead-letter extensions, filter evaluation) follow the
class's data plane: eventing core's Go code or eventing-kafka-broker's Java code.

The objects are data, at the bottom with the other API types (Knative keeps the class
annotation and its values in ``pkg/apis/eventing/register.go``): a Broker is parsed with
its class once; the algorithms that read these fields are in :mod:`knlocal.eventing`.
"""

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from knlocal.errors import ManifestError

#: Annotation on a Broker that selects its implementation (knative-semantics.md §2.1).
BROKER_CLASS_ANNOTATION: Final = "eventing.knative.dev/broker.class"


class DataPlane(enum.Enum):
    """Whose code delivers the events of a class."""

    #: knative/eventing (`pkg/kncloudevents`, `pkg/broker`, `pkg/eventfilter`).
    GO = "go"
    #: knative-extensions/eventing-kafka-broker (`data-plane/`).
    JAVA = "java"


@dataclass(frozen=True)
class BrokerClass:
    """One emulated broker class and the rules in which it differs from the others."""

    #: The value of the `eventing.knative.dev/broker.class` annotation.
    name: str
    data_plane: DataPlane
    #: The `knativebrokerttl` the ingress starts an event with; None: no loop protection (§2.9).
    max_ttl: int | None
    #: Per-request timeout when `delivery.timeout` is unset, in seconds; None: none (§2.7).
    default_timeout: float | None
    #: A 2xx answer whose body is not a CloudEvent is retried: the MT broker-filter turns it
    #: into a 502 (§2.6); the Kafka dispatcher fails it without retry.
    retries_non_event_answer: bool
    #: Events cross binary HTTP hops (ingress → channel → broker-filter) before they are
    #: filtered, so every extension value reaches the filter as a string (§2.3, corrections).
    binary_hops: bool
    #: broker-filter sits between the channel and the subscriber; when its answer to the
    #: channel carries no error info (its 502 for a non-event answer, or no answer in time),
    #: the channel's dead letter gets no `knativeerror*` extensions (`dispatchExecutionInfo
    #: Transformers` in `event_dispatcher.go`; knative-semantics.md, corrections to §2.6/§2.8).
    filter_hop_hides_errors: bool

    def consumer_group(self, namespace: str, trigger: str) -> str:
        """The consumer group of a Trigger (`triggers-consumergroup-template`, §3.1)."""
        return f"knative-trigger-{namespace}-{trigger}"


#: The channel-based broker of Knative Eventing core (Go); its in-memory backend (§3.2).
MT_CHANNEL_BASED_BROKER: Final = BrokerClass(
    name="MTChannelBasedBroker",
    data_plane=DataPlane.GO,
    max_ttl=255,
    default_timeout=None,
    retries_non_event_answer=True,
    binary_hops=True,
    filter_hop_hides_errors=True,
)

#: The Kafka broker of eventing-kafka-broker (Java data plane) (§3.1).
KAFKA_BROKER: Final = BrokerClass(
    name="Kafka",
    data_plane=DataPlane.JAVA,
    max_ttl=None,
    default_timeout=600.0,
    retries_non_event_answer=False,
    binary_hops=False,
    filter_hop_hides_errors=False,
)

#: The RabbitMQ broker of eventing-rabbitmq (§3.3): Go, eventing's dispatcher code as MT, but its
#: dispatcher sends to the subscriber itself (no broker-filter hop) and its ingress keeps no TTL;
#: events cross AMQP headers (strings) before they are filtered.
RABBITMQ_BROKER: Final = BrokerClass(
    name="RabbitMQBroker",
    data_plane=DataPlane.GO,
    max_ttl=None,
    default_timeout=None,
    retries_non_event_answer=True,
    binary_hops=True,
    filter_hop_hides_errors=False,
)

#: Class used when a Broker has no class annotation (§3.2: Knative's default class).
DEFAULT_BROKER_CLASS: Final = MT_CHANNEL_BASED_BROKER

#: Every class the local runtime can emulate, by annotation value.
BROKER_CLASSES: Final[Mapping[str, BrokerClass]] = {
    c.name: c for c in (MT_CHANNEL_BASED_BROKER, KAFKA_BROKER, RABBITMQ_BROKER)
}


def broker_class_named(name: str) -> BrokerClass:
    """Return the class an `eventing.knative.dev/broker.class` annotation names.

    :raises ManifestError: the class is not one the local runtime emulates.
    """
    try:
        return BROKER_CLASSES[name]
    except KeyError:
        expected = ", ".join(sorted(BROKER_CLASSES))
        raise ManifestError(
            f"unsupported broker class {name!r}: expected one of {expected}"
        ) from None

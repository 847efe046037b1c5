"""The Broker classes the local runtime emulates, named exactly as Knative names them."""

from typing import Final

from knlocal.errors import ManifestError

#: Annotation on a Broker that selects its implementation (knative-semantics.md §2.1).
BROKER_CLASS_ANNOTATION: Final = "eventing.knative.dev/broker.class"

#: The channel-based broker of Knative Eventing core (Go); its in-memory backend (§3.2).
MT_CHANNEL_BASED_BROKER: Final = "MTChannelBasedBroker"

#: The Kafka broker of eventing-kafka-broker (Java data plane) (§3.1).
KAFKA_BROKER: Final = "Kafka"

#: The RabbitMQ broker of eventing-rabbitmq (§3.3).
RABBITMQ_BROKER: Final = "RabbitMQBroker"

#: Class used when a Broker has no class annotation (§3.2: Knative's default class).
DEFAULT_BROKER_CLASS: Final = MT_CHANNEL_BASED_BROKER

#: Every class the local runtime can emulate.
SUPPORTED_BROKER_CLASSES: Final = frozenset(
    {MT_CHANNEL_BASED_BROKER, KAFKA_BROKER, RABBITMQ_BROKER}
)


def check_broker_class(broker_class: str) -> str:
    """Return ``broker_class`` unchanged if the local runtime emulates it.

    :param broker_class: value of the ``eventing.knative.dev/broker.class`` annotation.
    :return: the same value.
    :raises ManifestError: the class is not one the local runtime emulates.
    """
    if broker_class not in SUPPORTED_BROKER_CLASSES:
        expected = ", ".join(sorted(SUPPORTED_BROKER_CLASSES))
        raise ManifestError(
            f"unsupported broker class {broker_class!r}: expected one of {expected}"
        )
    return broker_class

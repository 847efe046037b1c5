"""The backends by Broker class (`eventing.knative.dev/broker.class`), explicitly.

The channel-based broker's backend is its channel's: the kind the Broker's ConfigMap names in
`channel-template-spec` (knative-semantics.md §3.2, §3.4).
"""

from collections.abc import Callable, Mapping

import yaml

from knlocal.apis.eventing import Broker
from knlocal.errors import ManifestError
from knlocal.eventing.backends.base import BrokerBackend
from knlocal.eventing.classes import (
    KAFKA_BROKER,
    MT_CHANNEL_BASED_BROKER,
    RABBITMQ_BROKER,
    BrokerClass,
)
from knlocal.settings import Settings

BackendFactory = Callable[[Broker, Mapping[str, str], Settings], BrokerBackend]

#: The ConfigMap keys of a channel template: Knative's, and the legacy one eventing-natss's
#: sample uses (§3.5).
CHANNEL_TEMPLATE_KEYS = ("channel-template-spec", "channelTemplateSpec")


def _memory(broker: Broker, config: Mapping[str, str], settings: Settings) -> BrokerBackend:
    from knlocal.eventing.backends.memory import MemoryBackend

    return MemoryBackend(broker, config, settings)


def _kafka(broker: Broker, config: Mapping[str, str], settings: Settings) -> BrokerBackend:
    # Imported on use: kafka-python is only needed when a Kafka broker is configured.
    from knlocal.eventing.backends.kafka import KafkaBackend

    return KafkaBackend(broker, config, settings)


def _rabbitmq(broker: Broker, config: Mapping[str, str], settings: Settings) -> BrokerBackend:
    from knlocal.eventing.backends.rabbitmq import RabbitMQBackend

    return RabbitMQBackend(broker, config, settings)


def _nats(broker: Broker, config: Mapping[str, str], settings: Settings) -> BrokerBackend:
    from knlocal.eventing.backends.nats import NatsBackend

    return NatsBackend(broker, config, settings)


#: The channel kinds the channel-based broker can use here (§3.2, §3.4).
CHANNELS: dict[str, BackendFactory] = {
    "InMemoryChannel": _memory,
    "NatsJetStreamChannel": _nats,
}


def _channel_based(broker: Broker, config: Mapping[str, str], settings: Settings) -> BrokerBackend:
    template = next((config[k] for k in CHANNEL_TEMPLATE_KEYS if k in config), None)
    # No template: Knative's default channel, the InMemoryChannel (§3.2).
    kind = "InMemoryChannel"
    if template is not None:
        parsed = yaml.safe_load(template)
        kind = parsed.get("kind", "") if isinstance(parsed, dict) else ""
    try:
        factory = CHANNELS[kind]
    except KeyError:
        raise ManifestError(
            f"Broker {broker.namespace}/{broker.name}: channel template names kind {kind!r};"
            f" the local runtime emulates {', '.join(CHANNELS)}"
        ) from None
    return factory(broker, config, settings)


BACKENDS: dict[BrokerClass, BackendFactory] = {
    MT_CHANNEL_BASED_BROKER: _channel_based,
    KAFKA_BROKER: _kafka,
    RABBITMQ_BROKER: _rabbitmq,
}


def create(broker: Broker, config: Mapping[str, str], settings: Settings) -> BrokerBackend:
    """Build the backend of a Broker's class (and, channel-based, of its channel's kind).

    :raises ManifestError: the class or channel is not one the local runtime emulates.
    """
    try:
        factory = BACKENDS[broker.broker_class]
    except KeyError:
        raise ManifestError(
            f"Broker {broker.namespace}/{broker.name} has class {broker.broker_class.name!r};"
            f" the local runtime emulates {', '.join(c.name for c in BACKENDS)}"
        ) from None
    return factory(broker, config, settings)

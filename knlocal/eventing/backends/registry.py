"""The backends by Broker class (`eventing.knative.dev/broker.class`), explicitly."""

from collections.abc import Callable, Mapping

from knlocal.errors import ManifestError
from knlocal.eventing.backends.base import BrokerBackend
from knlocal.eventing.classes import KAFKA_BROKER, MT_CHANNEL_BASED_BROKER, BrokerClass
from knlocal.manifests import Broker
from knlocal.settings import Settings

BackendFactory = Callable[[Broker, Mapping[str, str], Settings], BrokerBackend]


def _memory(broker: Broker, config: Mapping[str, str], settings: Settings) -> BrokerBackend:
    from knlocal.eventing.backends.memory import MemoryBackend

    return MemoryBackend(broker, config, settings)


def _kafka(broker: Broker, config: Mapping[str, str], settings: Settings) -> BrokerBackend:
    # Imported on use: kafka-python is only needed when a Kafka broker is configured.
    from knlocal.eventing.backends.kafka import KafkaBackend

    return KafkaBackend(broker, config, settings)


BACKENDS: dict[BrokerClass, BackendFactory] = {
    MT_CHANNEL_BASED_BROKER: _memory,
    KAFKA_BROKER: _kafka,
}


def create(broker: Broker, config: Mapping[str, str], settings: Settings) -> BrokerBackend:
    """Build the backend of a Broker's class.

    :raises ManifestError: the class is not one the local runtime emulates.
    """
    try:
        factory = BACKENDS[broker.broker_class]
    except KeyError:
        raise ManifestError(
            f"Broker {broker.namespace}/{broker.name} has class {broker.broker_class.name!r};"
            f" the local runtime emulates {', '.join(c.name for c in BACKENDS)}"
        ) from None
    return factory(broker, config, settings)

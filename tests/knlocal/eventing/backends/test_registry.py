"""The registry picks the backend by class and, channel-based, by channel kind (§3.2, §3.4)."""

import pytest

from knlocal.apis.eventing import Broker
from knlocal.errors import ManifestError
from knlocal.eventing.backends import registry
from knlocal.eventing.backends.kafka import KafkaBackend
from knlocal.eventing.backends.memory import MemoryBackend
from knlocal.eventing.backends.nats import NatsBackend
from knlocal.eventing.backends.rabbitmq import RabbitMQBackend
from knlocal.eventing.classes import (
    KAFKA_BROKER,
    MT_CHANNEL_BASED_BROKER,
    RABBITMQ_BROKER,
    BrokerClass,
)
from knlocal.settings import Settings

SETTINGS = Settings()


def template(kind: str, key: str = "channel-template-spec") -> dict[str, str]:
    """A channel-template ConfigMap's data naming `kind`."""
    return {key: f"apiVersion: messaging.knative.dev/v1\nkind: {kind}\n"}


@pytest.mark.parametrize(
    ("broker_class", "config", "expected"),
    [
        (MT_CHANNEL_BASED_BROKER, {}, MemoryBackend),
        (MT_CHANNEL_BASED_BROKER, template("InMemoryChannel"), MemoryBackend),
        (MT_CHANNEL_BASED_BROKER, template("NatsJetStreamChannel"), NatsBackend),
        # eventing-natss's sample writes the legacy key (§3.5).
        (
            MT_CHANNEL_BASED_BROKER,
            template("NatsJetStreamChannel", "channelTemplateSpec"),
            NatsBackend,
        ),
        (KAFKA_BROKER, {}, KafkaBackend),
        (RABBITMQ_BROKER, {}, RabbitMQBackend),
    ],
)
def test_s3_backend_by_class_and_channel(
    broker_class: BrokerClass, config: dict[str, str], expected: type
) -> None:
    """Each class (and channel kind) gets its backend."""
    broker = Broker("default", "default", broker_class, None, None)
    assert type(registry.create(broker, config, SETTINGS)) is expected


def test_s3_2_unemulated_channel_kind_is_refused_with_the_kinds_we_have() -> None:
    """A KafkaChannel template is a ManifestError naming what the runtime emulates."""
    broker = Broker("default", "default", MT_CHANNEL_BASED_BROKER, None, None)
    with pytest.raises(
        ManifestError, match=r"'KafkaChannel'.*InMemoryChannel, NatsJetStreamChannel"
    ):
        registry.create(broker, template("KafkaChannel"), SETTINGS)

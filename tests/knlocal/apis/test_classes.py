"""The emulated broker classes (knative-semantics.md §3, §6)."""

import pytest

from knlocal.apis.classes import (
    BROKER_CLASSES,
    KAFKA_BROKER,
    MT_CHANNEL_BASED_BROKER,
    RABBITMQ_BROKER,
    broker_class_named,
)
from knlocal.errors import ManifestError


def test_s3_classes_are_found_by_their_annotation_value() -> None:
    """`eventing.knative.dev/broker.class` names a class exactly as Knative spells it."""
    assert broker_class_named("MTChannelBasedBroker") is MT_CHANNEL_BASED_BROKER
    assert broker_class_named("Kafka") is KAFKA_BROKER
    assert broker_class_named("RabbitMQBroker") is RABBITMQ_BROKER
    assert set(BROKER_CLASSES) == {"MTChannelBasedBroker", "Kafka", "RabbitMQBroker"}


def test_s3_unknown_broker_class_is_refused() -> None:
    """Only the emulated classes are accepted; the error lists them."""
    with pytest.raises(ManifestError, match="unsupported broker class 'NatsJetStreamBroker'"):
        broker_class_named("NatsJetStreamBroker")
    with pytest.raises(
        ManifestError, match="expected one of Kafka, MTChannelBasedBroker, RabbitMQBroker"
    ):
        broker_class_named("kafka")  # the annotation is case-sensitive (§3.1)


def test_s6_rules_where_the_classes_disagree() -> None:
    """§2.9 TTL only in MT; §2.7 Kafka's 600 s default timeout; §2.6 MT retries a 502."""
    assert (MT_CHANNEL_BASED_BROKER.max_ttl, KAFKA_BROKER.max_ttl) == (255, None)
    assert (MT_CHANNEL_BASED_BROKER.default_timeout, KAFKA_BROKER.default_timeout) == (None, 600)
    assert MT_CHANNEL_BASED_BROKER.retries_non_event_answer
    assert not KAFKA_BROKER.retries_non_event_answer
    # §3.1: the consumer group template of the Kafka broker, used for every class here.
    assert KAFKA_BROKER.consumer_group("ns", "t") == "knative-trigger-ns-t"

"""The Kafka backend: Knative's Kafka broker (eventing-kafka-broker) on a real Kafka.

The layout is Knative's (knative-semantics.md §3.1), so a cluster's tools read what we write:

- one topic per Broker, ``knative-broker-<namespace>-<name>``, created on open with the
  partitions, replication factor and ``default.topic.config.*`` of the Broker's ConfigMap;
- events in binary content mode: ``ce_*`` headers, ``content-type``, key = ``partitionkey``;
- a producer with ``acks=all``: :meth:`KafkaBackend.publish` returns once Kafka acknowledged the
  record, so the ingress answers 202 only for stored events, and 503 otherwise (§2.2);
- one consumer group per Trigger, ``knative-trigger-<namespace>-<name>``, which starts at the end
  of the topic when new (§3.1); offsets are committed by hand and in order, only up to the first
  record not yet acknowledged, so whatever was not handled comes back after a crash (§3.1, §5).

The data plane has Knative's shape: a **receiver** process (ingress → producer,
:mod:`.receiver`) and a **dispatcher** process (a consumer-group member per Trigger, ordered
commits, :mod:`.dispatcher` and :mod:`.group`), started, watched and restarted by the runtime
(:mod:`.supervisor`). kafka-python's blocking clients and their threads live there, not in the
runtime's interpreter, whose event loop keeps the ingress, the activators and the delivery to
subscribers (:mod:`knlocal.eventing.dispatcher`, shared by every backend). They talk over a
socket pair, a batch of messages per frame (:mod:`.wire`); :mod:`.backend` is the runtime's side.
"""

from knlocal.eventing.backends.kafka.backend import KafkaBackend, KafkaSubscription
from knlocal.eventing.backends.kafka.config import LINGER_MS, MAX_UNACKED, topic_name

__all__ = ["LINGER_MS", "MAX_UNACKED", "KafkaBackend", "KafkaSubscription", "topic_name"]

"""`eventing.knative.dev/v1alpha1` RabbitmqBrokerConfig and the RabbitMQ Trigger annotation.

eventing-rabbitmq: `pkg/apis/eventing/v1alpha1/rabbitmq_types.go` (the config) and
`pkg/apis/eventing/v1/trigger_validation.go` (the parallelism annotation); knative-semantics.md
§3.3.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from knlocal.apis.meta import ObjectMeta, mapping, string
from knlocal.errors import ManifestError

#: RabbitMQ broker Trigger annotation: deliveries in flight, 1 to 1000; 1 (the default) keeps the
#: queue's order (§3.3).
PARALLELISM_ANNOTATION = "rabbitmq.eventing.knative.dev/parallelism"
#: Its bounds (eventing-rabbitmq `pkg/apis/eventing/v1/trigger_validation.go`).
PARALLELISM_RANGE = range(1, 1001)

#: Queue types eventing-rabbitmq accepts in `RabbitmqBrokerConfig.spec.queueType` (§3.3).
RABBITMQ_QUEUE_TYPES = ("quorum", "classic")


@dataclass(frozen=True)
class RabbitmqBrokerConfig:
    """A RabbitMQ Broker's config (`eventing.knative.dev/v1alpha1`, §3.3).

    :ivar cluster: the `rabbitmqClusterReference` as `namespace/name`; the local runtime maps it
        to its RabbitMQ (RABBITMQ_URL).
    """

    name: str
    namespace: str
    cluster: str
    queue_type: str = "quorum"
    vhost: str = "/"

    def data(self) -> Mapping[str, str]:
        """The config as the backend takes it (`BrokerBackend.config`): the spec's keys."""
        return {
            "rabbitmqClusterReference": self.cluster,
            "queueType": self.queue_type,
            "vhost": self.vhost,
        }


def parse_rabbitmq_broker_config(meta: ObjectMeta, spec: Mapping[str, Any]) -> RabbitmqBrokerConfig:
    """Read a RabbitmqBrokerConfig: its cluster reference, queue type and vhost.

    :raises ManifestError: naming the file, the object, the field, what was expected and found.
    """
    try:
        reference = mapping(spec.get("rabbitmqClusterReference"), "spec.rabbitmqClusterReference")
        cluster = string(reference, "name", "spec.rabbitmqClusterReference")
        if not cluster:
            raise ManifestError(
                "spec.rabbitmqClusterReference.name: expected a non-empty string, found none"
            )
        cluster_namespace = string(reference, "namespace", "spec.rabbitmqClusterReference")
        queue_type = string(spec, "queueType", "spec", "quorum")
        if queue_type not in RABBITMQ_QUEUE_TYPES:
            raise ManifestError(
                f"spec.queueType: expected one of {', '.join(RABBITMQ_QUEUE_TYPES)},"
                f" found {queue_type!r}"
            )
        return RabbitmqBrokerConfig(
            name=meta.name,
            namespace=meta.namespace,
            cluster=f"{cluster_namespace or meta.namespace}/{cluster}",
            queue_type=queue_type,
            vhost=string(spec, "vhost", "spec") or "/",
        )
    except ManifestError as exc:
        raise ManifestError(f"{meta.where}: {exc}") from None


def parse_parallelism(annotations: Mapping[str, str]) -> int | None:
    """A Trigger's `rabbitmq.eventing.knative.dev/parallelism`, or None when unset.

    :raises ManifestError: not a whole number from 1 to 1000.
    """
    value = annotations.get(PARALLELISM_ANNOTATION)
    if value is None:
        return None
    text = str(value).strip()
    if not text.isdigit() or int(text) not in PARALLELISM_RANGE:
        raise ManifestError(
            f"metadata.annotations.{PARALLELISM_ANNOTATION}: expected a whole number from 1 to"
            f" 1000, found {value!r}"
        )
    return int(text)

"""`eventing.knative.dev/v1` Broker and Trigger (Knative: `pkg/apis/eventing/v1`).

A Trigger's `subscriber` and both objects' `delivery` are Knative's duck types
(:class:`~knlocal.apis.duck.Destination`, :class:`~knlocal.apis.duck.DeliverySpec`),
validated as the webhook validates them; its filters are :mod:`knlocal.apis.filters`.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from knlocal.apis.classes import (
    BROKER_CLASS_ANNOTATION,
    DEFAULT_BROKER_CLASS,
    BrokerClass,
    broker_class_named,
)
from knlocal.apis.duck import DeliverySpec, Destination, ObjectRef
from knlocal.apis.filters import TriggerFilters, parse_filters
from knlocal.apis.meta import ObjectMeta, mapping, required, string
from knlocal.apis.rabbitmq import parse_parallelism
from knlocal.errors import ManifestError

#: Kafka broker Trigger annotation selecting per-partition order (§3.1).
DELIVERY_ORDER_ANNOTATION = "kafka.eventing.knative.dev/delivery.order"


@dataclass(frozen=True)
class Broker:
    """A Broker (`eventing.knative.dev/v1`)."""

    name: str
    namespace: str
    broker_class: BrokerClass
    #: `spec.config`: the object holding the class's settings (a ConfigMap for Kafka), or None.
    config: ObjectRef | None
    delivery: DeliverySpec | None

    @property
    def key(self) -> str:
        """`<namespace>/<name>`, as the status and fault plans name it."""
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class Trigger:
    """A Trigger (`eventing.knative.dev/v1`)."""

    name: str
    namespace: str
    #: The Broker's name, in the Trigger's namespace.
    broker: str
    filters: TriggerFilters
    subscriber: Destination
    delivery: DeliverySpec | None
    #: `kafka.eventing.knative.dev/delivery.order: ordered` (§3.1).
    ordered: bool = False
    annotations: Mapping[str, str] = field(default_factory=dict)
    #: `rabbitmq.eventing.knative.dev/parallelism`, when set (§3.3).
    parallelism: int | None = None

    @property
    def key(self) -> str:
        """`<namespace>/<name>`, as the status and fault plans name it."""
        return f"{self.namespace}/{self.name}"

    @property
    def filter_attributes(self) -> Mapping[str, str]:
        """The legacy `spec.filter.attributes` (exact values; "" = any value) a backend may route
        on (RabbitMQ binds its queue on them, §3.3); empty when a non-empty `spec.filters`
        overrides them (§2.3), so that routing never drops an event the filters accept."""
        return {} if self.filters.filters else self.filters.attributes


def parse_broker(meta: ObjectMeta, spec: Mapping[str, Any]) -> Broker:
    """Read a Broker: its class annotation, `spec.config` and `spec.delivery`.

    :raises ManifestError: naming the file, the Broker, the field, what was expected and found.
    """
    try:
        class_name = meta.annotations.get(BROKER_CLASS_ANNOTATION, DEFAULT_BROKER_CLASS.name)
        return Broker(
            name=meta.name,
            namespace=meta.namespace,
            broker_class=broker_class_named(class_name),
            config=_config_ref(spec.get("config"), meta.namespace),
            delivery=DeliverySpec.from_manifest(spec.get("delivery")),
        )
    except ManifestError as exc:
        raise ManifestError(f"{meta.where}: {exc}") from None


def _config_ref(value: Any, namespace: str) -> ObjectRef | None:
    """`spec.config` (a KReference); its namespace defaults to the Broker's."""
    if value is None:
        return None
    section = mapping(value, "spec.config")
    reference = {}
    for key in ("kind", "name"):
        reference[key] = string(section, key, "spec.config")
        if not reference[key]:
            raise ManifestError(f"spec.config.{key}: expected a non-empty string, found none")
    return ObjectRef(
        api_version=string(section, "apiVersion", "spec.config", "v1"),
        kind=reference["kind"],
        name=reference["name"],
        namespace=string(section, "namespace", "spec.config") or namespace,
    )


def parse_trigger(meta: ObjectMeta, spec: Mapping[str, Any]) -> Trigger:
    """Read a Trigger: broker, filters, subscriber, delivery, its ordering and parallelism
    annotations.

    :raises ManifestError: naming the file, the Trigger, the field, what was expected and found.
    """
    try:
        filters = parse_filters(spec)
        order = meta.annotations.get(DELIVERY_ORDER_ANNOTATION, "unordered").lower()
        if order not in ("ordered", "unordered"):
            raise ManifestError(
                f"metadata.annotations.{DELIVERY_ORDER_ANNOTATION}: expected ordered or"
                f" unordered, found {order!r}"
            )
        broker = string(spec, "broker", "spec")
        if not broker:
            raise ManifestError("spec.broker: missing required field")
        subscriber = required(spec, "subscriber", "spec")
        return Trigger(
            name=meta.name,
            namespace=meta.namespace,
            broker=broker,
            filters=filters,
            subscriber=Destination.from_manifest(subscriber, field="spec.subscriber"),
            delivery=DeliverySpec.from_manifest(spec.get("delivery")),
            ordered=order == "ordered",
            annotations=meta.annotations,
            parallelism=parse_parallelism(meta.annotations),
        )
    except ManifestError as exc:
        raise ManifestError(f"{meta.where}: {exc}") from None

"""Read the Knative manifests (knative/, brokers/<broker>/, triggers/) into frozen dataclasses.

Config flows one way: YAML → these values → the runtime's constructors. Only the kinds the
runtime runs are read; every other object (e.g. an InMemoryChannel template) is kept as a
ConfigMap or ignored. A reference to something that does not exist is an error at load time.
"""

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from knlocal.errors import ManifestError
from knlocal.eventing.classes import (
    BROKER_CLASS_ANNOTATION,
    DEFAULT_BROKER_CLASS,
    BrokerClass,
    broker_class_named,
)
from knlocal.eventing.delivery import DeliverySpec, Destination
from knlocal.eventing.filters import validate_trigger_filters
from knlocal.settings import Settings
from knlocal.sources import ping

#: Kafka broker Trigger annotation selecting per-partition order (§3.1).
DELIVERY_ORDER_ANNOTATION = "kafka.eventing.knative.dev/delivery.order"

#: RabbitMQ broker Trigger annotation: deliveries in flight, 1 to 1000; 1 (the default) keeps the
#: queue's order (§3.3).
PARALLELISM_ANNOTATION = "rabbitmq.eventing.knative.dev/parallelism"
#: Its bounds (eventing-rabbitmq `pkg/apis/eventing/v1/trigger_validation.go`).
PARALLELISM_RANGE = range(1, 1001)

#: The label that keeps a Knative Service off the public ingress: its Route gets only the
#: cluster-local host (knative.dev/networking pkg/apis/networking/register.go, VisibilityLabelKey).
VISIBILITY_LABEL = "networking.knative.dev/visibility"


@dataclass(frozen=True)
class KnativeService:
    """A Knative Service (`serving.knative.dev/v1`), as the runtime needs it."""

    name: str
    namespace: str
    #: The revision template's annotations (autoscaling settings live here, §1.3).
    annotations: Mapping[str, str]
    container_concurrency: int
    timeout_seconds: int
    env: Mapping[str, str]
    image: str
    #: Only reachable from inside the cluster (`networking.knative.dev/visibility: cluster-local`).
    cluster_local: bool = False

    @property
    def revision(self) -> str:
        """The revision name Knative gives the first revision: `<name>-00001`."""
        return f"{self.name}-00001"

    @property
    def cluster_host(self) -> str:
        """The Service's cluster-local host name."""
        return f"{self.name}.{self.namespace}.svc.cluster.local"


@dataclass(frozen=True)
class Broker:
    """A Broker (`eventing.knative.dev/v1`)."""

    name: str
    namespace: str
    broker_class: BrokerClass
    config: Mapping[str, Any] | None
    delivery: DeliverySpec | None


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


@dataclass(frozen=True)
class Trigger:
    """A Trigger; `spec` is kept whole for the filter parser (filters.py)."""

    name: str
    namespace: str
    broker: str
    spec: Mapping[str, Any]
    annotations: Mapping[str, str]
    subscriber: Destination
    delivery: DeliverySpec | None
    #: `kafka.eventing.knative.dev/delivery.order: ordered` (§3.1).
    ordered: bool
    #: `rabbitmq.eventing.knative.dev/parallelism`, when set (§3.3).
    parallelism: int | None = None

    @property
    def filter_attributes(self) -> Mapping[str, str]:
        """See :func:`filter_attributes`."""
        return filter_attributes(self.spec)


def filter_attributes(trigger_spec: Mapping[str, Any]) -> Mapping[str, str]:
    """A Trigger's legacy `spec.filter.attributes` (exact values; "" = any value), else empty."""
    attributes = (trigger_spec.get("filter") or {}).get("attributes") or {}
    return {str(k): str(v) for k, v in attributes.items()}


@dataclass(frozen=True)
class SinkBinding:
    """A SinkBinding whose subject is a Knative Service and whose sink is a Broker."""

    name: str
    namespace: str
    subject: str
    sink: Mapping[str, Any]


@dataclass(frozen=True)
class Route:
    """One public-API route: requests matching method and path go to a Knative Service."""

    method: str | None
    path_exact: str | None
    path_prefix: str | None
    service: str

    def matches_path(self, path: str) -> bool:
        """Whether `path` matches this route's URI rule."""
        if self.path_exact is not None:
            return path == self.path_exact
        return self.path_prefix is not None and path.startswith(self.path_prefix)


@dataclass(frozen=True)
class System:
    """Everything the manifests declare, cross-checked."""

    services: Mapping[str, KnativeService]
    brokers: Mapping[tuple[str, str], Broker]
    triggers: tuple[Trigger, ...]
    sink_bindings: tuple[SinkBinding, ...]
    routes: tuple[Route, ...]
    config_maps: Mapping[tuple[str, str], Mapping[str, str]] = field(default_factory=dict)
    ping_sources: tuple[ping.PingSource, ...] = ()
    rabbitmq_broker_configs: Mapping[tuple[str, str], RabbitmqBrokerConfig] = field(
        default_factory=dict
    )

    def config_map(self, namespace: str, name: str) -> Mapping[str, str]:
        """Return a ConfigMap's data, or an empty mapping when it is not declared."""
        return self.config_maps.get((namespace, name), {})

    def broker_config(self, broker: Broker) -> Mapping[str, str]:
        """The data of what a Broker's `spec.config` names: a ConfigMap or RabbitmqBrokerConfig."""
        ref = broker.config or {}
        key = (ref.get("namespace", broker.namespace), str(ref.get("name", "")))
        if ref.get("kind") == "RabbitmqBrokerConfig":
            return self.rabbitmq_broker_configs[key].data()
        if ref.get("kind", "ConfigMap") != "ConfigMap" or not ref.get("name"):
            return {}
        return self.config_map(*key)


def load(settings: Settings) -> System:
    """Load the manifests that `settings` select: knative/, brokers/<broker>/, triggers/, sources/.

    With the `local` profile, knative/local/ adds the local machine's cluster configuration.

    :raises ManifestError: naming the file and what is wrong in it.
    """
    root = settings.manifests
    broker_dir = root / "brokers" / settings.broker
    if not broker_dir.is_dir():
        raise ManifestError(f"no broker manifests for BROKER={settings.broker}: {broker_dir}")
    files = [
        *sorted((root / "knative").glob("*.yaml")),
        *sorted((root / "knative" / "services").glob("*.yaml")),
        *sorted(broker_dir.glob("*.yaml")),
        *sorted((root / "triggers").glob("*.yaml")),
        *sorted((root / "sources").glob("*.yaml")),
    ]
    if settings.profile == "local":
        files += sorted((root / "knative" / "local").glob("*.yaml"))
    return build(_documents(files))


def build(documents: list[tuple[Path, dict[str, Any]]]) -> System:
    """Turn parsed manifest documents into a :class:`System` and check its references."""
    services: dict[str, KnativeService] = {}
    brokers: dict[tuple[str, str], Broker] = {}
    triggers: list[Trigger] = []
    bindings: list[SinkBinding] = []
    routes: list[Route] = []
    config_maps: dict[tuple[str, str], dict[str, str]] = {}
    pings: list[tuple[Path, ping.PingSource]] = []
    rabbitmq_configs: dict[tuple[str, str], RabbitmqBrokerConfig] = {}
    # The file each reference came from, so that a dangling one is reported with its file.
    origins: list[tuple[Path, Trigger | SinkBinding | Route]] = []
    for path, doc in documents:
        kind = f"{doc.get('apiVersion', '')}/{doc.get('kind', '')}"
        meta = doc.get("metadata") or {}
        name = _require(meta, "name", path)
        namespace = meta.get("namespace", "default")
        spec = doc.get("spec") or {}
        if kind == "serving.knative.dev/v1/Service":
            labels = meta.get("labels") or {}
            services[name] = _service(
                path, name, namespace, spec, labels.get(VISIBILITY_LABEL) == "cluster-local"
            )
        elif kind == "eventing.knative.dev/v1/Broker":
            brokers[(namespace, name)] = _broker(path, name, namespace, meta, spec)
        elif kind == "eventing.knative.dev/v1/Trigger":
            triggers.append(_trigger(path, name, namespace, meta, spec))
            origins.append((path, triggers[-1]))
        elif kind == "sources.knative.dev/v1/SinkBinding":
            subject = _require(spec, "subject", path)
            bindings.append(
                SinkBinding(
                    name, namespace, _require(subject, "name", path), _require(spec, "sink", path)
                )
            )
            origins.append((path, bindings[-1]))
        elif kind == "sources.knative.dev/v1/PingSource":
            pings.append((path, ping.from_manifest(path, name, namespace, spec)))
        elif kind == "networking.istio.io/v1/VirtualService":
            for route in _routes(path, spec):
                routes.append(route)
                origins.append((path, route))
        elif kind == "eventing.knative.dev/v1alpha1/RabbitmqBrokerConfig":
            rabbitmq_configs[(namespace, name)] = _rabbitmq_config(path, name, namespace, spec)
        elif kind == "v1/ConfigMap":
            config_maps[(namespace, name)] = {
                str(k): str(v) for k, v in (doc.get("data") or {}).items()
            }
    system = System(
        services,
        brokers,
        tuple(triggers),
        tuple(bindings),
        tuple(routes),
        config_maps,
        tuple(source for _, source in pings),
        rabbitmq_configs,
    )
    _check_references(system, origins)
    _check_broker_configs(system)
    for path, source in pings:
        ref = source.sink.ref
        if ref is not None and ref.kind == "Service" and ref.name not in system.services:
            raise ManifestError(
                f"{path}: PingSource {source.name} sink refers to Knative Service"
                f" {ref.name!r}: not found"
            )
    return system


def _documents(files: list[Path]) -> list[tuple[Path, dict[str, Any]]]:
    documents = []
    for path in files:
        try:
            for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
                if doc is None:
                    continue
                if not isinstance(doc, dict):
                    raise ManifestError(f"{path}: expected a mapping per document; found {doc!r}")
                documents.append((path, doc))
        except yaml.YAMLError as exc:
            raise ManifestError(f"{path}: not valid YAML: {exc}") from exc
    return documents


def _service(
    path: Path, name: str, namespace: str, spec: Mapping[str, Any], cluster_local: bool
) -> KnativeService:
    template = _require(spec, "template", path)
    template_spec = _require(template, "spec", path)
    containers = _require(template_spec, "containers", path)
    if len(containers) != 1:
        raise ManifestError(f"{path}: expected one container; found {len(containers)}")
    container = containers[0]
    env = {e["name"]: str(e.get("value", "")) for e in container.get("env") or []}
    return KnativeService(
        name=name,
        namespace=namespace,
        annotations=dict((template.get("metadata") or {}).get("annotations") or {}),
        container_concurrency=int(template_spec.get("containerConcurrency", 0)),
        timeout_seconds=int(template_spec.get("timeoutSeconds", 300)),
        env=env,
        image=_require(container, "image", path),
        cluster_local=cluster_local,
    )


def _broker(
    path: Path, name: str, namespace: str, meta: Mapping[str, Any], spec: Mapping[str, Any]
) -> Broker:
    annotations = meta.get("annotations") or {}
    try:
        class_name = annotations.get(BROKER_CLASS_ANNOTATION, DEFAULT_BROKER_CLASS.name)
        return Broker(
            name=name,
            namespace=namespace,
            broker_class=broker_class_named(class_name),
            config=spec.get("config"),
            delivery=DeliverySpec.from_manifest(spec.get("delivery")),
        )
    except ManifestError as exc:
        raise ManifestError(f"{path}: Broker {namespace}/{name}: {exc}") from None


def _rabbitmq_config(
    path: Path, name: str, namespace: str, spec: Mapping[str, Any]
) -> RabbitmqBrokerConfig:
    where = f"{path}: RabbitmqBrokerConfig {namespace}/{name}"
    reference = spec.get("rabbitmqClusterReference") or {}
    if not reference.get("name"):
        raise ManifestError(f"{where}: expected spec.rabbitmqClusterReference.name; found none")
    queue_type = str(spec.get("queueType", "quorum"))
    if queue_type not in RABBITMQ_QUEUE_TYPES:
        raise ManifestError(
            f"{where}: spec.queueType: expected one of {', '.join(RABBITMQ_QUEUE_TYPES)};"
            f" found {queue_type!r}"
        )
    return RabbitmqBrokerConfig(
        name=name,
        namespace=namespace,
        cluster=f"{reference.get('namespace', namespace)}/{reference['name']}",
        queue_type=queue_type,
        vhost=str(spec.get("vhost") or "/"),
    )


def _check_broker_configs(system: System) -> None:
    for (namespace, name), broker in system.brokers.items():
        ref = broker.config or {}
        if ref.get("kind") != "RabbitmqBrokerConfig":
            continue
        key = (ref.get("namespace", namespace), str(ref.get("name", "")))
        if key not in system.rabbitmq_broker_configs:
            raise ManifestError(
                f"Broker {namespace}/{name}: spec.config refers to RabbitmqBrokerConfig"
                f" {key[0]}/{key[1]}: not found"
            )


def _trigger(
    path: Path, name: str, namespace: str, meta: Mapping[str, Any], spec: Mapping[str, Any]
) -> Trigger:
    annotations = meta.get("annotations") or {}
    try:
        validate_trigger_filters(spec)
        order = str(annotations.get(DELIVERY_ORDER_ANNOTATION, "unordered")).lower()
        if order not in ("ordered", "unordered"):
            raise ManifestError(
                f"{DELIVERY_ORDER_ANNOTATION}: expected ordered or unordered, found {order!r}"
            )
        return Trigger(
            name=name,
            namespace=namespace,
            broker=_require(spec, "broker", path),
            spec=spec,
            annotations=annotations,
            subscriber=Destination.from_manifest(
                _require(spec, "subscriber", path), field="spec.subscriber"
            ),
            delivery=DeliverySpec.from_manifest(spec.get("delivery")),
            ordered=order == "ordered",
            parallelism=_parallelism(annotations.get(PARALLELISM_ANNOTATION)),
        )
    except ManifestError as exc:
        raise ManifestError(f"{path}: Trigger {name}: {exc}") from None


def _parallelism(value: object) -> int | None:
    if value is None:
        return None
    text = str(value).strip()
    if not text.isdigit() or int(text) not in PARALLELISM_RANGE:
        raise ManifestError(
            f"{PARALLELISM_ANNOTATION}: expected a whole number from 1 to 1000, found {value!r}"
        )
    return int(text)


def _routes(path: Path, spec: Mapping[str, Any]) -> Iterator[Route]:
    for rule in spec.get("http") or []:
        authority = (rule.get("rewrite") or {}).get("authority", "")
        service = authority.split(".")[0]
        if not service:
            raise ManifestError(
                f"{path}: expected each http rule to rewrite the authority to a Knative Service's"
                f" host (<name>.<namespace>.svc.cluster.local); found {authority!r}"
            )
        for match in rule.get("match") or [{}]:
            uri = match.get("uri") or {}
            yield Route(
                method=(match.get("method") or {}).get("exact"),
                path_exact=uri.get("exact"),
                path_prefix=uri.get("prefix"),
                service=service,
            )


def _check_references(
    system: System, origins: list[tuple[Path, Trigger | SinkBinding | Route]]
) -> None:
    def service_ref(where: str, dest: Destination | None) -> None:
        ref = None if dest is None else dest.ref
        if ref is not None and ref.kind == "Service" and ref.name not in system.services:
            raise ManifestError(f"{where} refers to Knative Service {ref.name!r}: not found")

    for path, item in origins:
        if isinstance(item, Trigger):
            where = f"{path}: Trigger {item.namespace}/{item.name}"
            if (item.namespace, item.broker) not in system.brokers:
                raise ManifestError(f"{where} refers to Broker {item.broker!r}: not found")
            service_ref(where, item.subscriber)
            sink = None if item.delivery is None else item.delivery.dead_letter_sink
            service_ref(where + " dead-letter sink", sink)
        elif isinstance(item, SinkBinding):
            if item.subject not in system.services:
                raise ManifestError(
                    f"{path}: SinkBinding {item.name} subject {item.subject!r}: not found"
                )
        elif item.service not in system.services:
            raise ManifestError(
                f"{path}: ingress route to {item.service!r}: no such Knative Service"
            )


def _require(mapping: Mapping[str, Any], key: str, path: Path) -> Any:
    value = mapping.get(key) if isinstance(mapping, Mapping) else None
    if value is None:
        raise ManifestError(f"{path}: missing required field {key!r}")
    return value

"""Read the manifests (knative/, brokers/<broker>/, triggers/, sources/) into a typed System.

Config flows one way: YAML → the frozen values of :mod:`knlocal.apis` → the runtime's
factories. Only the kinds the runtime runs are read (a RabbitmqBrokerConfig among them: it
configures the RabbitMQ backend); every other object is ignored. A reference to something that
does not exist is an error at load time.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from knlocal.apis.configmaps import ConfigMap, parse_config_map
from knlocal.apis.duck import Destination
from knlocal.apis.eventing import Broker, Trigger, parse_broker, parse_trigger
from knlocal.apis.meta import ObjectMeta, mapping
from knlocal.apis.networking import Route, parse_routes
from knlocal.apis.rabbitmq import RabbitmqBrokerConfig, parse_rabbitmq_broker_config
from knlocal.apis.serving import KnativeService, parse_service
from knlocal.apis.sources import PingSource, SinkBinding, parse_ping_source, parse_sink_binding
from knlocal.errors import ManifestError
from knlocal.settings import Settings


@dataclass(frozen=True)
class System:
    """Everything the manifests declare, cross-checked."""

    services: Mapping[str, KnativeService]
    brokers: Mapping[tuple[str, str], Broker]
    triggers: tuple[Trigger, ...]
    sink_bindings: tuple[SinkBinding, ...]
    routes: tuple[Route, ...]
    config_maps: Mapping[tuple[str, str], ConfigMap] = field(default_factory=dict)
    ping_sources: tuple[PingSource, ...] = ()
    rabbitmq_broker_configs: Mapping[tuple[str, str], RabbitmqBrokerConfig] = field(
        default_factory=dict
    )

    def config_map(self, namespace: str, name: str) -> Mapping[str, str]:
        """Return a ConfigMap's data, or an empty mapping when it is not declared."""
        found = self.config_maps.get((namespace, name))
        return {} if found is None else found.data

    def broker_config(self, broker: Broker) -> Mapping[str, str]:
        """The data of what a Broker's `spec.config` names: a ConfigMap or a RabbitmqBrokerConfig
        (checked to exist at load); empty for none or any other kind."""
        ref = broker.config
        if ref is None:
            return {}
        key = (ref.namespace or broker.namespace, ref.name)
        if ref.kind == "RabbitmqBrokerConfig":
            return self.rabbitmq_broker_configs[key].data()
        if ref.kind != "ConfigMap":
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
    return build(read_documents(files))


#: The kinds the runtime runs (`apiVersion/kind`); the others are skipped.
_RUN_KINDS = frozenset(
    {
        "serving.knative.dev/v1/Service",
        "eventing.knative.dev/v1/Broker",
        "eventing.knative.dev/v1/Trigger",
        "sources.knative.dev/v1/SinkBinding",
        "sources.knative.dev/v1/PingSource",
        "networking.istio.io/v1/VirtualService",
        "v1/ConfigMap",
        "eventing.knative.dev/v1alpha1/RabbitmqBrokerConfig",
    }
)


@dataclass
class _Parsed:
    """What `build` has read so far, and the file of each object that refers to others."""

    services: dict[str, KnativeService] = field(default_factory=dict)
    brokers: dict[tuple[str, str], Broker] = field(default_factory=dict)
    triggers: list[Trigger] = field(default_factory=list)
    bindings: list[SinkBinding] = field(default_factory=list)
    routes: list[Route] = field(default_factory=list)
    config_maps: dict[tuple[str, str], ConfigMap] = field(default_factory=dict)
    pings: list[PingSource] = field(default_factory=list)
    rabbitmq_configs: dict[tuple[str, str], RabbitmqBrokerConfig] = field(default_factory=dict)
    origins: list[tuple[ObjectMeta, Trigger | SinkBinding | PingSource | Route]] = field(
        default_factory=list
    )

    def add(self, meta: ObjectMeta, document: Mapping[str, Any]) -> None:
        kind = f"{document.get('apiVersion', '')}/{meta.kind}"
        if kind not in _RUN_KINDS:
            return
        spec = mapping(document.get("spec"), f"{meta.where}: spec")
        if kind == "serving.knative.dev/v1/Service":
            self.services[meta.name] = parse_service(meta, spec)
        elif kind == "eventing.knative.dev/v1/Broker":
            self.brokers[(meta.namespace, meta.name)] = parse_broker(meta, spec)
        elif kind == "eventing.knative.dev/v1/Trigger":
            self.triggers.append(parse_trigger(meta, spec))
            self.origins.append((meta, self.triggers[-1]))
        elif kind == "sources.knative.dev/v1/SinkBinding":
            self.bindings.append(parse_sink_binding(meta, spec))
            self.origins.append((meta, self.bindings[-1]))
        elif kind == "sources.knative.dev/v1/PingSource":
            self.pings.append(parse_ping_source(meta, spec))
            self.origins.append((meta, self.pings[-1]))
        elif kind == "networking.istio.io/v1/VirtualService":
            for route in parse_routes(meta, spec):
                self.routes.append(route)
                self.origins.append((meta, route))
        elif kind == "v1/ConfigMap":
            self.config_maps[(meta.namespace, meta.name)] = parse_config_map(meta, document)
        elif kind == "eventing.knative.dev/v1alpha1/RabbitmqBrokerConfig":
            key = (meta.namespace, meta.name)
            self.rabbitmq_configs[key] = parse_rabbitmq_broker_config(meta, spec)


def build(documents: list[tuple[Path, Mapping[str, Any]]]) -> System:
    """Turn parsed manifest documents into a :class:`System` and check its references."""
    parsed = _Parsed()
    for path, document in documents:
        parsed.add(ObjectMeta.read(path, document), document)
    system = System(
        services=parsed.services,
        brokers=parsed.brokers,
        triggers=tuple(parsed.triggers),
        sink_bindings=tuple(parsed.bindings),
        routes=tuple(parsed.routes),
        config_maps=parsed.config_maps,
        ping_sources=tuple(parsed.pings),
        rabbitmq_broker_configs=parsed.rabbitmq_configs,
    )
    for meta, item in parsed.origins:
        _check_references(system, meta, item)
    _check_broker_configs(system)
    return system


def read_documents(files: list[Path]) -> list[tuple[Path, Mapping[str, Any]]]:
    """Every YAML document of `files`, with its file.

    :raises ManifestError: a file is not YAML, or a document is not a mapping.
    """
    documents: list[tuple[Path, Mapping[str, Any]]] = []
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


def _check_references(
    system: System, meta: ObjectMeta, item: Trigger | SinkBinding | PingSource | Route
) -> None:
    """Refuse a reference to a Broker or Knative Service the manifests do not declare."""

    def service_ref(where: str, destination: Destination | None) -> None:
        ref = None if destination is None else destination.ref
        if ref is not None and ref.kind == "Service" and ref.name not in system.services:
            raise ManifestError(f"{where} refers to Knative Service {ref.name!r}: not found")

    if isinstance(item, Trigger):
        if (item.namespace, item.broker) not in system.brokers:
            raise ManifestError(f"{meta.where} refers to Broker {item.broker!r}: not found")
        service_ref(meta.where, item.subscriber)
        sink = None if item.delivery is None else item.delivery.dead_letter_sink
        service_ref(meta.where + " dead-letter sink", sink)
    elif isinstance(item, SinkBinding):
        if item.subject not in system.services:
            raise ManifestError(f"{meta.where} subject {item.subject!r}: not found")
        ref = item.sink.ref
        if ref is not None and ref.kind == "Broker":
            key = (ref.namespace or item.namespace, ref.name)
            if key not in system.brokers:
                raise ManifestError(
                    f"{meta.where} sink refers to Broker {key[0]}/{key[1]}: not found"
                )
    elif isinstance(item, PingSource):
        service_ref(f"{meta.where} sink", item.sink)
    elif item.service not in system.services:
        raise ManifestError(
            f"{meta.where}: ingress route to {item.service!r}: no such Knative Service"
        )


def _check_broker_configs(system: System) -> None:
    """Refuse a Broker whose `spec.config` names a RabbitmqBrokerConfig the manifests lack
    (Knative's RabbitMQ Broker would stay not ready)."""
    for broker in system.brokers.values():
        ref = broker.config
        if ref is None or ref.kind != "RabbitmqBrokerConfig":
            continue
        key = (ref.namespace or broker.namespace, ref.name)
        if key not in system.rabbitmq_broker_configs:
            raise ManifestError(
                f"Broker {broker.key}: spec.config: expected an existing RabbitmqBrokerConfig,"
                f" found a reference to RabbitmqBrokerConfig {key[0]}/{key[1]}: not found"
            )

"""knlocal.apis.loader: the real manifests per broker and profile, and broken ones refused."""

from pathlib import Path
from typing import Any

import pytest
import yaml

from knlocal.apis.classes import KAFKA_BROKER, MT_CHANNEL_BASED_BROKER, BrokerClass
from knlocal.apis.duck import DeliverySpec, Destination, ObjectRef
from knlocal.apis.loader import build, load
from knlocal.apis.networking import Route
from knlocal.errors import ManifestError
from knlocal.serving.autoscaler.config import AutoscalerDefaults
from knlocal.serving.autoscaler.spec import RevisionScaling
from knlocal.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
SERVICES = {
    "operation-create",
    "operation-get",
    "operation-update",
    "user-approve",
    "user-create",
    "user-create-response",
}
BROKERS = [("inmemory", MT_CHANNEL_BASED_BROKER), ("kafka", KAFKA_BROKER)]


@pytest.mark.parametrize(("broker", "broker_class"), BROKERS, ids=[b for b, _ in BROKERS])
def test_real_manifests_load_for_each_broker(broker: str, broker_class: BrokerClass) -> None:
    """knative/, brokers/<broker>/ and triggers/ load into six services, a broker and routes."""
    system = load(Settings(broker=broker, manifests=ROOT))
    assert set(system.services) == SERVICES
    assert {(key, b.broker_class) for key, b in system.brokers.items()} == {
        (("default", "default"), broker_class)
    }
    assert {t.name for t in system.triggers} == {
        "user-create",
        "user-approve",
        "user-create-response",
        "operation-update",
    }
    assert all(t.broker == "default" for t in system.triggers)
    assert set(system.routes) == {
        Route(method="POST", path_exact="/users", path_prefix=None, service="operation-create"),
        Route(method="GET", path_exact=None, path_prefix="/operations/", service="operation-get"),
    }
    [binding] = system.sink_bindings
    assert binding.subject == "operation-create"
    assert binding.sink == Destination(
        ObjectRef("eventing.knative.dev/v1", "Broker", "default", None), None
    )


# (id, method, path, service the route table sends it to, or None)
ROUTING: list[tuple[str, str, str, str | None]] = [
    ("create-user", "POST", "/users", "operation-create"),
    ("read-operation", "GET", "/operations/abc", "operation-get"),
    ("users-subpath-not-routed", "POST", "/users/x", None),
    ("operations-without-id-prefix", "GET", "/operations", None),
]


@pytest.mark.parametrize(
    ("method", "path", "service"), [row[1:] for row in ROUTING], ids=[row[0] for row in ROUTING]
)
def test_routes_match_the_public_api(method: str, path: str, service: str | None) -> None:
    """POST /users goes to operation-create; GET /operations/… to operation-get."""
    system = load(Settings(manifests=ROOT))
    matched = [r.service for r in system.routes if r.matches_path(path) and r.method == method]
    assert matched == ([service] if service else [])


def test_the_ping_source_re_drives_operation_create() -> None:
    """sources/ is read: the PingSource operation-sweep calls operation-create's /sweep."""
    [sweep] = load(Settings(manifests=ROOT)).ping_sources
    assert (sweep.namespace, sweep.name) == ("default", "operation-sweep")
    assert sweep.sink == Destination(
        ObjectRef("serving.knative.dev/v1", "Service", "operation-create", None), "/sweep"
    )


def test_services_carry_their_function_and_scale_to_zero() -> None:
    """Each service runs its own function (FUNCTION env) and may scale to zero."""
    system = load(Settings(manifests=ROOT))
    for name, service in system.services.items():
        assert service.template.container.env["FUNCTION"] == name
        assert service.template.annotations.get("autoscaling.knative.dev/min-scale", "0") == "0"
        assert service.revision == f"{name}-00001"


# (id, profile, the config-autoscaler the runtime reads)
PROFILES: list[tuple[str, str, dict[str, str]]] = [
    (
        "local",
        "local",
        {
            "initial-scale": "0",
            "allow-zero-initial-scale": "true",
            "stable-window": "6s",
            "scale-to-zero-grace-period": "2s",
        },
    ),
    # A stock install ships config-autoscaler without data: Knative's defaults (§1.2).
    ("knative", "knative", {}),
]


@pytest.mark.parametrize(
    ("profile", "expected"), [row[1:] for row in PROFILES], ids=[row[0] for row in PROFILES]
)
def test_config_autoscaler_is_the_local_profile_or_knatives_defaults(
    profile: str, expected: dict[str, str]
) -> None:
    """PROFILE=local reads knative/local/config-autoscaler.yaml; nothing else ships one."""
    system = load(Settings(manifests=ROOT, profile=profile))
    assert system.config_map("knative-serving", "config-autoscaler") == expected


def test_the_local_profile_starts_every_service_at_zero() -> None:
    """`make run` starts at zero as before; PROFILE=knative at Knative's initial scale, 1."""
    for profile, initial in (("local", 0), ("knative", 1)):
        system = load(Settings(manifests=ROOT, profile=profile))
        defaults = AutoscalerDefaults.from_configmap(
            system.config_map("knative-serving", "config-autoscaler")
        )
        for service in system.services.values():
            scaling = RevisionScaling.resolve(
                service.template.annotations, service.template.container_concurrency, defaults
            )
            assert scaling.initial_scale == initial, (profile, service.name)


def test_services_are_cluster_local_and_the_kafka_broker_reads_its_own_config() -> None:
    """Every Service carries the visibility label; the Broker's ConfigMap is the project's."""
    system = load(Settings(broker="kafka", manifests=ROOT))
    assert all(s.cluster_local for s in system.services.values())
    broker = system.brokers["default", "default"]
    assert broker.config == ObjectRef("v1", "ConfigMap", "knuser-kafka-broker-config", "default")
    data = system.broker_config(broker)
    assert data["default.topic.replication.factor"] == "1"
    assert system.config_map("knative-eventing", "kafka-broker-config") == {}


# --- broken manifests -------------------------------------------------------------------------

SERVICE_FILE = Path("knative/services/a.yaml")
BROKER_FILE = Path("brokers/inmemory/broker.yaml")
TRIGGER_FILE = Path("triggers/t.yaml")
BINDING_FILE = Path("knative/sinkbinding.yaml")
INGRESS_FILE = Path("knative/ingress.yaml")


def service(name: str = "a", containers: int = 1) -> tuple[Path, dict[str, Any]]:
    """A Knative Service document."""
    return SERVICE_FILE, {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"template": {"spec": {"containers": [{"image": "img"}] * containers}}},
    }


def service_template(
    spec: dict[str, Any], metadata: dict[str, Any] | None = None
) -> tuple[Path, dict[str, Any]]:
    """Knative Service a with `spec` (and `metadata`) in its revision template; one container."""
    template = {"spec": {"containers": [{"image": "i"}], **spec}, "metadata": metadata or {}}
    return SERVICE_FILE, {**service()[1], "spec": {"template": template}}


def broker() -> tuple[Path, dict[str, Any]]:
    """A Broker document."""
    return BROKER_FILE, {
        "apiVersion": "eventing.knative.dev/v1",
        "kind": "Broker",
        "metadata": {"name": "default", "namespace": "default"},
    }


def ref(name: str) -> dict[str, Any]:
    """A destination referring to a Knative Service."""
    return {"ref": {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": name}}


def trigger(**spec: Any) -> tuple[Path, dict[str, Any]]:
    """A Trigger document; `spec` overrides a valid one."""
    return TRIGGER_FILE, {
        "apiVersion": "eventing.knative.dev/v1",
        "kind": "Trigger",
        "metadata": {"name": "t", "namespace": "default"},
        "spec": {
            "broker": "default",
            "filter": {"attributes": {"type": "x"}},
            "subscriber": ref("a"),
            **spec,
        },
    }


def binding(subject: str, sink_broker: str = "default") -> tuple[Path, dict[str, Any]]:
    """A SinkBinding document."""
    return BINDING_FILE, {
        "apiVersion": "sources.knative.dev/v1",
        "kind": "SinkBinding",
        "metadata": {"name": "s", "namespace": "default"},
        "spec": {
            "subject": {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": subject},
            "sink": {
                "ref": {
                    "apiVersion": "eventing.knative.dev/v1",
                    "kind": "Broker",
                    "name": sink_broker,
                }
            },
        },
    }


def ingress(service_name: str) -> tuple[Path, dict[str, Any]]:
    """An ingress VirtualService document with one route."""
    return INGRESS_FILE, {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "api", "namespace": "default"},
        "spec": {
            "http": [
                {
                    "match": [{"uri": {"exact": "/users"}, "method": {"exact": "POST"}}],
                    "rewrite": {"authority": f"{service_name}.default.svc.cluster.local"},
                }
            ]
        },
    }


RABBITMQ_CONFIG_FILE = Path("brokers/rabbitmq/broker.yaml")


def rabbitmq_config(**spec: Any) -> tuple[Path, dict[str, Any]]:
    """A RabbitmqBrokerConfig document; `spec` overrides a valid one."""
    return RABBITMQ_CONFIG_FILE, {
        "apiVersion": "eventing.knative.dev/v1alpha1",
        "kind": "RabbitmqBrokerConfig",
        "metadata": {"name": "c", "namespace": "default"},
        "spec": {"rabbitmqClusterReference": {"name": "rabbitmq"}, **spec},
    }


def test_s3_3_the_rabbitmq_broker_reads_its_rabbitmq_broker_config() -> None:
    """brokers/rabbitmq: the Broker's RabbitmqBrokerConfig (classic queues, see its comment)."""
    system = load(Settings(broker="rabbitmq", manifests=ROOT))
    [config] = system.rabbitmq_broker_configs.values()
    assert system.brokers[("default", "default")].config == ObjectRef(
        "eventing.knative.dev/v1alpha1", "RabbitmqBrokerConfig", config.name, "default"
    )
    assert config.data() == {
        "rabbitmqClusterReference": "default/rabbitmq",
        "queueType": "classic",
        "vhost": "/",
    }
    # The flow needs no order: every Trigger asks for 100 deliveries in flight.
    assert {t.parallelism for t in system.triggers} == {100}


def test_s3_3_a_broker_naming_a_missing_rabbitmq_broker_config_is_refused() -> None:
    """Knative's RabbitMQ Broker stays not ready without its config; here loading fails."""
    path, document = broker()
    document["spec"] = {"config": {"kind": "RabbitmqBrokerConfig", "name": "ghost"}}
    with pytest.raises(ManifestError, match="RabbitmqBrokerConfig default/ghost: not found"):
        build([service(), (path, document), rabbitmq_config()])


def test_s3_3_trigger_filter_attributes_and_parallelism_are_parsed() -> None:
    """`filter.attributes` (what RabbitMQ binds on) and the parallelism annotation."""
    path, document = trigger(filter={"attributes": {"type": "x", "source": ""}})
    document["metadata"]["annotations"] = {"rabbitmq.eventing.knative.dev/parallelism": "8"}
    [parsed] = build([service(), broker(), (path, document)]).triggers
    assert parsed.filter_attributes == {"type": "x", "source": ""}
    assert parsed.parallelism == 8


def test_s2_3_filter_attributes_overridden_by_filters_are_not_routed_on() -> None:
    """A non-empty `spec.filters` overrides `filter.attributes` (§2.3): a backend routing on the
    attributes would drop events the filters accept, so none are given to it."""
    spec = {"filter": {"attributes": {"type": "x"}}, "filters": [{"exact": {"type": "y"}}]}
    [parsed] = build([service(), broker(), trigger(**spec)]).triggers
    assert parsed.filters.attributes == {"type": "x"}
    assert parsed.filter_attributes == {}


def test_valid_documents_build() -> None:
    """The small valid system the broken cases start from builds."""
    system = build([service(), broker(), trigger(), binding("a"), ingress("a")])
    assert set(system.services) == {"a"}
    assert len(system.triggers) == 1


def test_service_template_is_typed_with_knatives_defaults() -> None:
    """containerConcurrency 0 (unlimited) and timeoutSeconds 300 when unset (§1.8, §1.9)."""
    [parsed] = build([service()]).services.values()
    assert parsed.template.container_concurrency == 0
    assert parsed.template.timeout_seconds == 300
    assert parsed.template.container.image == "img"
    assert parsed.template.annotations == {}


def test_trigger_is_parsed_once_into_typed_fields() -> None:
    """Subscriber, delivery (with its dead-letter sink) and ordering are parsed at load."""
    documents = [
        service(),
        broker(),
        trigger(delivery={"retry": 2, "deadLetterSink": ref("a")}, subscriber=ref("a")),
    ]
    [parsed] = build(documents).triggers
    assert parsed.subscriber == Destination(
        ObjectRef("serving.knative.dev/v1", "Service", "a", None), None
    )
    assert parsed.delivery == DeliverySpec(retry=2, dead_letter_sink=parsed.subscriber)
    assert parsed.ordered is False


# (id, documents, file named, problem named)
BROKEN: list[tuple[str, list[tuple[Path, dict[str, Any]]], Path, str]] = [
    (
        "trigger-to-unknown-broker",
        [service(), broker(), trigger(broker="other")],
        TRIGGER_FILE,
        "Trigger default/t refers to Broker 'other': not found",
    ),
    (
        "trigger-without-any-broker",
        [service(), trigger()],
        TRIGGER_FILE,
        "refers to Broker 'default': not found",
    ),
    (
        "subscriber-to-unknown-service",
        [service(), broker(), trigger(subscriber=ref("ghost"))],
        TRIGGER_FILE,
        "Trigger default/t refers to Knative Service 'ghost': not found",
    ),
    (
        "dead-letter-sink-to-unknown-service",
        [service(), broker(), trigger(delivery={"deadLetterSink": ref("ghost")})],
        TRIGGER_FILE,
        "dead-letter sink refers to Knative Service 'ghost': not found",
    ),
    (
        "unknown-filter-dialect",
        [service(), broker(), trigger(filters=[{"regex": {"type": "x.*"}}])],
        TRIGGER_FILE,
        "unknown filter dialect(s) ['regex']",
    ),
    (
        "two-dialects-in-one-filter",
        [service(), broker(), trigger(filters=[{"exact": {"type": "x"}, "prefix": {"type": "y"}}])],
        TRIGGER_FILE,
        "multiple dialects found",
    ),
    (
        "bad-attribute-name",
        [service(), broker(), trigger(filter={"attributes": {"Type": "x"}})],
        TRIGGER_FILE,
        "Type",
    ),
    (
        "trigger-without-broker-field",
        [service(), broker(), (TRIGGER_FILE, {**trigger()[1], "spec": {"subscriber": ref("a")}})],
        TRIGGER_FILE,
        "spec.broker: missing required field",
    ),
    # Delivery, subscriber and ordering are parsed at load, once (knative-semantics.md §2.7, §3.1).
    (
        "trigger-delivery-negative-retry",
        [service(), broker(), trigger(delivery={"retry": -1})],
        TRIGGER_FILE,
        "spec.delivery.retry: expected an integer >= 0",
    ),
    (
        "trigger-subscriber-relative-uri-alone",
        [service(), broker(), trigger(subscriber={"uri": "/x"})],
        TRIGGER_FILE,
        "spec.subscriber.uri: expected an absolute URI",
    ),
    (
        "trigger-bad-delivery-order",
        [
            service(),
            broker(),
            (
                TRIGGER_FILE,
                {
                    **trigger()[1],
                    "metadata": {
                        "name": "t",
                        "annotations": {"kafka.eventing.knative.dev/delivery.order": "sorted"},
                    },
                },
            ),
        ],
        TRIGGER_FILE,
        "expected ordered or unordered, found 'sorted'",
    ),
    (
        "rabbitmq-parallelism-out-of-range",
        [
            service(),
            broker(),
            (
                TRIGGER_FILE,
                {
                    **trigger()[1],
                    "metadata": {
                        "name": "t",
                        "annotations": {"rabbitmq.eventing.knative.dev/parallelism": "1001"},
                    },
                },
            ),
        ],
        TRIGGER_FILE,
        "expected a whole number from 1 to 1000, found '1001'",
    ),
    (
        "rabbitmq-broker-config-bad-queue-type",
        [service(), broker(), rabbitmq_config(queueType="stream")],
        RABBITMQ_CONFIG_FILE,
        "spec.queueType: expected one of quorum, classic, found 'stream'",
    ),
    (
        "rabbitmq-broker-config-without-cluster",
        [service(), broker(), rabbitmq_config(rabbitmqClusterReference=None)],
        RABBITMQ_CONFIG_FILE,
        "spec.rabbitmqClusterReference.name: expected a non-empty string, found none",
    ),
    (
        "broker-bad-delivery-format",
        [service(), (BROKER_FILE, {**broker()[1], "spec": {"delivery": {"format": "xml"}}})],
        BROKER_FILE,
        "spec.delivery.format: expected one of json, binary",
    ),
    (
        "broker-unknown-class",
        [
            service(),
            (
                BROKER_FILE,
                {
                    **broker()[1],
                    "metadata": {
                        "name": "default",
                        "annotations": {"eventing.knative.dev/broker.class": "NatsJetStreamBroker"},
                    },
                },
            ),
        ],
        BROKER_FILE,
        "unsupported broker class 'NatsJetStreamBroker'",
    ),
    (
        "service-with-two-containers",
        [service(containers=2)],
        SERVICE_FILE,
        "expected a list of one container; found 2",
    ),
    (
        "sink-binding-subject-unknown",
        [service(), binding("ghost")],
        BINDING_FILE,
        "subject 'ghost': not found",
    ),
    (
        "sink-binding-sink-to-unknown-broker",
        [service(), broker(), binding("a", sink_broker="ghost")],
        BINDING_FILE,
        "SinkBinding default/s sink refers to Broker default/ghost: not found",
    ),
    (
        "service-container-concurrency-out-of-range",
        [service_template({"containerConcurrency": 1001})],
        SERVICE_FILE,
        "Service default/a: spec.template.spec.containerConcurrency: expected an integer from 0"
        " to 1000, found int 1001",
    ),
    (
        # The one range check: the autoscaler trusts the typed value (it no longer re-checks).
        "service-container-concurrency-negative",
        [service_template({"containerConcurrency": -1})],
        SERVICE_FILE,
        "Service default/a: spec.template.spec.containerConcurrency: expected an integer from 0"
        " to 1000, found int -1",
    ),
    (
        "service-timeout-beyond-the-maximum",
        [service_template({"timeoutSeconds": 601})],
        SERVICE_FILE,
        "spec.template.spec.timeoutSeconds: expected an integer from 0 to 600, found int 601",
    ),
    (
        "service-timeout-not-an-integer",
        [service_template({"timeoutSeconds": "30"})],
        SERVICE_FILE,
        "spec.template.spec.timeoutSeconds: expected an integer from 0 to 600, found '30'",
    ),
    (
        "service-annotation-not-a-string",
        [service_template({}, {"annotations": {"autoscaling.knative.dev/min-scale": 1}})],
        SERVICE_FILE,
        "spec.template.metadata.annotations: expected string keys and string values",
    ),
    (
        "broker-config-without-name",
        [
            service(),
            (BROKER_FILE, {**broker()[1], "spec": {"config": {"kind": "ConfigMap"}}}),
        ],
        BROKER_FILE,
        "Broker default/default: spec.config.name: expected a non-empty string",
    ),
    (
        "object-without-name",
        [(SERVICE_FILE, {**service()[1], "metadata": {"namespace": "default"}})],
        SERVICE_FILE,
        "Service metadata.name: expected a non-empty string, found None",
    ),
    (
        "ping-source-sink-to-unknown-service",
        [
            service(),
            (
                Path("sources/p.yaml"),
                {
                    "apiVersion": "sources.knative.dev/v1",
                    "kind": "PingSource",
                    "metadata": {"name": "p"},
                    "spec": {"sink": ref("ghost")},
                },
            ),
        ],
        Path("sources/p.yaml"),
        "PingSource default/p sink refers to Knative Service 'ghost': not found",
    ),
    (
        "route-to-unknown-service",
        [service(), ingress("ghost")],
        INGRESS_FILE,
        "ingress route to 'ghost': no such Knative Service",
    ),
]


@pytest.mark.parametrize(
    ("documents", "path", "problem"), [row[1:] for row in BROKEN], ids=[row[0] for row in BROKEN]
)
def test_broken_manifests_are_refused_naming_file_and_problem(
    documents: list[tuple[Path, dict[str, Any]]], path: Path, problem: str
) -> None:
    """A dangling reference or an invalid field is a ManifestError naming its file and what."""
    with pytest.raises(ManifestError) as caught:
        build(documents)
    message = str(caught.value)
    assert message.startswith(f"{path}: "), message
    assert problem in message


def manifest_tree(root: Path) -> None:
    """A minimal manifests folder: one service and a broker, no triggers."""
    for folder in ("knative/services", "brokers/inmemory", "triggers"):
        (root / folder).mkdir(parents=True)
    (root / SERVICE_FILE).write_text(yaml.safe_dump(service()[1]), encoding="utf-8")
    (root / BROKER_FILE).write_text(yaml.safe_dump(broker()[1]), encoding="utf-8")


def test_manifest_tree_loads(tmp_path: Path) -> None:
    """The minimal tree the file-level cases start from loads."""
    manifest_tree(tmp_path)
    assert set(load(Settings(manifests=tmp_path)).services) == {"a"}


# (id, file written, its text, problem named)
BAD_FILES: list[tuple[str, str, str, str]] = [
    ("invalid-yaml", "triggers/t.yaml", "spec: [unclosed\n", "not valid YAML"),
    ("tab-indented-yaml", "knative/x.yaml", "a:\n\tb: 1\n", "not valid YAML"),
    ("document-not-a-mapping", "knative/x.yaml", "- just\n- a list\n", "expected a mapping"),
]


@pytest.mark.parametrize(
    ("relative", "text", "problem"),
    [row[1:] for row in BAD_FILES],
    ids=[row[0] for row in BAD_FILES],
)
def test_bad_files_are_refused_naming_the_file(
    tmp_path: Path, relative: str, text: str, problem: str
) -> None:
    """A file that is not YAML, or not a mapping per document, is named in the error."""
    manifest_tree(tmp_path)
    (tmp_path / relative).write_text(text, encoding="utf-8")
    with pytest.raises(ManifestError) as caught:
        load(Settings(manifests=tmp_path))
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / relative}: "), message
    assert problem in message


def test_unknown_broker_folder_is_refused(tmp_path: Path) -> None:
    """BROKER naming no folder under brokers/ is refused, naming the folder."""
    manifest_tree(tmp_path)
    with pytest.raises(ManifestError) as caught:
        load(Settings(manifests=tmp_path, broker="rabbitmq"))
    assert "BROKER=rabbitmq" in str(caught.value)
    assert str(tmp_path / "brokers" / "rabbitmq") in str(caught.value)

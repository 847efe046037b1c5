"""`make manifests` (deploy/render.sh): what `make deploy` applies, checked for both brokers.

Every object is validated against the API models generated from Knative's, Istio's and
Kubernetes' own schemas (the cloudcoil-models-* packages), strictly (no type coercion) and with
unknown fields rejected; then every reference between objects is resolved inside the render,
as the cluster would resolve it. The checks are the same for each broker; only the expectations
in BROKERS differ.
"""

import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from functions.registry import FUNCTIONS
from tests.deploy.api_models import serving, validate, validate_as, validate_filters
from tests.servers import require_server

ROOT = Path(__file__).resolve().parents[2]
MANIFEST_IMAGE = "dev.local/knuser-functions:0.1.0"

Key = tuple[str, str, str, str]  # apiVersion, kind, namespace, name
Object = dict[str, Any]


@dataclass(frozen=True)
class BrokerCase:
    """What one broker choice must render."""

    name: str
    broker_class: str
    #: Checks the ConfigMap the Broker's spec.config names; raises AssertionError.
    check_config: Callable[[Object], None]


def _kafka_config(config: Object) -> None:
    # The Kafka broker's keys (knative-semantics.md §3.5), in a ConfigMap of the project's own:
    # the install's knative-eventing/kafka-broker-config is not rewritten.
    assert (config["metadata"]["name"], config["metadata"]["namespace"]) == (
        "knuser-kafka-broker-config",
        "default",
    )
    data = config["data"]
    assert data["bootstrap.servers"]
    assert int(data["default.topic.partitions"]) >= 1
    assert int(data["default.topic.replication.factor"]) >= 1


def _in_memory_config(config: Object) -> None:
    template = yaml.safe_load(config["data"]["channel-template-spec"])
    assert template == {"apiVersion": "messaging.knative.dev/v1", "kind": "InMemoryChannel"}


def _nats_config(config: Object) -> None:
    # §3.4: the channel template of eventing-natss, in a ConfigMap of the project's own.
    assert (config["metadata"]["name"], config["metadata"]["namespace"]) == (
        "knuser-natjsm-channel",
        "default",
    )
    template = yaml.safe_load(config["data"]["channel-template-spec"])
    assert template == {
        "apiVersion": "messaging.knative.dev/v1alpha1",
        "kind": "NatsJetStreamChannel",
    }


def _rabbitmq_config(config: Object) -> None:
    # §3.3: the RabbitmqBrokerConfig names the RabbitmqCluster and the queue type.
    assert config["kind"] == "RabbitmqBrokerConfig"
    assert config["spec"]["rabbitmqClusterReference"]["name"]
    assert config["spec"]["queueType"] in ("quorum", "classic")


BROKERS = [
    BrokerCase("kafka", "Kafka", _kafka_config),
    BrokerCase("inmemory", "MTChannelBasedBroker", _in_memory_config),
    BrokerCase("nats", "MTChannelBasedBroker", _nats_config),
    BrokerCase("rabbitmq", "RabbitMQBroker", _rabbitmq_config),
]


def render(broker: str, image: str | None = None, **settings: str) -> list[Object]:
    """Run deploy/render.sh as `make manifests` does (with `settings` such as TRACING=otlp) and
    parse its documents."""
    require_server(
        "kustomize (kubectl kustomize, kustomize, or Go to build it)",
        any(shutil.which(tool) for tool in ("kubectl", "kustomize", "go")),
        "install kubectl (https://kubernetes.io/docs/tasks/tools/) or Go",
    )
    env = render_env(BROKER=broker, IMAGE=image or "", **settings)
    result = subprocess.run(
        ["bash", str(ROOT / "deploy" / "render.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"deploy/render.sh failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc is not None]


#: The settings deploy/render.sh reads (deploy/tracing.sh reads the last two for TRACING=otlp).
RENDER_SETTINGS = ("BROKER", "IMAGE", "TRACING", "OTLP_ENDPOINT", "TRACING_SAMPLING_RATE")


def render_env(**settings: str) -> dict[str, str]:
    """This process's environment (PATH, HOME for Go's cache) with only the given settings."""
    env = {k: v for k, v in os.environ.items() if k not in RENDER_SETTINGS}
    return env | {k: v for k, v in settings.items() if v}


def _key(obj: Object, namespace: str = "default") -> Key:
    meta = obj["metadata"]
    return (obj["apiVersion"], obj["kind"], meta.get("namespace", namespace), meta["name"])


def _ref_key(ref: Object, namespace: str) -> Key:
    return (ref["apiVersion"], ref["kind"], ref.get("namespace", namespace), ref["name"])


@pytest.fixture(scope="module", params=BROKERS, ids=[b.name for b in BROKERS])
def case(request: pytest.FixtureRequest) -> tuple[BrokerCase, list[Object]]:
    broker: BrokerCase = request.param
    return broker, render(broker.name)


# --- every object is valid against its API model ----------------------------------------------


def test_every_object_is_valid_against_its_api_model(case: tuple[BrokerCase, list[Object]]) -> None:
    _, objects = case
    for obj in objects:
        validate(obj)


def test_unknown_fields_and_wrong_types_are_rejected() -> None:
    """The validation above can fail: a misspelt field and a number written as a string."""
    service = yaml.safe_load((ROOT / "knative/services/user-approve.yaml").read_text())
    service["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    with pytest.raises(AssertionError, match=r"containers\[0\]\.imagePullPolcy"):
        validate_as(serving.Service, service, "Service")
    service = yaml.safe_load((ROOT / "knative/services/user-approve.yaml").read_text())
    service["spec"]["template"]["spec"]["containerConcurrency"] = "8"
    with pytest.raises(AssertionError, match="containerConcurrency"):
        validate_as(serving.Service, service, "Service")
    with pytest.raises(AssertionError, match=r"\[0\]\.any\[1\]\.exactly"):
        validate_filters([{"any": [{"exact": {"type": "a"}}, {"exactly": {"type": "b"}}]}], "")


# --- every reference resolves inside the render -----------------------------------------------


def test_the_broker_has_its_class_and_config(case: tuple[BrokerCase, list[Object]]) -> None:
    broker_case, objects = case
    by_key = {_key(o): o for o in objects}
    brokers = [o for o in objects if o["kind"] == "Broker"]
    assert [b["metadata"]["name"] for b in brokers] == ["default"]
    broker = brokers[0]
    annotations = broker["metadata"]["annotations"]
    assert annotations["eventing.knative.dev/broker.class"] == broker_case.broker_class
    config_key = _ref_key(broker["spec"]["config"], broker["metadata"]["namespace"])
    assert config_key in by_key, f"the Broker's spec.config {config_key} is not in the render"
    broker_case.check_config(by_key[config_key])
    dead_letter = broker["spec"].get("delivery", {}).get("deadLetterSink", {}).get("ref")
    if dead_letter:
        assert _ref_key(dead_letter, "default") in by_key


def test_every_trigger_resolves(case: tuple[BrokerCase, list[Object]]) -> None:
    _, objects = case
    by_key = {_key(o): o for o in objects}
    triggers = [o for o in objects if o["kind"] == "Trigger"]
    assert len(triggers) == len(list((ROOT / "triggers").glob("*.yaml")))
    for trigger in triggers:
        namespace, spec = trigger["metadata"]["namespace"], trigger["spec"]
        name = trigger["metadata"]["name"]
        broker = ("eventing.knative.dev/v1", "Broker", namespace, spec["broker"])
        assert broker in by_key, f"Trigger {name}: no Broker {spec['broker']}"
        subscriber = _ref_key(spec["subscriber"]["ref"], namespace)
        assert subscriber[:2] == ("serving.knative.dev/v1", "Service")
        assert subscriber in by_key, f"Trigger {name}: subscriber {subscriber} not rendered"
        sink = _ref_key(spec["delivery"]["deadLetterSink"]["ref"], namespace)
        assert sink[:2] == ("serving.knative.dev/v1", "Service")
        assert sink in by_key, f"Trigger {name}: dead-letter sink {sink} not rendered"
        assert spec.get("filter") or spec.get("filters"), f"Trigger {name} has no filter"


def test_the_sinkbinding_binds_operation_create_to_the_broker(
    case: tuple[BrokerCase, list[Object]],
) -> None:
    _, objects = case
    by_key = {_key(o): o for o in objects}
    (binding,) = [o for o in objects if o["kind"] == "SinkBinding"]
    namespace = binding["metadata"]["namespace"]
    subject = _ref_key(binding["spec"]["subject"], namespace)
    assert subject == ("serving.knative.dev/v1", "Service", "default", "operation-create")
    assert subject in by_key
    sink = _ref_key(binding["spec"]["sink"]["ref"], namespace)
    assert sink == ("eventing.knative.dev/v1", "Broker", "default", "default")
    assert sink in by_key


def test_the_public_routes_reach_rendered_services(case: tuple[BrokerCase, list[Object]]) -> None:
    _, objects = case
    services = {o["metadata"]["name"] for o in objects if o["kind"] == "Service"}
    (route,) = [o for o in objects if o["kind"] == "VirtualService"]
    spec = route["spec"]
    # net-istio's gateways: the public one in, the cluster-local one to the Knative Service.
    assert spec["gateways"] == ["knative-serving/knative-ingress-gateway"]
    targets = {}
    for http in spec["http"]:
        authority = http["rewrite"]["authority"]
        service, namespace, *rest = authority.split(".")
        assert (namespace, rest) == ("default", ["svc", "cluster", "local"]), authority
        assert service in services, f"route to {authority}: no such Knative Service"
        for destination in http["route"]:
            host = destination["destination"]["host"]
            assert host == "knative-local-gateway.istio-system.svc.cluster.local"
        targets[service] = http["match"]
    assert set(targets) == {"operation-create", "operation-get"}


def test_services_run_the_image_with_their_function_on_dynamodb(
    case: tuple[BrokerCase, list[Object]],
) -> None:
    _, objects = case
    services = [o for o in objects if o["kind"] == "Service"]
    assert sorted(s["metadata"]["name"] for s in services) == sorted(FUNCTIONS)
    for service in services:
        name, template = service["metadata"]["name"], service["spec"]["template"]["spec"]
        (container,) = template["containers"]
        env = {e["name"]: e["value"] for e in container["env"]}
        assert container["image"] == MANIFEST_IMAGE
        assert env["FUNCTION"] == name
        assert env["STORE"] == "dynamodb", f"{name}: SQLite in a pod is per pod"
        assert int(env["CONTAINER_CONCURRENCY"]) == template["containerConcurrency"]
        assert container["envFrom"] == [
            {"secretRef": {"name": "knuser-dynamodb", "optional": True}}
        ]


#: Knative's secure defaults: without each field Serving warns "Kubernetes default value is
#: insecure, Knative may default this to secure in a future release"
#: (knative.dev/serving pkg/apis/serving/v1/revision_validation.go, warnDefaults).
SECURE_CONTEXT = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "runAsNonRoot": True,
    "seccompProfile": {"type": "RuntimeDefault"},
}


def test_services_are_cluster_local_secure_and_need_no_cluster_setting(
    case: tuple[BrokerCase, list[Object]],
) -> None:
    """Only the VirtualService is public; no warning; no initial-scale 0, which a stock
    config-autoscaler (allow-zero-initial-scale: false) denies. `make cluster-check` proves
    the same against the real control plane."""
    _, objects = case
    for service in (o for o in objects if o["kind"] == "Service"):
        name = service["metadata"]["name"]
        labels = service["metadata"]["labels"]
        assert labels["networking.knative.dev/visibility"] == "cluster-local", name
        template = service["spec"]["template"]
        assert "autoscaling.knative.dev/initial-scale" not in template["metadata"]["annotations"]
        (container,) = template["spec"]["containers"]
        assert container["securityContext"] == SECURE_CONTEXT, name


def test_nothing_is_written_into_the_knative_install(case: tuple[BrokerCase, list[Object]]) -> None:
    """The install's ConfigMaps (config-autoscaler, kafka-broker-config) stay the install's."""
    _, objects = case
    installed = [
        _key(o) for o in objects if o["metadata"].get("namespace", "default").startswith("knative-")
    ]
    assert installed == []


# --- one source of truth ----------------------------------------------------------------------


def _sources(broker: str) -> list[Path]:
    """The manifest files a cluster gets: everything but the local runtime's own config."""
    files = [*(ROOT / "knative").glob("*.yaml"), *(ROOT / "knative/services").glob("*.yaml")]
    files += [*(ROOT / "triggers").glob("*.yaml"), *(ROOT / "sources").glob("*.yaml")]
    return [*files, *(ROOT / f"brokers/{broker}").glob("*")]


def test_the_render_is_the_manifests_unchanged_but_for_the_store(
    case: tuple[BrokerCase, list[Object]],
) -> None:
    """Nothing is forgotten, copied or altered on the way: a new file must be listed."""
    broker_case, objects = case
    expected = {
        _key(doc): doc
        for path in _sources(broker_case.name)
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    }
    rendered = {_key(o): o for o in objects}
    assert sorted(rendered) == sorted(expected), (
        "deploy/ and the manifests disagree: list every manifest file (but knative/local/) in"
        " deploy/base/kustomization.yaml or deploy/overlays/<broker>/kustomization.yaml"
    )
    for key, obj in rendered.items():
        if obj["kind"] == "Service":
            container = obj["spec"]["template"]["spec"]["containers"][0]
            container["env"] = [e for e in container["env"] if e["name"] != "STORE"]
            del container["envFrom"]
        assert obj == expected[key], f"{key} differs from its manifest"


def test_image_is_set_without_editing_any_file() -> None:
    image = "registry.example.com/knuser/functions:1.2.3"
    objects = render("kafka", image=image)
    images = {
        c["image"]
        for o in objects
        if o["kind"] == "Service"
        for c in o["spec"]["template"]["spec"]["containers"]
    }
    assert images == {image}
    digest = "registry.example.com:5000/knuser/functions@sha256:" + "ab" * 32
    images = {
        o["spec"]["template"]["spec"]["containers"][0]["image"]
        for o in render("inmemory", image=digest)
        if o["kind"] == "Service"
    }
    assert images == {digest}


def test_an_unknown_broker_is_refused_with_the_choices() -> None:
    result = subprocess.run(
        ["bash", str(ROOT / "deploy" / "render.sh")],
        env=render_env(BROKER="rabbit"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "BROKER must be one of: inmemory kafka" in result.stderr

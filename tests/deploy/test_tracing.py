"""`make deploy TRACING=otlp` and `make deploy-tracing`: one endpoint, one rate, for Knative and
every function (deploy/tracing.sh, deploy/tracing/otlp.env).

Knative v0.50 reads tracing-protocol, tracing-endpoint (used as it is) and tracing-sampling-rate
(0 to 1) from config-observability (knative.dev/pkg observability/tracing/config.go); the
OpenTelemetry SDK of the functions reads OTEL_EXPORTER_OTLP_ENDPOINT as a base URL and appends
/v1/traces. The rendered bundle and the patch for config-observability must therefore name the
same receiver. `make cluster-check` applies both to a real control plane.
"""

import copy
import json
import subprocess
from typing import Any

import pytest

from functions.registry import FUNCTIONS
from tests.deploy.test_manifests import BROKERS, ROOT, render, render_env

Object = dict[str, Any]
#: A receiver no default names, so that a value from anywhere else cannot pass.
ENDPOINT = "http://collector-test-tracing.observability.svc.cluster.local:4318"
SETTINGS_FILE = ROOT / "deploy" / "tracing" / "otlp.env"


def _otel_env(service: Object) -> dict[str, str]:
    (container,) = service["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e["value"] for e in container["env"] if e["name"].startswith("OTEL_")}


def _services(objects: list[Object]) -> list[Object]:
    return [o for o in objects if o["kind"] == "Service" and o["apiVersion"].startswith("serving.")]


def _tracing_sh(*args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(ROOT / "deploy" / "tracing.sh"), *args],
        env=render_env(**settings),
        capture_output=True,
        text=True,
        timeout=60,
    )


def _knative_patch(**settings: str) -> dict[str, str]:
    result = _tracing_sh("knative-patch", **settings)
    assert result.returncode == 0, result.stderr
    data: dict[str, str] = json.loads(result.stdout)["data"]
    return data


@pytest.mark.parametrize("broker", [b.name for b in BROKERS])
def test_every_service_exports_to_the_one_endpoint_knative_is_given(broker: str) -> None:
    objects = render(broker, TRACING="otlp", OTLP_ENDPOINT=ENDPOINT, TRACING_SAMPLING_RATE="0.25")
    services = _services(objects)
    assert sorted(s["metadata"]["name"] for s in services) == sorted(FUNCTIONS)
    for service in services:
        assert _otel_env(service) == {
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT,
            # Parent-based: a function records a trace when the queue-proxy before it does.
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0.25",
        }, service["metadata"]["name"]
    assert _knative_patch(OTLP_ENDPOINT=ENDPOINT, TRACING_SAMPLING_RATE="0.25") == {
        "tracing-protocol": "http/protobuf",
        "tracing-endpoint": ENDPOINT + "/v1/traces",
        "tracing-sampling-rate": "0.25",
    }


def test_both_read_the_settings_file_when_nothing_overrides_it() -> None:
    file = dict(
        line.split("=", 1)
        for line in SETTINGS_FILE.read_text().splitlines()
        if line and not line.startswith("#")
    )
    endpoint, rate = file["OTLP_ENDPOINT"], file["TRACING_SAMPLING_RATE"]
    services = _services(render("inmemory", TRACING="otlp"))
    assert {_otel_env(s)["OTEL_EXPORTER_OTLP_ENDPOINT"] for s in services} == {endpoint}
    assert {_otel_env(s)["OTEL_TRACES_SAMPLER_ARG"] for s in services} == {rate}
    patch = _knative_patch()
    assert patch["tracing-endpoint"] == endpoint.rstrip("/") + "/v1/traces"
    assert patch["tracing-sampling-rate"] == rate


@pytest.mark.parametrize("broker", [b.name for b in BROKERS])
def test_without_tracing_nothing_changes(broker: str) -> None:
    plain = render(broker)
    assert not [s["metadata"]["name"] for s in _services(plain) if _otel_env(s)]
    assert render(broker, TRACING="") == plain
    # TRACING=otlp adds the OTEL_* variables and nothing else.
    traced = copy.deepcopy(render(broker, TRACING="otlp", OTLP_ENDPOINT=ENDPOINT))
    for service in _services(traced):
        (container,) = service["spec"]["template"]["spec"]["containers"]
        container["env"] = [e for e in container["env"] if not e["name"].startswith("OTEL_")]
    assert traced == plain


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"TRACING": "zipkin"}, "TRACING must be otlp or empty (got 'zipkin')"),
        (
            {"TRACING": "otlp", "OTLP_ENDPOINT": ENDPOINT + "/v1/traces"},
            "OTLP_ENDPOINT is the base URL, without /v1/traces",
        ),
        ({"TRACING": "otlp", "OTLP_ENDPOINT": "collector:4318"}, "must be an http(s) base URL"),
        # Knative's own bounds (tracing.Config.Validate), checked before anything is applied.
        ({"TRACING": "otlp", "TRACING_SAMPLING_RATE": "1.5"}, "from 0 to 1 (got '1.5')"),
        ({"TRACING": "otlp", "TRACING_SAMPLING_RATE": "-0.1"}, "from 0 to 1 (got '-0.1')"),
    ],
)
def test_a_bad_setting_is_refused_saying_what_was_expected(
    settings: dict[str, str], message: str
) -> None:
    result = subprocess.run(
        ["bash", str(ROOT / "deploy" / "render.sh")],
        env=render_env(BROKER="inmemory", **settings),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    assert message in result.stderr
    assert result.stdout == ""


def test_apply_refuses_a_bad_rate_before_any_cluster_command() -> None:
    # KUBECONFIG names no file: had kubectl run, its own error would be the one printed.
    result = _tracing_sh("apply", TRACING_SAMPLING_RATE="2", KUBECONFIG="/nonexistent")
    assert result.returncode == 1
    assert (
        result.stderr
        == "tracing.sh: error: TRACING_SAMPLING_RATE must be a number from 0 to 1 (got '2')\n"
    )

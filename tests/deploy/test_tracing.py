"""The cluster's tracing (deploy/tracing/): Knative's own config and the functions' OTLP export.

config-observability.yaml is checked against the rules Knative v0.50 applies when it reads it
(knative.dev/pkg observability/tracing/config.go: `NewFromMap` then `Validate`), and
`TRACING=otlp deploy/render.sh` against the variables functions/tracing.py reads.
"""

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import require_server

ROOT = Path(__file__).resolve().parents[2]
#: The keys `tracing.NewFromMap` reads; its protocols, and those that need an endpoint.
KEYS = {"tracing-protocol", "tracing-endpoint", "tracing-sampling-rate"}
PROTOCOLS = {"grpc", "http/protobuf", "none", "stdout"}
NEED_ENDPOINT = {"grpc", "http/protobuf"}


def test_config_observability_is_what_knative_reads() -> None:
    documents = list(
        yaml.safe_load_all((ROOT / "deploy/tracing/config-observability.yaml").read_text())
    )
    where = {(d["metadata"]["namespace"], d["metadata"]["name"]) for d in documents}
    assert where == {
        ("knative-serving", "config-observability"),
        ("knative-eventing", "config-observability"),
    }
    for document in documents:
        data: dict[str, str] = document["data"]
        assert set(data) <= KEYS
        protocol = data.get("tracing-protocol", "none")
        assert protocol in PROTOCOLS
        assert bool(data.get("tracing-endpoint")) == (protocol in NEED_ENDPOINT)
        # A scheme-less endpoint makes Knative's exporter try TLS (every export then fails).
        assert data["tracing-endpoint"].startswith("http://")
        assert 0.0 <= float(data["tracing-sampling-rate"]) <= 1.0


def _render(**settings: str) -> list[Any]:
    require_server(
        "kustomize (kubectl kustomize, kustomize, or Go to build it)",
        any(shutil.which(tool) for tool in ("kubectl", "kustomize", "go")),
        "install kubectl (https://kubernetes.io/docs/tasks/tools/) or Go",
    )
    env = {k: v for k, v in os.environ.items() if k not in ("BROKER", "IMAGE", "TRACING")}
    result = subprocess.run(
        ["bash", str(ROOT / "deploy" / "render.sh")],
        env=env | settings,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d is not None]


def _services_env(documents: list[Any]) -> dict[str, dict[str, str]]:
    return {
        d["metadata"]["name"]: {
            e["name"]: e.get("value") for e in d["spec"]["template"]["spec"]["containers"][0]["env"]
        }
        for d in documents
        if d["kind"] == "Service" and d["apiVersion"] == "serving.knative.dev/v1"
    }


@pytest.mark.parametrize("broker", ["kafka", "inmemory"])
def test_tracing_otlp_makes_every_function_export_over_otlp(broker: str) -> None:
    traced = _services_env(_render(BROKER=broker, TRACING="otlp"))
    assert len(traced) == 6
    for env in traced.values():
        assert env["OTEL_TRACES_EXPORTER"] == "otlp"
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"].startswith("http://")
        assert "FUNCTION" in env  # the manifests' own env is kept
    plain = _services_env(_render(BROKER=broker))
    assert not any(k.startswith("OTEL_") for env in plain.values() for k in env)

"""tools/cluster/tracing_state.py, the judge of `make cluster-check`'s tracing step, can fail.

It reads what `kubectl get ksvc,deployments -o json` prints; here one Service and the Deployment
Serving makes for its Revision, in the shape Serving v0.50 gives them (the queue-proxy's
OBSERVABILITY_CONFIG as pkg/reconciler/revision/resources/queue.go marshals it).
"""

import json
import subprocess
import sys
from typing import Any

import pytest

from tests.deploy.test_manifests import ROOT

ENDPOINT = "http://collector.observability:4318"
TRACED = {
    "OTEL_TRACES_EXPORTER": "otlp",
    "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
    "OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT,
    "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
    "OTEL_TRACES_SAMPLER_ARG": "1",
}
KNATIVE_TRACING = {
    "protocol": "http/protobuf",
    "endpoint": ENDPOINT + "/v1/traces",
    "samplingRate": 1,
}


def _cluster(env: dict[str, str], tracing: dict[str, Any], ready: str = "True") -> dict[str, Any]:
    service = {
        "kind": "Service",
        "metadata": {"name": "user-create", "generation": 2},
        "status": {
            "observedGeneration": 2,
            "latestCreatedRevisionName": "user-create-00002",
            "latestReadyRevisionName": "user-create-00002",
            "conditions": [{"type": "Ready", "status": ready}],
        },
    }
    observability = {"tracing": tracing, "metrics": {"protocol": "none"}}
    containers = [
        {
            "name": "user-container",
            "env": [{"name": "FUNCTION", "value": "user-create"}]
            + [{"name": k, "value": v} for k, v in env.items()],
        },
        {
            "name": "queue-proxy",
            "env": [{"name": "OBSERVABILITY_CONFIG", "value": json.dumps(observability)}],
        },
    ]
    deployment = {
        "kind": "Deployment",
        "metadata": {"name": "user-create-00002-deployment"},
        "spec": {"template": {"spec": {"containers": containers}}},
    }
    return {"items": [service, deployment]}


def _judge(cluster: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "tools" / "cluster" / "tracing_state.py"), *args],
        input=json.dumps(cluster),
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize(
    ("cluster", "args"),
    [
        (_cluster(TRACED, KNATIVE_TRACING), (ENDPOINT, "1")),
        (_cluster({}, KNATIVE_TRACING), (ENDPOINT, "1", "knative-only")),
        (_cluster({}, {"protocol": "none"}), ("off",)),
    ],
)
def test_the_expected_state_passes(cluster: dict[str, Any], args: tuple[str, ...]) -> None:
    result = _judge(cluster, *args)
    assert result.returncode == 0, result.stdout
    assert result.stdout.startswith("1 Services:")


@pytest.mark.parametrize(
    ("cluster", "args", "finding"),
    [
        (_cluster(TRACED, {"protocol": "none"}), (ENDPOINT, "1"), "queue-proxy traces with"),
        (_cluster({}, KNATIVE_TRACING), (ENDPOINT, "1"), "user container's OTEL_* environment"),
        (_cluster(TRACED, KNATIVE_TRACING), (ENDPOINT, "0.5"), "expected"),
        (_cluster(TRACED, KNATIVE_TRACING), ("off",), "user container's OTEL_* environment"),
        (_cluster(TRACED, KNATIVE_TRACING, ready="Unknown"), (ENDPOINT, "1"), "not Ready"),
        ({"items": []}, ("off",), "no Knative Service found"),
    ],
)
def test_a_different_state_fails_naming_it(
    cluster: dict[str, Any], args: tuple[str, ...], finding: str
) -> None:
    result = _judge(cluster, *args)
    assert result.returncode == 1
    assert finding in result.stdout

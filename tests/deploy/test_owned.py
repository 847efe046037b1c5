"""deploy/owned.py: what `make undeploy` deletes, for both brokers, from the real render."""

import subprocess
import sys

import pytest
import yaml

from tests.deploy.test_manifests import BROKERS, ROOT, render

OWNED = ROOT / "deploy" / "owned.py"


@pytest.mark.parametrize("broker", [b.name for b in BROKERS])
def test_undeploy_deletes_everything_but_knative_shared_config(broker: str) -> None:
    objects = render(broker)
    manifests = yaml.safe_dump_all(objects)
    result = subprocess.run(
        [sys.executable, str(OWNED)], input=manifests, capture_output=True, text=True, check=True
    )
    kept = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    # Knative's own ConfigMaps: other workloads and Knative's controllers need them.
    shared = {("ConfigMap", "knative-serving", "config-autoscaler")}
    if broker == "kafka":
        shared.add(("ConfigMap", "knative-eventing", "kafka-broker-config"))

    def key(obj: dict[str, object]) -> tuple[str, str, str]:
        meta = obj["metadata"]
        assert isinstance(meta, dict)
        return (str(obj["kind"]), meta["namespace"], meta["name"])

    assert {key(o) for o in kept} == {key(o) for o in objects} - shared
    assert all(o["metadata"]["namespace"] == "default" for o in kept)
    # Unchanged, so `kubectl delete -f` names exactly what `kubectl apply -f` created.
    assert kept == [o for o in objects if key(o) not in shared]


def test_empty_input_deletes_nothing() -> None:
    result = subprocess.run(
        [sys.executable, str(OWNED)], input="", capture_output=True, text=True, check=True
    )
    assert [d for d in yaml.safe_load_all(result.stdout) if d] == []

"""deploy/stale_brokers.py: which live Brokers `make deploy` deletes before switching BROKER.

Eventing's webhook denies a change of a Broker's class or spec.config ("Immutable fields
changed", knative.dev/eventing pkg/apis/eventing/v1/broker_validation.go CheckImmutableFields);
`make cluster-check` switches brokers on a real control plane with deploy/deploy.sh.
"""

from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy.stale_brokers import stale

ROOT = Path(__file__).resolve().parents[2]


def broker(name: str) -> dict[str, Any]:
    """The Broker of brokers/<name>/broker.yaml."""
    docs = yaml.safe_load_all((ROOT / "brokers" / name / "broker.yaml").read_text())
    (found,) = [d for d in docs if d and d["kind"] == "Broker"]
    return found


def defaulted(doc: dict[str, Any]) -> dict[str, Any]:
    """`doc` as the API returns it: with status and the fields Knative's webhook adds."""
    live = yaml.safe_load(yaml.safe_dump(doc))
    live["metadata"]["annotations"]["eventing.knative.dev/creator"] = "admin"
    live["status"] = {"conditions": []}
    return live


# (id, Broker on the cluster, Broker of the bundle, deleted first?)
CASES = [
    ("none-on-the-cluster", None, "kafka", False),
    ("same-broker", "kafka", "kafka", False),
    ("inmemory-to-kafka", "inmemory", "kafka", True),
    ("kafka-to-inmemory", "kafka", "inmemory", True),
]


@pytest.mark.parametrize(
    ("live", "wanted", "deleted"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_a_broker_is_replaced_only_when_class_or_config_change(
    live: str | None, wanted: str, deleted: bool
) -> None:
    on_cluster = defaulted(broker(live)) if live else None
    found = stale([None, broker(wanted)], lambda namespace, name: on_cluster)
    assert found == ([("default", "default")] if deleted else [])


def test_a_config_in_another_namespace_is_another_config() -> None:
    """spec.config without a namespace means the Broker's own; with another, a new config."""
    wanted = broker("kafka")
    moved = defaulted(wanted)
    moved["spec"]["config"]["namespace"] = "knative-eventing"
    assert stale([wanted], lambda namespace, name: moved) == [("default", "default")]
    implicit = defaulted(wanted)
    del implicit["spec"]["config"]["namespace"]
    assert stale([wanted], lambda namespace, name: implicit) == []

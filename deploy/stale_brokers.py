"""Print `namespace name` of each Broker of the bundle on stdin whose live copy must be replaced.

A Broker's class annotation and `spec.config` cannot change (Eventing's webhook: "Immutable
fields changed"), so a Broker on the cluster that differs from the bundle's in either must be
deleted before the bundle is applied (deploy/deploy.sh). The live Brokers are read with kubectl.

Usage: BROKER=kafka bash deploy/render.sh | python deploy/stale_brokers.py
"""

import json
import subprocess
import sys
from collections.abc import Callable, Mapping
from typing import Any

import yaml

CLASS_ANNOTATION = "eventing.knative.dev/broker.class"
#: The fields of `spec.config` (a KReference) that name the object.
REFERENCE_FIELDS = ("apiVersion", "kind", "namespace", "name")

LiveBroker = Callable[[str, str], Mapping[str, Any] | None]


def identity(broker: Mapping[str, Any]) -> tuple[str | None, tuple[str | None, ...]]:
    """A Broker's immutable part: its class and the object its config names."""
    meta = broker.get("metadata") or {}
    config = (broker.get("spec") or {}).get("config") or {}
    namespace = config.get("namespace") or meta.get("namespace", "default")
    reference = tuple(
        namespace if key == "namespace" else config.get(key) for key in REFERENCE_FIELDS
    )
    return (meta.get("annotations") or {}).get(CLASS_ANNOTATION), reference


def stale(documents: list[Any], live: LiveBroker) -> list[tuple[str, str]]:
    """The (namespace, name) of each Broker in `documents` whose live copy differs in identity."""
    found = []
    for doc in documents:
        if not doc or doc.get("kind") != "Broker":
            continue
        namespace = doc["metadata"].get("namespace", "default")
        name = doc["metadata"]["name"]
        current = live(namespace, name)
        if current is not None and identity(current) != identity(doc):
            found.append((namespace, name))
    return found


def kubectl_broker(namespace: str, name: str) -> Mapping[str, Any] | None:
    """The Broker on kubectl's current cluster, or None when there is none."""
    command = ["kubectl", "get", "broker", "-n", namespace, name, "-ojson", "--ignore-not-found"]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(out) if out.strip() else None


def main() -> int:
    for namespace, name in stale(list(yaml.safe_load_all(sys.stdin)), kubectl_broker):
        print(namespace, name)
    return 0


if __name__ == "__main__":
    sys.exit(main())

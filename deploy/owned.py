"""Keep, of `make manifests`' YAML on stdin, the objects `make undeploy` may delete.

`make deploy` also writes two ConfigMaps that belong to the Knative installation, not to this
service: `config-autoscaler` (knative-serving) and the Kafka broker's `kafka-broker-config`
(knative-eventing). Other workloads and Knative's own controllers read them, and Knative's
controllers need them to exist, so undeploying leaves every object of those namespaces alone.

Usage: BROKER=kafka bash deploy/render.sh | python deploy/owned.py | kubectl delete -f -
"""

import sys
from typing import Any

import yaml

#: Namespaces of the Knative installation; what deploy writes there is shared configuration.
SHARED_NAMESPACES = frozenset({"knative-serving", "knative-eventing"})


def owned(documents: list[Any]) -> list[dict[str, Any]]:
    """The objects of `documents` outside :data:`SHARED_NAMESPACES` (empty documents dropped)."""
    return [
        doc
        for doc in documents
        if doc and doc.get("metadata", {}).get("namespace") not in SHARED_NAMESPACES
    ]


def main() -> int:
    yaml.safe_dump_all(owned(list(yaml.safe_load_all(sys.stdin))), sys.stdout, sort_keys=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())

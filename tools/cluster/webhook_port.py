"""Point Knative's webhook configurations (YAML on stdin) at a webhook port; print them.

Knative's certificate and webhook reconcilers insist on `clientConfig.service` and keep a `port`
set there (../shared/docs/real-control-plane.md, "Reaching the webhooks"): the apiserver then
dials `localhost:<port>` through the ExternalName Service of the webhook's name. CRDs with a
conversion webhook (Eventing's EventType, PingSource) get the same port.

Usage: python tools/cluster/webhook_port.py 8443 < webhooks.yaml > patched.yaml
"""

import sys
from typing import Any

import yaml


def with_port(doc: dict[str, Any], port: int) -> dict[str, Any]:
    """Set `port` on every service reference of a webhook configuration or CRD `doc`."""
    if doc.get("kind") in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"):
        for webhook in doc.get("webhooks") or []:
            webhook["clientConfig"]["service"]["port"] = port
    conversion = (doc.get("spec") or {}).get("conversion") or {}
    if doc.get("kind") == "CustomResourceDefinition" and conversion.get("strategy") == "Webhook":
        conversion["webhook"]["clientConfig"]["service"]["port"] = port
    return doc


def main() -> int:
    port = int(sys.argv[1])
    docs = [with_port(doc, port) for doc in yaml.safe_load_all(sys.stdin) if doc]
    yaml.safe_dump_all(docs, sys.stdout, sort_keys=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())

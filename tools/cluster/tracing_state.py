"""Judge, from the real API server, whether every Knative Service's latest Revision traces as set.

Reads `kubectl get ksvc,deployments -o json` on stdin. For every Knative Service, the Deployment
Serving made for its latest ready Revision must carry, in its user container, the OTEL_*
environment of `make deploy TRACING=otlp` pointing at ENDPOINT (or none of it, with `off`), and
in its queue-proxy the tracing configuration the Serving controller parsed from
config-observability (OBSERVABILITY_CONFIG, knative.dev/serving
pkg/reconciler/revision/resources/queue.go): http/protobuf to ENDPOINT/v1/traces at RATE, or
Knative's default (protocol none) with `off`. The Services must be Ready at their generation.

Usage: kubectl get ksvc,deployments -o json | python tools/cluster/tracing_state.py ENDPOINT RATE
       … | python tools/cluster/tracing_state.py ENDPOINT RATE knative-only   (functions untraced)
       … | python tools/cluster/tracing_state.py off
Prints one line per Service that is not as expected and exits 1; else a summary, exit 0.
"""

import json
import sys
from typing import Any

Object = dict[str, Any]


def expected(argv: list[str]) -> tuple[dict[str, str], Object]:
    """The user container's OTEL_* variables and the queue-proxy's tracing config expected."""
    if argv == ["off"]:
        return {}, {"protocol": "none"}
    endpoint, rate, *scope = argv
    env = (
        {}
        if scope == ["knative-only"]
        else {
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": rate,
        }
    )
    tracing = {
        "protocol": "http/protobuf",
        "endpoint": endpoint.rstrip("/") + "/v1/traces",
        "samplingRate": float(rate),
    }
    return env, {k: v for k, v in tracing.items() if v}  # Go's omitempty drops a 0 rate


def _env(container: Object) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env") or []}


def findings(items: list[Object], env: dict[str, str], tracing: Object) -> list[str]:
    """What differs from the expectation, one line per Service; empty when all is as expected."""
    deployments = {d["metadata"]["name"]: d for d in items if d["kind"] == "Deployment"}
    services = [s for s in items if s["kind"] == "Service"]
    found: list[str] = []
    for service in services:
        name, status = service["metadata"]["name"], service.get("status") or {}
        ready = {c["type"]: c["status"] for c in status.get("conditions") or []}.get("Ready")
        revision = status.get("latestReadyRevisionName")
        if (
            status.get("observedGeneration") != service["metadata"]["generation"]
            or ready != "True"
            or revision != status.get("latestCreatedRevisionName")
        ):
            found.append(
                f"{name}: not Ready at its generation (Ready={ready}, revision {revision})"
            )
            continue
        deployment = deployments.get(f"{revision}-deployment")
        if deployment is None:
            found.append(f"{name}: no Deployment {revision}-deployment")
            continue
        containers = {c["name"]: c for c in deployment["spec"]["template"]["spec"]["containers"]}
        otel = {
            k: v for k, v in _env(containers["user-container"]).items() if k.startswith("OTEL_")
        }
        if otel != env:
            found.append(f"{name}: user container's OTEL_* environment is {otel}, expected {env}")
        config = json.loads(_env(containers["queue-proxy"]).get("OBSERVABILITY_CONFIG") or "{}")
        if config.get("tracing") != tracing:
            found.append(
                f"{name}: queue-proxy traces with {config.get('tracing')}, expected {tracing}"
            )
    if not services:
        found.append("no Knative Service found")
    return found


def main() -> int:
    env, tracing = expected(sys.argv[1:])
    items = json.load(sys.stdin)["items"]
    found = findings(items, env, tracing)
    if found:
        print("\n".join(found))
        return 1
    services = sum(1 for i in items if i["kind"] == "Service")
    print(f"{services} Services: user container OTEL_* {env or 'none'}; queue-proxy {tracing}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

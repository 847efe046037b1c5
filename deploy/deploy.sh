#!/usr/bin/env bash
# `make deploy`: apply the manifests (deploy/render.sh, same BROKER and IMAGE) to kubectl's
# current cluster.
#
# A Broker's class and spec.config are immutable (Eventing's webhook denies the change with
# "Immutable fields changed"), so switching BROKER on a live cluster first deletes the Broker
# whose class or config differ (deploy/stale_brokers.py); the apply recreates it. The Triggers
# stay and follow the new Broker of the same name.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
bundle=$(mktemp)
trap 'rm -f "$bundle"' EXIT
bash "$ROOT/deploy/render.sh" >"$bundle"
stale=$("$PYTHON" "$ROOT/deploy/stale_brokers.py" <"$bundle")
while read -r namespace name; do
    [[ -n "$name" ]] || continue
    echo "deploy: Broker $namespace/$name has another class or config on the cluster (immutable): deleting it first"
    kubectl delete broker --namespace "$namespace" "$name" --wait
done <<<"$stale"
kubectl apply -f "$bundle"

#!/usr/bin/env bash
# Builds the real control plane of `make cluster-check` from the Go module proxy into
# $CLUSTER_CHECK_CACHE/<key>/ (default .run/cluster-check), keyed on the pinned versions, so a
# second run reuses it. Recipe: ../shared/docs/real-control-plane.md ("Building from the module proxy").
set -euo pipefail
cd "$(dirname "$0")/../.."
source tools/cluster/versions.sh

log() { echo "cluster-check build: $*" >&2; }
moddir() { go mod download -json "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])'; }
fresh_copy() { rm -rf "$2" && cp -r "$1" "$2" && chmod -R u+w "$2" && rm -rf "$2/vendor" "$2/go.work" "$2/go.work.sum"; }

[ ! -f "$KEYDIR/.complete" ] || exit 0
command -v go >/dev/null || { log "needs Go >= 1.25 and the Go module proxy to build, once, into $KEYDIR"; exit 1; }
mkdir -p "$KEYDIR/bin" "$KEYDIR/src"
export GOFLAGS=-mod=mod GOTOOLCHAIN=local

if [ ! -x "$KEYDIR/bin/kube-apiserver" ] || [ ! -x "$KEYDIR/bin/kube-controller-manager" ]; then
  log "kubernetes $K8S_VERSION (kube-apiserver, kube-controller-manager; cold: ~10 min on 2 cores)"
  fresh_copy "$(moddir "k8s.io/kubernetes@$K8S_VERSION")" "$KEYDIR/src/k8s"
  # The zip has no staging/ tree: point each staging replace at the published module.
  sed -i -E "s#^(\s*)(k8s\.io/[a-z0-9-]+) => \./staging/src/k8s\.io/[a-z0-9-]+#\1\2 => \2 $K8S_STAGING_VERSION#" "$KEYDIR/src/k8s/go.mod"
  minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
  # Without the version ldflags the server reports v0.0.0-master and kubectl and Knative refuse it.
  (cd "$KEYDIR/src/k8s" && go build -o "$KEYDIR/bin/" -ldflags "-X k8s.io/component-base/version.gitVersion=$K8S_VERSION \
    -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor" \
    ./cmd/kube-apiserver ./cmd/kube-controller-manager)
  rm -rf "$KEYDIR/src/k8s"
fi

if [ ! -x "$KEYDIR/bin/serving-webhook" ] || [ ! -x "$KEYDIR/bin/serving-controller" ] || [ ! -x "$KEYDIR/bin/serving-autoscaler" ]; then
  log "knative serving $KNATIVE_VERSION (webhook, controller, autoscaler)"
  fresh_copy "$(moddir "knative.dev/serving@$KNATIVE_VERSION")" "$KEYDIR/src/serving"
  for c in webhook controller autoscaler; do
    (cd "$KEYDIR/src/serving" && go build -o "$KEYDIR/bin/serving-$c" "./cmd/$c")
  done
fi

if [ ! -x "$KEYDIR/bin/eventing-webhook" ]; then
  log "knative eventing $KNATIVE_VERSION (webhook)"
  fresh_copy "$(moddir "knative.dev/eventing@$KNATIVE_VERSION")" "$KEYDIR/src/eventing"
  (cd "$KEYDIR/src/eventing" && go build -o "$KEYDIR/bin/eventing-webhook" ./cmd/webhook)
fi

# The YAML (CRDs, ConfigMaps, webhook configurations) is read from these copies, not the module cache.
if [ ! -d "$KEYDIR/src/networking" ]; then
  fresh_copy "$(cd "$KEYDIR/src/serving" && go list -m -f '{{.Dir}}' knative.dev/networking)" "$KEYDIR/src/networking"
fi
if [ ! -d "$KEYDIR/src/caching" ]; then
  fresh_copy "$(cd "$KEYDIR/src/serving" && go list -m -f '{{.Dir}}' knative.dev/caching)" "$KEYDIR/src/caching"
fi
if [ ! -d "$KEYDIR/src/istio" ]; then
  fresh_copy "$(moddir "istio.io/api@$ISTIO_API_VERSION")" "$KEYDIR/src/istio"
fi
touch "$KEYDIR/.complete"
log "ready in $KEYDIR"

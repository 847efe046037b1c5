#!/usr/bin/env bash
# Print the complete multi-document YAML for a cluster: what `make deploy` applies.
#
#   BROKER=kafka deploy/render.sh
#   BROKER=inmemory IMAGE=registry.example.com/knuser/functions:0.1.0 deploy/render.sh
#
# Environment:
#   BROKER  inmemory, kafka, rabbitmq or nats: the overlay deploy/overlays/$BROKER (required)
#   IMAGE   the function image, NAME[:TAG] or NAME@DIGEST (default: the manifests' own,
#           dev.local/knuser-functions:0.1.0: Knative does not resolve dev.local to a digest, so
#           a cluster whose nodes have that image loaded runs it as it is)
#   TRACING  otlp: every Knative Service gets the OpenTelemetry SDK's OTEL_* variables, exporting
#            to the receiver of deploy/tracing/otlp.env (deploy/tracing.sh service-patch); empty
#            (the default): no tracing, the bundle is unchanged
#   KUSTOMIZE  a kustomize command to use instead of finding one (e.g. "kustomize build")
#
# Runs no cluster command: only kustomize, which `kubectl kustomize` bundles. Without kubectl or
# kustomize, kustomize is built once from the Go module proxy into .cache/bin (needs Go).
# The manifests stay where the local runtime reads them (knative/, brokers/, triggers/): the
# overlays list them from outside deploy/, hence --load-restrictor LoadRestrictionsNone.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# No default here: the Makefile's BROKER is the one setting (make manifests passes it).
BROKER=${BROKER:-}
IMAGE=${IMAGE:-}
TRACING=${TRACING:-}
# kubectl 1.32's own kustomize; the Go fallback builds the same major version.
KUSTOMIZE_MODULE=sigs.k8s.io/kustomize/kustomize/v5@v5.5.0
#: The image name the manifests use; `images:` in deploy/base/kustomization.yaml matches it.
MANIFEST_IMAGE=dev.local/knuser-functions

die() { echo "render.sh: error: $*" >&2; exit 1; }

overlay="$ROOT/deploy/overlays/$BROKER"
[[ -n "$BROKER" && -f "$overlay/kustomization.yaml" ]] ||
    die "BROKER must be one of: $(ls "$ROOT/deploy/overlays" | tr '\n' ' ')(got '$BROKER')"
[[ -z "$TRACING" || "$TRACING" == otlp ]] || die "TRACING must be otlp or empty (got '$TRACING')"

find_kustomize() {
    if [[ -n "${KUSTOMIZE:-}" ]]; then
        echo "$KUSTOMIZE"
    elif command -v kubectl >/dev/null 2>&1; then
        echo "kubectl kustomize"
    elif command -v kustomize >/dev/null 2>&1; then
        echo "kustomize build"
    elif [[ -x "$ROOT/.cache/bin/kustomize" ]]; then
        echo "$ROOT/.cache/bin/kustomize build"
    elif command -v go >/dev/null 2>&1; then
        echo "render.sh: no kubectl or kustomize; building $KUSTOMIZE_MODULE into .cache/bin…" >&2
        GOBIN="$ROOT/.cache/bin" go install "$KUSTOMIZE_MODULE" >&2 ||
            die "could not build kustomize; install kubectl (https://kubernetes.io/docs/tasks/tools/)"
        echo "$ROOT/.cache/bin/kustomize build"
    else
        die "no kubectl or kustomize found; install kubectl (https://kubernetes.io/docs/tasks/tools/)"
    fi
}

target=$overlay
if [[ -n "$IMAGE" || -n "$TRACING" ]]; then
    # A throwaway overlay on top of the chosen one sets the image and the tracing environment, so
    # that no tracked file is edited (`kustomize edit set image` would rewrite
    # deploy/base/kustomization.yaml).
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    printf 'resources:\n  - %s\n' "$(realpath --relative-to="$tmp" "$overlay")" >"$tmp/kustomization.yaml"
    target=$tmp
fi
if [[ -n "$IMAGE" ]]; then
    case "$IMAGE" in
    *@*) name=${IMAGE%%@*} image_field="digest: \"${IMAGE#*@}\"" ;;
    *)
        # The tag is after the last colon, unless that colon belongs to a registry's port.
        last=${IMAGE##*/}
        if [[ "$last" == *:* ]]; then
            name=${IMAGE%:*} image_field="newTag: \"${IMAGE##*:}\""
        else
            name=$IMAGE image_field=""
        fi
        ;;
    esac
    cat >>"$tmp/kustomization.yaml" <<EOF
images:
  - name: $MANIFEST_IMAGE
    newName: "$name"
    ${image_field}
EOF
fi
if [[ -n "$TRACING" ]]; then
    patch=$(bash "$ROOT/deploy/tracing.sh" service-patch)
    printf 'patches:\n%s\n' "$patch" >>"$tmp/kustomization.yaml"
fi

# shellcheck disable=SC2046  # the kustomize command is words on purpose ("kubectl kustomize")
$(find_kustomize) --load-restrictor LoadRestrictionsNone "$target"

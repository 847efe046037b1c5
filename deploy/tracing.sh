#!/usr/bin/env bash
# Tracing on a cluster: Knative's own configuration and the functions' OTEL_* environment, both
# from deploy/tracing/otlp.env (OTLP_ENDPOINT, TRACING_SAMPLING_RATE; the environment overrides
# each). See usage() and docs/cluster.md ("Tracing").
#
# What Knative v0.50 reads (knative.dev/pkg observability/tracing/config.go, NewFromMap): the keys
# tracing-protocol (none, the default; grpc; http/protobuf; stdout), tracing-endpoint (a URL used
# as it is, so for http/protobuf it ends in /v1/traces) and tracing-sampling-rate (0 to 1) of
# config-observability in the component's own namespace. The activator, the queue-proxy (the
# Serving controller copies the parsed config into each revision's OBSERVABILITY_CONFIG), the
# broker ingress and filter, the in-memory channel dispatcher and the Kafka broker's data plane
# read them; all propagate W3C Trace Context and Baggage (tracing.DefaultTextMapPropagator), so a
# function that continues the request's `traceparent` header joins their trace.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SETTINGS=$ROOT/deploy/tracing/otlp.env
#: Knative's data plane reads the tracing keys once, at start (knative.dev/pkg
#: injection/sharedmain/main.go and each cmd's main.go: only the profiling settings are watched),
#: so these are restarted; the queue-proxies are rolled by the Serving controller itself.
DATA_PLANE=(knative-serving/activator knative-eventing/mt-broker-ingress knative-eventing/mt-broker-filter
  knative-eventing/imc-dispatcher knative-eventing/kafka-broker-receiver knative-eventing/kafka-broker-dispatcher)

usage() {
  cat <<'EOF'
Usage: deploy/tracing.sh apply | remove | knative-patch | service-patch

  apply          set tracing-protocol http/protobuf, tracing-endpoint OTLP_ENDPOINT/v1/traces and
                 tracing-sampling-rate in config-observability of knative-serving and
                 knative-eventing (kubectl's current cluster), then restart Knative's data-plane
                 components that read them at start (`make deploy-tracing`)
  remove         delete those three keys again (Knative's default: no tracing) and restart the
                 same components (`make undeploy-tracing`)
  knative-patch  print the JSON merge patch `apply` sends (no cluster command)
  service-patch  print the kustomize patch that `make deploy TRACING=otlp` adds to every Knative
                 Service: the OTEL_* variables of the OpenTelemetry SDK (no cluster command)

Settings, from deploy/tracing/otlp.env unless set in the environment:
  OTLP_ENDPOINT          base URL of an OTLP/HTTP receiver, e.g. http://collector.ns.svc:4318
  TRACING_SAMPLING_RATE  fraction of traces recorded, 0 to 1
EOF
}

die() { echo "tracing.sh: error: $*" >&2; exit 1; }

# Sets ENDPOINT, TRACES_ENDPOINT and RATE, or stops saying what was expected.
settings() {
  ENDPOINT=${OTLP_ENDPOINT:-$(sed -n 's/^OTLP_ENDPOINT=//p' "$SETTINGS")}
  RATE=${TRACING_SAMPLING_RATE:-$(sed -n 's/^TRACING_SAMPLING_RATE=//p' "$SETTINGS")}
  # Letters, digits and URL punctuation only: the values are written into JSON below.
  [[ "$ENDPOINT" =~ ^https?://[A-Za-z0-9.-]+(:[0-9]+)?(/[A-Za-z0-9._~/-]*)?$ ]] ||
    die "OTLP_ENDPOINT must be an http(s) base URL such as http://collector.observability.svc:4318 (got '$ENDPOINT')"
  [[ "${ENDPOINT%/}" != */v1/traces ]] ||
    die "OTLP_ENDPOINT is the base URL, without /v1/traces (appended for Knative and by the SDK; got '$ENDPOINT')"
  # Knative's own bounds (tracing.Config.Validate): a number from 0 to 1.
  [[ "$RATE" =~ ^(0(\.[0-9]+)?|1(\.0+)?|\.[0-9]+)$ ]] ||
    die "TRACING_SAMPLING_RATE must be a number from 0 to 1 (got '$RATE')"
  TRACES_ENDPOINT=${ENDPOINT%/}/v1/traces
}

knative_patch() {
  printf '{"data":{"tracing-protocol":"http/protobuf","tracing-endpoint":"%s","tracing-sampling-rate":"%s"}}\n' \
    "$TRACES_ENDPOINT" "$RATE"
}

# The OpenTelemetry SDK's own variables: the same receiver (the SDK appends /v1/traces to the
# base URL, giving Knative's tracing-endpoint) and a parent-based sampler at Knative's rate, so a
# function records a trace exactly when the activator or queue-proxy in front of it does.
# service.name is the function's K_SERVICE, which Knative sets.
service_patch() {
  local env=(OTEL_TRACES_EXPORTER=otlp OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf
    "OTEL_EXPORTER_OTLP_ENDPOINT=$ENDPOINT" OTEL_TRACES_SAMPLER=parentbased_traceidratio
    "OTEL_TRACES_SAMPLER_ARG=$RATE") ops=() pair
  for pair in "${env[@]}"; do
    ops+=("{\"op\":\"add\",\"path\":\"/spec/template/spec/containers/0/env/-\",\"value\":{\"name\":\"${pair%%=*}\",\"value\":\"${pair#*=}\"}}")
  done
  local IFS=,
  printf '  - target: {group: serving.knative.dev, version: v1, kind: Service}\n'
  printf "    patch: '[%s]'\n" "${ops[*]}"
}

restart_data_plane() {
  local item ns name kind restarted=0
  for item in "${DATA_PLANE[@]}"; do
    ns=${item%/*} name=${item#*/}
    for kind in deployment statefulset; do
      if kubectl get --namespace "$ns" "$kind/$name" >/dev/null 2>&1; then
        kubectl rollout restart --namespace "$ns" "$kind/$name"
        restarted=$((restarted + 1))
      fi
    done
  done
  [ "$restarted" -gt 0 ] || echo "tracing.sh: none of Knative's data-plane components is installed here: nothing to restart"
}

case "${1:-}" in
apply)
  settings
  for ns in knative-serving knative-eventing; do
    kubectl patch configmap config-observability --namespace "$ns" --type=merge -p "$(knative_patch)"
  done
  echo "tracing.sh: Knative exports to $TRACES_ENDPOINT, sampling rate $RATE"
  restart_data_plane
  ;;
remove)
  for ns in knative-serving knative-eventing; do
    kubectl patch configmap config-observability --namespace "$ns" --type=merge \
      -p '{"data":{"tracing-protocol":null,"tracing-endpoint":null,"tracing-sampling-rate":null}}'
  done
  restart_data_plane
  ;;
knative-patch) settings; knative_patch ;;
service-patch) settings; service_patch ;;
-h | --help) usage ;;
*) usage >&2; exit 2 ;;
esac

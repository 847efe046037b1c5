#!/usr/bin/env bash
# `make cluster-check`: the manifests judged by a real Kubernetes API server and Knative's own
# control plane. See usage() and docs/cluster.md ("What make cluster-check proves").
# Recipe (versions, flags, ports, order): ../shared/docs/real-control-plane.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

usage() {
  cat <<'EOF'
Usage: make cluster-check            (or: bash tools/cluster/check.sh [--help])

Starts, in a private network namespace (loopback only; nothing outside reaches it), etcd, a real
kube-apiserver v1.34, kube-controller-manager, Knative Serving and Eventing v0.50.0 with their
CRDs, ConfigMaps and admission webhooks, Istio's CRDs, a stand-in of eventing-rabbitmq's
RabbitmqBrokerConfig CRD (tools/cluster/rabbitmqbrokerconfig-crd.yaml), and Serving's controller
and autoscaler.
Then, for every broker overlay (deploy/overlays/*), it checks the whole `make manifests` bundle:

  1. a server-side dry run against the stock install: no denial, no `Warning:` line
     (any apply order works: nothing in the bundle depends on something earlier in it);
  2. a real apply with `make deploy`'s script, one overlay after the other on the same cluster
     (so switching BROKER on a live cluster is checked too): no denial, no warning, and no
     object of the Knative install (knative-serving, knative-eventing) rewritten;
  3. a second apply changes nothing (every object `unchanged`, no generation bump);
  4. every Knative Service, Revision and Route becomes Ready with the default image, and every
     Service is cluster-local (its URL is <name>.<namespace>.svc.cluster.local);
  5. `knlocal watch --once` shows the revisions from the real API server;
  6. tracing (make deploy-tracing, make deploy TRACING=otlp): Knative's config webhooks deny bad
     config-observability values and accept deploy/tracing.sh's; every revision's queue-proxy and
     function then trace to the same endpoint, and make undeploy-tracing restores the install;
and, first, a negative control: a Service Knative must reject is rejected (the webhooks are live).
Every process is stopped and the namespace unmounted at the end, pass or fail.

The install is stock but for two settings: config-domain names a domain (example.com), as any
install with DNS does, so that a public Service would show; and, as there is no kubelet and no
pod ever runs, before step 2 config-autoscaler is set to initial-scale 0
(allow-zero-initial-scale), so that Revisions can be Ready at zero pods. Not covered: the data plane (no request or event reaches a
function here).

Needs root (a network namespace), Go >= 1.25 and the Go module proxy the first time (builds take
~15 min on 2 cores), etcd (Debian: apt-get install etcd-server), kubectl.

Environment:
  CLUSTER_CHECK_CACHE  where the built binaries are kept, keyed on the pinned versions
                       (default: .run/cluster-check); warm runs take about a minute
  PYTHON               the project's Python (default: .venv/bin/python, from make install)
EOF
}
case "${1:-}" in
-h | --help) usage; exit 0 ;;
"") ;;
*) usage >&2; exit 2 ;;
esac

source tools/cluster/versions.sh
PY=${PYTHON:-$ROOT/.venv/bin/python}
started=$SECONDS
say() { printf '[%3ds] %s\n' $((SECONDS - started)) "$*"; }
# fail WHAT [MESSAGE]: the control plane itself cannot run; stop here.
fail() {
  printf '\ncluster-check FAILED: %s\n' "$1" >&2
  [ $# -lt 2 ] || printf '%s\n' "$2" | sed 's/^/  | /' >&2
  exit 1
}
# problem WHAT MESSAGE: a check of the manifests failed; say so with the component's own
# MESSAGE and go on, so that one run shows every finding. The check fails at the end.
problems=()
problem() {
  problems+=("$1")
  printf '[%3ds] FAIL: %s\n' $((SECONDS - started)) "$1"
  printf '%s\n' "$2" | sed 's/^/        | /'
}
[ "$(id -u)" = 0 ] || fail "needs root: it runs everything in a private network namespace (unshare)"
for tool in etcd kubectl unshare nsenter openssl; do
  command -v "$tool" >/dev/null || fail "needs $tool on PATH (etcd: apt-get install etcd-server)"
done
[ -x "$PY" ] || fail "no Python at $PY: run make install"

[ -f "$KEYDIR/.complete" ] || say "building the control plane into $KEYDIR (first run only, ~12 min on 2 cores)"
bash tools/cluster/build.sh
B=$KEYDIR/bin S=$KEYDIR/src

W=$(mktemp -d /tmp/knuser-cluster-check.XXXXXX)
pids=()
cleanup() {
  local pid i
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill -TERM "${pids[i]}" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  mountpoint -q "$W/netns" 2>/dev/null && umount "$W/netns"
  rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

touch "$W/netns" && unshare --net="$W/netns" true
IN=(nsenter --net="$W/netns")
"${IN[@]}" ip link set lo up
KUBE_ENV=(KUBECONFIG="$W/kubeconfig" POD_NAME=cluster-check CONFIG_LOGGING_NAME=config-logging
  CONFIG_OBSERVABILITY_NAME=config-observability)
k() { "${IN[@]}" env KUBECONFIG="$W/kubeconfig" kubectl "$@"; }
# start NAME ENV... -- COMMAND...: a background process in the namespace, logged to $W/NAME.log.
start() {
  local name=$1; shift
  local env=()
  while [ "$1" != -- ]; do env+=("$1"); shift; done; shift
  "${IN[@]}" env "${env[@]}" "$@" >"$W/$name.log" 2>&1 &
  pids+=($!)
}
# wait_for WHAT SECONDS LOG COMMAND...: retry COMMAND every 0.5 s.
wait_for() {
  local what=$1 limit=$2 log=$3; shift 3
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || fail "$what: not within ${limit}s" "$(tail -n 20 "$log" 2>/dev/null)"
    sleep 0.5
  done
}
# cat_yaml FILE...: one multi-document stream (some files do not end with `---`).
cat_yaml() { local f; for f in "$@"; do cat "$f"; printf '\n---\n'; done; }

# --- L1: etcd, kube-apiserver, CRDs -----------------------------------------------------------
start etcd -- etcd --name kv --data-dir "$W/etcd-data" --unsafe-no-fsync \
  --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
  --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
  --initial-cluster kv=http://127.0.0.1:2380 --listen-metrics-urls http://127.0.0.1:2381
openssl genrsa -out "$W/sa.key" 2048 2>/dev/null
openssl rsa -in "$W/sa.key" -pubout -out "$W/sa.pub" 2>/dev/null
echo 'kv-admin-token,admin,admin-uid,system:masters' >"$W/tokens.csv"
cat >"$W/kubeconfig" <<'EOF'
apiVersion: v1
kind: Config
clusters: [{name: kv, cluster: {server: "https://127.0.0.1:6443", insecure-skip-tls-verify: true}}]
users: [{name: admin, user: {token: kv-admin-token}}]
contexts: [{name: kv, context: {cluster: kv, user: admin}}]
current-context: kv
EOF
start kube-apiserver -- "$B/kube-apiserver" --etcd-servers=http://127.0.0.1:2379 \
  --bind-address=127.0.0.1 --secure-port=6443 --advertise-address=10.96.0.1 \
  --endpoint-reconciler-type=none --cert-dir="$W/apiserver-certs" --token-auth-file="$W/tokens.csv" \
  --authorization-mode=AlwaysAllow --service-account-issuer=https://kubernetes.default.svc \
  --service-account-key-file="$W/sa.pub" --service-account-signing-key-file="$W/sa.key" \
  --service-cluster-ip-range=10.96.0.0/16 --disable-admission-plugins=ServiceAccount
wait_for "kube-apiserver /readyz" 60 "$W/kube-apiserver.log" k get --raw /readyz
say "kube-apiserver $K8S_VERSION and etcd up"

cat_yaml "$S"/serving/config/core/100-namespace.yaml "$S"/eventing/config/core/100-namespace.yaml >"$W/namespaces.yaml"
cat_yaml "$S"/serving/config/core/300-resources/*.yaml \
  "$S"/networking/config/{certificate,ingress,serverlessservice,domain-claim}.yaml \
  "$S"/caching/config/image.yaml "$S"/eventing/config/core/resources/*.yaml \
  "$S"/istio/kubernetes/customresourcedefinitions.gen.yaml tools/cluster/rabbitmqbrokerconfig-crd.yaml |
  "$PY" tools/cluster/webhook_port.py 8444 >"$W/crds.yaml"
k apply -f "$W/namespaces.yaml" >/dev/null
k apply --server-side -f "$W/crds.yaml" >/dev/null
k wait --for=condition=Established crd --all --timeout=60s >/dev/null
say "$(k get crd -o name | wc -l) CRDs established (Knative Serving, Eventing, networking, caching; Istio; a stand-in RabbitmqBrokerConfig)"

# --- L2 and L3: Knative's ConfigMaps, the webhooks' Services, Serving's controllers -----------
cat_yaml "$S"/serving/config/core/configmaps/*.yaml "$S"/networking/config/config-network.yaml \
  "$S"/eventing/config/core/configmaps/*.yaml \
  "$S"/serving/config/core/webhooks/secret.yaml "$S"/eventing/config/core/webhooks/secret.yaml >"$W/config.yaml"
cat >>"$W/config.yaml" <<'EOF'
# The webhooks run here as processes: the apiserver dials localhost:<port> through these and
# checks TLS against <name>.<namespace>.svc, the name in each webhook's own certificate.
apiVersion: v1
kind: Service
metadata: {name: webhook, namespace: knative-serving}
spec: {type: ExternalName, externalName: localhost}
---
apiVersion: v1
kind: Service
metadata: {name: eventing-webhook, namespace: knative-eventing}
spec: {type: ExternalName, externalName: localhost}
---
# The activator's endpoints, which ServerlessServices copy; nothing is ever sent there.
apiVersion: v1
kind: Service
metadata: {name: activator-service, namespace: knative-serving}
spec:
  ports:
    - {name: http, port: 80, targetPort: 8012}
    - {name: http2, port: 81, targetPort: 8013}
    - {name: https, port: 443, targetPort: 8112}
---
apiVersion: v1
kind: Endpoints
metadata: {name: activator-service, namespace: knative-serving}
subsets:
  - addresses: [{ip: 10.244.0.2}]
    ports:
      - {name: http, port: 8012}
      - {name: http2, port: 8013}
      - {name: https, port: 8112}
---
# What the eventing-kafka-broker install ships (it is not on the module proxy): the check fails
# if the bundle rewrites it.
apiVersion: v1
kind: ConfigMap
metadata:
  name: kafka-broker-config
  namespace: knative-eventing
  labels: {app.kubernetes.io/name: knative-eventing, kafka.eventing.knative.dev/release: v1.20.0}
data:
  default.topic.partitions: "10"
  default.topic.replication.factor: "3"
  bootstrap.servers: "my-cluster-kafka-bootstrap.kafka:9092"
EOF
# (quiet: the apiserver warns that v1 Endpoints is deprecated; Serving still reads them)
out=$(k apply -f "$W/config.yaml" 2>&1) || fail "Knative's ConfigMaps and Secrets" "$out"
# A domain, as every install with DNS sets one (Knative's "Configure DNS"): without it the
# default domain is svc.cluster.local and every Route is cluster-local, public or not.
k patch configmap config-domain -n knative-serving --type=merge -p '{"data":{"example.com":""}}' >/dev/null

KCM_FLAGS=(--kubeconfig="$W/kubeconfig" --bind-address=127.0.0.1 --secure-port=10257 --leader-elect=false
  --service-account-private-key-file="$W/sa.key" --use-service-account-credentials=false
  --service-cluster-ip-range=10.96.0.0/16)
start kube-controller-manager -- "$B/kube-controller-manager" "${KCM_FLAGS[@]}"
# The autoscaler first: it needs :8080, which every Knative binary tries for its probes.
start serving-autoscaler "${KUBE_ENV[@]}" SYSTEM_NAMESPACE=knative-serving POD_IP=10.244.255.1 \
  PROFILING_PORT=18011 -- "$B/serving-autoscaler"
wait_for "Serving's autoscaler on :8080" 30 "$W/serving-autoscaler.log" "${IN[@]}" bash -c 'exec 3<>/dev/tcp/127.0.0.1/8080'
start serving-controller "${KUBE_ENV[@]}" SYSTEM_NAMESPACE=knative-serving PROFILING_PORT=18010 -- "$B/serving-controller"

# The ingress controller's stand-in: every KIngress is marked Ready at its generation.
standin_ingress() {
  local ns name gen seen now balancers
  balancers='"publicLoadBalancer":{"ingress":[{"domainInternal":"istio-ingressgateway.istio-system.svc.cluster.local"}]},"privateLoadBalancer":{"ingress":[{"domainInternal":"knative-local-gateway.istio-system.svc.cluster.local"}]}'
  while sleep 0.5; do
    k get ingresses.networking.internal.knative.dev -A -o jsonpath='{range .items[*]}{.metadata.namespace} {.metadata.name} {.metadata.generation} {.status.observedGeneration}{"\n"}{end}' 2>/dev/null |
      while read -r ns name gen seen; do
        [ "$gen" != "$seen" ] || continue
        now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
        k patch ingresses.networking.internal.knative.dev -n "$ns" "$name" --subresource=status --type=merge \
          -p "{\"status\":{\"observedGeneration\":$gen,\"conditions\":[$(for t in LoadBalancerReady NetworkConfigured Ready; do
            printf '{"type":"%s","status":"True","lastTransitionTime":"%s"},' "$t" "$now"; done | sed 's/,$//')],$balancers}}" || true
      done
  done
}
standin_ingress >"$W/ingress-standin.log" 2>&1 &
pids+=($!)

cat_yaml "$S"/serving/config/core/webhooks/{configmap-validation,defaulting,resource-validation}.yaml |
  "$PY" tools/cluster/webhook_port.py 8443 >"$W/webhooks.yaml"
echo --- >>"$W/webhooks.yaml"
cat_yaml "$S"/eventing/config/core/webhooks/{config-validation,defaulting,resource-validation,sinkbindings}.yaml |
  "$PY" tools/cluster/webhook_port.py 8444 >>"$W/webhooks.yaml"
k apply -f "$W/webhooks.yaml" >/dev/null
start serving-webhook "${KUBE_ENV[@]}" SYSTEM_NAMESPACE=knative-serving WEBHOOK_NAME=webhook \
  WEBHOOK_PORT=8443 PROFILING_PORT=18008 -- "$B/serving-webhook"
start eventing-webhook "${KUBE_ENV[@]}" SYSTEM_NAMESPACE=knative-eventing WEBHOOK_NAME=eventing-webhook \
  WEBHOOK_PORT=8444 PROFILING_PORT=18009 METRICS_DOMAIN=knative.dev/eventing \
  SINK_BINDING_SELECTION_MODE=exclusion -- "$B/eventing-webhook"
webhooks_ready() {
  local bundles
  bundles=$(k get validatingwebhookconfigurations,mutatingwebhookconfigurations \
    -o jsonpath='{range .items[*].webhooks[*]}[{.clientConfig.caBundle}]{"\n"}{end}')
  [ -n "$bundles" ] && ! grep -qx '\[\]' <<<"$bundles" &&
    [ -n "$(k get validatingwebhookconfiguration validation.webhook.eventing.knative.dev -o jsonpath='{.webhooks[0].rules}')" ] &&
    [ -n "$(k get validatingwebhookconfiguration validation.webhook.serving.knative.dev -o jsonpath='{.webhooks[0].rules}')" ]
}
wait_for "Knative's webhooks (caBundle and rules in every configuration)" 60 "$W/serving-webhook.log" webhooks_ready
say "Knative Serving and Eventing $KNATIVE_VERSION: webhooks, controller, autoscaler; kube-controller-manager up"

# --- The negative control: the webhooks are live, or every later check passes vacuously -----
cat >"$W/negative.yaml" <<'EOF'
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: negative-control, namespace: default}
spec:
  template:
    spec:
      containerConcurrency: -1
      containers: [{image: dev.local/negative-control:1}]
EOF
# The webhooks fill in their rules themselves: give them a few seconds to be asked at all.
deadline=$((SECONDS + 30))
while out=$(k apply --dry-run=server -f "$W/negative.yaml" 2>&1); do
  [ $SECONDS -lt $deadline ] ||
    fail "negative control: Knative accepted containerConcurrency: -1, so its webhook is not live" "$out"
  sleep 1
done
say "negative control: a Service with containerConcurrency: -1 is denied:"
printf '%s\n' "$out" | sed 's/^/        | /'
# The stand-in RabbitmqBrokerConfig CRD checks its schema: a queue type it does not know is denied.
cat >"$W/negative-rabbitmq.yaml" <<'EOF'
apiVersion: eventing.knative.dev/v1alpha1
kind: RabbitmqBrokerConfig
metadata: {name: negative-control, namespace: default}
spec: {rabbitmqClusterReference: {name: rabbitmq}, queueType: stream}
EOF
if out=$(k apply --dry-run=server -f "$W/negative-rabbitmq.yaml" 2>&1); then
  fail "negative control: the RabbitmqBrokerConfig schema accepted queueType: stream" "$out"
fi
say "negative control: a RabbitmqBrokerConfig with queueType: stream is denied:"
printf '%s\n' "$out" | sed 's/^/        | /'

# --- The bundles ---------------------------------------------------------------------------
overlays=$(ls deploy/overlays)
# check_output WHAT OUTPUT: fail on a `Warning:` line (kubectl prints the API's warnings so).
check_output() {
  if grep -q 'Warning:' <<<"$2"; then problem "$1: the control plane warned" "$(grep 'Warning:' <<<"$2")"; fi
  return 0
}
for broker in $overlays; do
  BROKER=$broker bash deploy/render.sh >"$W/$broker.yaml"
  say "BROKER=$broker: $(grep -c '^kind:' "$W/$broker.yaml") objects: $(grep '^kind:' "$W/$broker.yaml" | sort | uniq -c | awk '{printf "%s %s, ", $1, $3}' | sed 's/, $//')"
  if out=$(k apply --dry-run=server -f "$W/$broker.yaml" 2>&1); then
    check_output "BROKER=$broker: the server-side dry run" "$out"
    say "BROKER=$broker: server-side dry run against the stock install: done"
  else
    problem "BROKER=$broker: the server-side dry run against the stock install was denied" "$out"
  fi
done

# No kubelet: Revisions can only be Ready at zero pods (the deviation usage() names).
k patch configmap config-autoscaler -n knative-serving --type=merge \
  -p '{"data":{"initial-scale":"0","allow-zero-initial-scale":"true"}}' >/dev/null
sleep 1  # the webhooks and controllers watch it; give their informers a moment
# The Knative install's own configuration: the bundle must leave every one of these alone.
install_state() {
  local ns
  for ns in knative-serving knative-eventing; do
    k get configmaps -n "$ns" -o jsonpath='{range .items[*]}{.metadata.namespace}/{.metadata.name}={.metadata.resourceVersion}{"\n"}{end}'
  done
}
generations() { k get -f "$1" -o jsonpath='{range .items[*]}{.kind}/{.metadata.namespace}/{.metadata.name}={.metadata.generation}{"\n"}{end}'; }
not_ready() {
  k get ksvc,revisions,routes -n default -o jsonpath='{range .items[*]}{.kind}/{.metadata.name}: Ready={.status.conditions[?(@.type=="Ready")].status} {.status.conditions[?(@.type=="Ready")].reason} {.status.conditions[?(@.type=="Ready")].message}{"\n"}{end}' |
    grep -v ': Ready=True '
}
for broker in $overlays; do
  before=$(install_state)
  if out=$("${IN[@]}" env KUBECONFIG="$W/kubeconfig" BROKER="$broker" PYTHON="$PY" bash deploy/deploy.sh 2>&1); then
    check_output "BROKER=$broker: the apply" "$out"
    say "BROKER=$broker: applied with deploy/deploy.sh (make deploy): done"
    grep '^deploy:' <<<"$out" | sed 's/^/        | /' || true
  else
    problem "BROKER=$broker: make deploy's apply was denied" "$out"
  fi
  after=$(install_state)
  if [ "$before" = "$after" ]; then
    say "BROKER=$broker: no ConfigMap of the Knative install (knative-serving, knative-eventing) written"
  else
    problem "BROKER=$broker: the apply rewrote ConfigMaps of the Knative install" \
      "$(diff <(echo "$before") <(echo "$after") | grep '^[<>]')"
  fi
  first=$(generations "$W/$broker.yaml")
  out=$(k apply -f "$W/$broker.yaml" 2>&1) || problem "BROKER=$broker: the second apply was denied" "$out"
  check_output "BROKER=$broker: the second apply" "$out"
  second=$(generations "$W/$broker.yaml")
  # kubectl sends a custom resource's lists whole (a JSON merge patch), so a Knative Service
  # whose containers Knative defaulted shows `configured` although nothing changes: for those
  # the generation is the judge, for ConfigMaps kubectl's own `unchanged`.
  changed=$(grep -v ' unchanged$' <<<"$out" | grep '^configmap/' || true)
  if [ -n "$changed" ]; then
    problem "BROKER=$broker: the second apply changed objects" "$changed"
  elif [ "$first" != "$second" ]; then
    problem "BROKER=$broker: the second apply bumped generations" "$(diff <(echo "$first") <(echo "$second") | grep '^[<>]')"
  else
    say "BROKER=$broker: second apply: no generation bump, every ConfigMap unchanged"
  fi
  # Ready=False is Knative's verdict (Unknown: still reconciling); wait out a passing one.
  deadline=$((SECONDS + 60)) failed_since=
  while pending=$(not_ready) || [ -z "$(k get revisions -n default -o name)" ]; do
    if grep -q ': Ready=False ' <<<"$pending"; then failed_since=${failed_since:-$SECONDS}; else failed_since=; fi
    if [ $SECONDS -ge $deadline ] || { [ -n "$failed_since" ] && [ $((SECONDS - failed_since)) -ge 10 ]; }; then
      problem "BROKER=$broker: not Ready (Knative's Ready conditions)" "$pending
(the ingress stand-in's last lines: $(tail -n 3 "$W/ingress-standin.log"))"
      break
    fi
    sleep 1
  done
  [ -n "$pending" ] ||
    say "BROKER=$broker: Ready: $(k get ksvc -n default -o name | wc -l) Services, $(k get revisions -n default -o name | wc -l) Revisions, $(k get routes -n default -o name | wc -l) Routes; image $(k get revisions -n default -o jsonpath='{.items[0].spec.containers[0].image}')"
  # Serving's own verdict: the KIngress it makes for a Route has ExternalIP rules unless the
  # Service is cluster-local (the default domain, svc.cluster.local, would hide it in the URL).
  public=$(k get ingresses.networking.internal.knative.dev -n default \
    -o jsonpath='{range .items[*]}{.metadata.name}: {.spec.rules[*].visibility}{"\n"}{end}' | grep ExternalIP || true)
  routes=$(k get routes -n default -o name | wc -l)
  kingresses=$(k get ingresses.networking.internal.knative.dev -n default -o name | wc -l)
  if [ "$kingresses" -lt "$routes" ]; then
    problem "BROKER=$broker: visibility not judged" "Serving made $kingresses KIngresses for $routes Routes (a Route without a Ready Revision gets none)"
  elif [ -z "$public" ]; then
    say "BROKER=$broker: every Knative Service is cluster-local (no ExternalIP rule in any KIngress)"
  else
    problem "BROKER=$broker: Knative Services with a public route (KIngress rules' visibility)" "$public"
  fi
done

# knlocal watch on the real objects of the last overlay (tests/knlocal/watch_on_cluster.py).
if out=$("${IN[@]}" env KUBECONFIG="$W/kubeconfig" "$PY" -m pytest -q -p no:cacheprovider \
  tests/knlocal/watch_on_cluster.py 2>&1); then
  say "knlocal watch --once against the real API server: $(tail -n 1 <<<"$out")"
else
  problem "knlocal watch against the real API server (tests/knlocal/watch_on_cluster.py)" "$out"
fi

# --- Tracing (docs/cluster.md, "Tracing"): make deploy-tracing and make deploy TRACING=otlp ----
# Knative's config webhooks judge config-observability (knative.dev/pkg observability/tracing/
# config.go, Validate): bad values are denied, deploy/tracing.sh's are accepted; then the Serving
# controller must copy them into every revision's queue-proxy, the TRACING=otlp bundle must be
# Ready with the same endpoint in every function, and removing both must restore the install.
# tracing_denials: Knative's config webhooks deny bad tracing values, in both namespaces.
tracing_denials() {
  local ns bad out denials=(
    'unsupported protocol|{"data":{"tracing-protocol":"zipkin","tracing-endpoint":"http://zipkin.observability:9411/api/v2/spans"}}'
    'less than or equal to one|{"data":{"tracing-protocol":"http/protobuf","tracing-endpoint":"http://c.observability:4318/v1/traces","tracing-sampling-rate":"1.5"}}'
    'endpoint should be set|{"data":{"tracing-protocol":"grpc"}}')
  for ns in knative-serving knative-eventing; do
    for bad in "${denials[@]}"; do
      if out=$(k patch configmap config-observability -n "$ns" --type=merge --dry-run=server -p "${bad#*|}" 2>&1); then
        problem "tracing: $ns's webhook accepted a bad config-observability" "${bad#*|}"
      elif grep -q "${bad%%|*}" <<<"$out"; then
        say "tracing negative control: $ns denies ${bad#*|}:"
        printf '%s\n' "$out" | sed 's/^/        | /'
      else
        problem "tracing: $ns denied ${bad#*|} for another reason than '${bad%%|*}'" "$out"
      fi
    done
  done
}
# (One story in order, apply, check, remove: ~70 lines, the denials apart.)
check_tracing() {
  local broker out before after logs_from
  broker=$(tail -n 1 <<<"$overlays")  # the overlay applied last: its Services are on the cluster
  tracing_denials
  # Not deploy/tracing/otlp.env's values, given the way a user overrides them for both steps:
  # a default leaking into either step fails below.
  local endpoint=http://otel-collector.cluster-check.svc.cluster.local:4318 rate=0.5
  before=$(for ns in knative-serving knative-eventing; do k get configmap config-observability -n "$ns" -o jsonpath='{.data}'; echo; done)
  logs_from=$(cat "$W/serving-controller.log" "$W/serving-autoscaler.log" | wc -l)
  # The install's own Deployments of the components deploy/tracing.sh restarts (their pods never
  # run here: no kubelet), so that the restart is checked too; only the Deployments, not their
  # Services (activator-service is this cluster's stand-in above).
  cat_yaml "$S"/serving/config/core/deployments/activator.yaml \
    "$S"/eventing/config/brokers/mt-channel-broker/deployments/broker-{ingress,filter}.yaml \
    "$S"/eventing/config/channels/in-memory-channel/deployments/dispatcher.yaml | "$PY" -c \
    'import sys, yaml; yaml.safe_dump_all([d for d in yaml.safe_load_all(sys.stdin) if d and d["kind"] == "Deployment"], sys.stdout)' \
    >"$W/data-plane.yaml"
  k apply -f "$W/data-plane.yaml" >/dev/null
  if out=$("${IN[@]}" env KUBECONFIG="$W/kubeconfig" OTLP_ENDPOINT="$endpoint" TRACING_SAMPLING_RATE="$rate" \
    bash deploy/tracing.sh apply 2>&1); then
    check_output "tracing: make deploy-tracing" "$out"
    say "tracing: make deploy-tracing (deploy/tracing.sh apply) accepted by both webhooks:"
    printf '%s\n' "$out" | sed 's/^/        | /'
  else
    problem "tracing: make deploy-tracing was denied" "$out"
  fi
  out=$(k get -f "$W/data-plane.yaml" -o jsonpath='{range .items[*]}{.metadata.name}={.spec.template.metadata.annotations.kubectl\.kubernetes\.io/restartedAt}{"\n"}{end}')
  if grep -q '=$' <<<"$out"; then
    problem "tracing: make deploy-tracing did not restart Knative's data plane" "$out"
  else
    say "tracing: the data plane restarted to read it (pod template restartedAt): $(cut -d= -f1 <<<"$out" | xargs)"
  fi
  # The Serving controller watches config-observability: the running revisions' queue-proxies
  # get the new tracing config without a new Revision.
  tracing_state_is "make deploy-tracing, before any new Revision" "$endpoint" "$rate" knative-only
  BROKER=$broker TRACING=otlp OTLP_ENDPOINT=$endpoint TRACING_SAMPLING_RATE=$rate bash deploy/render.sh >"$W/$broker-tracing.yaml"
  if out=$(k apply --dry-run=server -f "$W/$broker-tracing.yaml" 2>&1); then
    check_output "tracing: BROKER=$broker TRACING=otlp: the server-side dry run" "$out"
  else
    problem "tracing: BROKER=$broker TRACING=otlp: the server-side dry run was denied" "$out"
  fi
  if out=$("${IN[@]}" env KUBECONFIG="$W/kubeconfig" BROKER="$broker" TRACING=otlp OTLP_ENDPOINT="$endpoint" \
    TRACING_SAMPLING_RATE="$rate" PYTHON="$PY" bash deploy/deploy.sh 2>&1); then
    check_output "tracing: make deploy TRACING=otlp" "$out"
  else
    problem "tracing: BROKER=$broker make deploy TRACING=otlp was denied" "$out"
  fi
  tracing_state_is "make deploy TRACING=otlp on config-observability with tracing" "$endpoint" "$rate"
  # A config the controller or autoscaler cannot parse is logged ("Error updating ... config").
  out=$(cat "$W/serving-controller.log" "$W/serving-autoscaler.log" | tail -n +$((logs_from + 1)) |
    grep -iE '"level":"(error|fatal)"|Error updating' | grep -iE 'observability|tracing' || true)
  if [ -n "$out" ]; then
    problem "tracing: Serving's controller or autoscaler logged a config error" "$out"
  else
    say "tracing: Serving's controller and autoscaler logged no config error"
  fi
  out=$("${IN[@]}" env KUBECONFIG="$W/kubeconfig" bash deploy/tracing.sh remove 2>&1) || problem "tracing: make undeploy-tracing failed" "$out"
  out=$("${IN[@]}" env KUBECONFIG="$W/kubeconfig" BROKER="$broker" PYTHON="$PY" bash deploy/deploy.sh 2>&1) ||
    problem "tracing: BROKER=$broker make deploy (without TRACING) was denied" "$out"
  after=$(for ns in knative-serving knative-eventing; do k get configmap config-observability -n "$ns" -o jsonpath='{.data}'; echo; done)
  if [ "$before" = "$after" ]; then
    say "tracing: make undeploy-tracing left config-observability as the install had it"
  else
    problem "tracing: make undeploy-tracing did not restore config-observability" "$(diff <(echo "$before") <(echo "$after"))"
  fi
  tracing_state_is "make undeploy-tracing, then make deploy" off
}
# tracing_state_is WHAT EXPECTED...: wait up to 60 s for tools/cluster/tracing_state.py to agree.
tracing_state_is() {
  local what=$1 out deadline=$((SECONDS + 60)); shift
  until out=$(k get ksvc,deployments -n default -o json | "$PY" tools/cluster/tracing_state.py "$@"); do
    if [ $SECONDS -ge $deadline ]; then problem "tracing: after $what" "$out"; return 0; fi
    sleep 1
  done
  say "tracing: after $what, Ready: $out"
}
check_tracing

if [ ${#problems[@]} -gt 0 ]; then
  printf '\ncluster-check FAILED (%d checks, %d s):\n' ${#problems[@]} $((SECONDS - started)) >&2
  printf '  - %s\n' "${problems[@]}" >&2
  exit 1
fi

say "cluster-check passed: $(echo $overlays | wc -w) broker overlays ($(echo $overlays)), $((SECONDS - started)) s"

# Pinned versions of the control plane `make cluster-check` builds (../shared/docs/real-control-plane.md,
# "Versions that work"); the cache folder is keyed on them, so changing one rebuilds.
K8S_VERSION=v1.34.4
K8S_STAGING_VERSION=v0.34.4
KNATIVE_VERSION=v0.50.0
ISTIO_API_VERSION=v1.32.0
CLUSTER_CHECK_CACHE=${CLUSTER_CHECK_CACHE:-$PWD/.run/cluster-check}
KEYDIR=$CLUSTER_CHECK_CACHE/k8s-$K8S_VERSION-knative-$KNATIVE_VERSION-istio-$ISTIO_API_VERSION

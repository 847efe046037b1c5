"""Knative Eventing for the local runtime: broker ingress, backends, trigger dispatch."""

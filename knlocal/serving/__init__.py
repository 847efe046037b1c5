"""Knative Serving for the local runtime: activator, instances, autoscaling."""

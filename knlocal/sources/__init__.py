"""Knative event sources the local runtime runs (`sources.knative.dev/v1`)."""

"""Typed, validated, frozen Knative objects, parsed once from the manifests (Knative: `pkg/apis`).

One module per API group: :mod:`~knlocal.apis.serving` (Service and its revision template),
:mod:`~knlocal.apis.eventing` (Broker, Trigger; the Trigger's filters in
:mod:`~knlocal.apis.filters`), :mod:`~knlocal.apis.sources` (SinkBinding, PingSource),
:mod:`~knlocal.apis.networking` (the ingress routes), :mod:`~knlocal.apis.configmaps`,
:mod:`~knlocal.apis.rabbitmq` (RabbitmqBrokerConfig, the parallelism annotation); and
:mod:`~knlocal.apis.loader`, which reads the YAML files into a cross-checked
:class:`~knlocal.apis.loader.System`. Everything above this package reads these values, never a
raw dict of a manifest. Errors are :class:`~knlocal.errors.ManifestError`, naming the file, the
object, the field path, what was expected and what was found.
"""

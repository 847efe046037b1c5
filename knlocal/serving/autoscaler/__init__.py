"""Knative Serving's KPA autoscaler, laid out the way Knative lays it out.

====================  =====================================================================
module                Knative counterpart
====================  =====================================================================
``goparse``           Go value syntax: ``strconv``, ``time.ParseDuration``
``config``            ``pkg/autoscaler/config`` (the ``config-autoscaler`` ConfigMap) and the
                      bounds of ``pkg/apis/autoscaling/register.go``: every range rule, once
``spec``              the ``autoscaling.knative.dev`` annotations
                      (``pkg/apis/autoscaling/annotation_validation.go``), the ``DeciderSpec``
                      (``kpa/resources/decider.go``, ``resources/target.go``)
``metrics``           ``pkg/autoscaler/aggregation``: bounded 1-s bucket windows
``decider``           ``Scale()`` of ``pkg/autoscaler/scaling/autoscaler.go``
``scaler``            ``pkg/reconciler/autoscaling/kpa/scaler.go`` and ``kpa.go``: bounds,
                      scale-to-zero gating, the PodAutoscaler's Active condition, Serve/Proxy
====================  =====================================================================

Nothing in this package reads a clock, sleeps, starts threads or does I/O: every call takes
``now`` in seconds (any monotonic origin, e.g. ``time.monotonic()``).

How the caller drives it::

    defaults = AutoscalerDefaults.from_configmap(configmap_data)          # config
    spec = RevisionScaling.resolve(annotations, container_concurrency, defaults)  # spec
    kpa = KPA(spec, now)                                                  # scaler
    # once a second, per revision: the total in-flight concurrency (all instances plus the
    # requests the activator is holding) and the number of requests in that second
    kpa.record(now, concurrency, requests)
    # every KPA.TICK_INTERVAL (2 s): apply decision.desired, put the activator in or out of path
    decision = kpa.decide(now, ready)
    # when the activator receives a request for the revision: record it, then poke, so that a
    # revision at zero scale is scaled up at once instead of at the next tick (§1.5 "Poke")
    kpa.record(now, concurrency)
    decision = kpa.poke(now, ready, concurrency)   # None when Knative would not poke

Each module lists the deliberate simplifications that concern it, numbered as before the split
(1-9) so that older references stay meaningful.
"""

"""The runtime's parts built from the typed manifests: the one way the runtime and the tests
make a running Broker, a Trigger's dispatcher and a revision's environment.
"""

from collections.abc import Mapping

from knlocal.apis.classes import RABBITMQ_BROKER
from knlocal.apis.eventing import Broker, Trigger
from knlocal.apis.serving import KnativeService
from knlocal.eventing.backends import registry as backends
from knlocal.eventing.backends.base import BrokerBackend
from knlocal.eventing.broker import BrokerTarget, RunningBroker
from knlocal.eventing.correlation import NO_CORRELATION, Correlation
from knlocal.eventing.delivery import effective_delivery
from knlocal.eventing.dispatcher import DEFAULT_PARALLELISM, TriggerDispatcher
from knlocal.eventing.faults import FaultyBroker, FaultyTarget, Injector
from knlocal.eventing.filters import build_trigger_filter
from knlocal.eventing.sender import Target
from knlocal.resolver import Resolver
from knlocal.settings import Settings


async def open_broker(
    broker: Broker,
    config: Mapping[str, str],
    settings: Settings,
    faults: Injector | None = None,
) -> RunningBroker:
    """Open the backend of `broker`'s class and wrap it as a running Broker.

    :param config: the data of what its `spec.config` names (`System.broker_config`).
    :param faults: the fault injector of `knlocal run --faults`, if any.
    :raises ConfigError, BackendError: the backend cannot be opened.
    """
    backend = backends.create(broker, config, settings)
    await backend.open()
    return running_broker(broker, backend, faults)


def running_broker(
    broker: Broker, backend: BrokerBackend, faults: Injector | None = None
) -> RunningBroker:
    """`broker` over an opened `backend`, under the fault plan's rules for it if any."""
    running = RunningBroker(broker, backend)
    rules = faults.plan.brokers.get(broker.key) if faults is not None else None
    if faults is not None and rules:
        running = FaultyBroker(running, broker.key, rules, faults)
    return running


async def trigger_dispatcher(
    trigger: Trigger,
    broker: RunningBroker,
    resolver: Resolver,
    *,
    broker_url: str,
    faults: Injector | None = None,
    reply: Target | None = None,
    correlation: Correlation = NO_CORRELATION,
) -> TriggerDispatcher:
    """The dispatcher of `trigger`, subscribed to its consumer group of `broker`.

    :param broker_url: the Broker's ingress URL (where replies go, as Knative sends them).
    :param reply: where replies go instead of `broker` in process (e.g. an unreachable URL).
    :raises ManifestError: the subscriber or dead-letter sink cannot be resolved.
    """
    where = f"Trigger {trigger.key}"
    broker_class = broker.broker.broker_class
    delivery = effective_delivery(broker.broker.delivery, trigger.delivery, broker_class)
    dead_letter = None
    if delivery.dead_letter_sink is not None:
        dead_letter = resolver.target(delivery.dead_letter_sink, where + " dead-letter sink")
    subscriber: Target = resolver.target(trigger.subscriber, where)
    rules = faults.plan.triggers.get(trigger.key) if faults is not None else None
    if faults is not None and rules:
        subscriber = FaultyTarget(subscriber, trigger.key, rules, faults)
    parallelism, ordered = DEFAULT_PARALLELISM, trigger.ordered
    if broker_class is RABBITMQ_BROKER:
        # §3.3: `parallelism` deliveries in flight, default 1; only 1 keeps the queue's order.
        parallelism = trigger.parallelism or 1
        ordered = parallelism == 1
    group = broker_class.consumer_group(trigger.namespace, trigger.name)
    subscription = await broker.backend.subscribe(
        group, ordered=ordered, attributes=trigger.filter_attributes
    )
    if isinstance(subscriber, FaultyTarget):
        subscriber.attach(subscription)
    return TriggerDispatcher(
        name=trigger.key,
        namespace=trigger.namespace,
        broker_class=broker_class,
        event_filter=build_trigger_filter(trigger.filters, broker_class),
        delivery=delivery,
        subscriber=subscriber,
        dead_letter=dead_letter,
        subscription=subscription,
        reply=reply if reply is not None else BrokerTarget(broker, broker_url),
        parallelism=parallelism,
        ordered=ordered,
        correlation=correlation,
        broker=trigger.broker,
    )


def revision_environment(
    service: KnativeService, settings: Settings, sink: str | None
) -> dict[str, str]:
    """The environment of `service`'s instances: its container's, the runtime contract's, the
    runtime's settings the functions read, and `K_SINK` when a SinkBinding binds it."""
    s = settings
    env = {
        **service.template.container.env,
        # The Knative runtime contract (knative-semantics.md §1.1).
        "K_SERVICE": service.name,
        "K_CONFIGURATION": service.name,
        "K_REVISION": service.revision,
        "STORE": s.store,
        "DATA_DIR": str(s.data_dir.resolve()),
        "DYNAMODB_ENDPOINT": s.dynamodb_endpoint,
        "LOG_LEVEL": s.log_level,
    }
    # Credentials and OTEL_*, read once by Settings.from_env (knlocal/settings.py).
    env.update(s.passthrough_env)
    if sink is not None:
        env["K_SINK"] = sink
    return env

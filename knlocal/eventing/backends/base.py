"""The broker backend interface: a tiny abstract surface; routing logic lives above it.

A backend stores events and hands them to consumer groups. Everything Knative-specific —
filtering, delivery, replies, retries, backoff, dead-lettering — lives once, in
:mod:`knlocal.eventing.dispatcher`, so every backend behaves the same.
"""

from abc import ABC, abstractmethod
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar

from knlocal.apis.eventing import Broker
from knlocal.eventing.events import BaseCloudEvent
from knlocal.settings import Settings


@dataclass(frozen=True, eq=False)
class Received:
    """One event handed to a consumer group, until acknowledged.

    :ivar ordering_key: events with equal keys are delivered one after the other when a Trigger
        asks for ordered delivery (Kafka: the partition).
    :ivar token: the backend's handle for :meth:`Subscription.ack` (e.g. a Kafka offset).
    """

    event: BaseCloudEvent
    ordering_key: Hashable = None
    token: Any = field(default=None)


#: No `filter.attributes`: every event.
NO_ATTRIBUTES: Mapping[str, str] = MappingProxyType({})


class Subscription(ABC):
    """A consumer group's view of the broker: every event published after it was created."""

    #: Events the backend handled without handing them over, because the Trigger's
    #: `filter.attributes` cannot match them (the Kafka dispatcher's prefilter). The Trigger's
    #: status counts them as received and filtered out, as if the dispatcher had seen them.
    prefiltered: int = 0

    @abstractmethod
    async def receive(self) -> Received:
        """Wait for the next event."""

    @abstractmethod
    async def ack(self, received: Received) -> None:
        """Mark an event handled (delivered, dead-lettered or dropped); it is not redelivered.

        An event never acknowledged is redelivered after a crash (at least once).
        """

    @abstractmethod
    async def close(self) -> None:
        """Stop receiving; unacknowledged events stay for the next consumer of the group."""


class BrokerBackend(ABC):
    """Where a Broker's events are stored.

    :param broker: the Broker manifest.
    :param config: the data of the ConfigMap named by the Broker's `spec.config`.
    :param settings: the runtime's settings (e.g. the Kafka address).
    """

    #: What stores the events, as OpenTelemetry's `messaging.system` names it.
    system: ClassVar[str]

    def __init__(self, broker: Broker, config: Mapping[str, str], settings: Settings) -> None:
        self.broker = broker
        self.config = config
        self.settings = settings

    async def open(self) -> None:  # noqa: B027 - optional hook
        """Connect; raise :class:`knlocal.errors.BackendError` naming the address on failure."""

    @abstractmethod
    async def publish(self, event: BaseCloudEvent) -> None:
        """Store an event; return only once it is stored as durably as the backend can.

        :raises knlocal.errors.BackendError: it was not stored.
        """

    @abstractmethod
    async def subscribe(
        self, group: str, ordered: bool, attributes: Mapping[str, str] = NO_ATTRIBUTES
    ) -> Subscription:
        """Open the consumer group `group` (one per Trigger).

        :param ordered: the Trigger asks for per-partition order.
        :param attributes: the Trigger's `filter.attributes`. A backend may route on them (RabbitMQ
            binds its queue on them, §3.3) or ignore them: the dispatcher applies the full filter.
        """

    @abstractmethod
    async def close(self) -> None:
        """Release connections."""

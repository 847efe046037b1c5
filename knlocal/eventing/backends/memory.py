"""The in-memory backend: the reference implementation, and the emulation of an InMemoryChannel.

Each consumer group has a queue that receives every event published after it subscribed. Like
Knative's InMemoryChannel nothing survives a restart. Unlike the IMC's default synchronous fan-out,
`publish` returns once the event is queued, as the IMC does with its
`messaging.knative.dev/async-handler` annotation (knative-semantics.md §2.2): a synchronous fan-out
would hold each producer's request for the whole downstream flow.
"""

import asyncio
from collections.abc import Mapping

from knlocal.eventing.backends.base import NO_ATTRIBUTES, BrokerBackend, Received, Subscription
from knlocal.eventing.events import BaseCloudEvent


class MemorySubscription(Subscription):
    """A consumer group's queue."""

    def __init__(self, backend: "MemoryBackend", group: str) -> None:
        self.backend = backend
        self.group = group
        self.queue: asyncio.Queue[Received] = asyncio.Queue()

    async def receive(self) -> Received:
        """See :meth:`Subscription.receive`."""
        return await self.queue.get()

    async def ack(self, received: Received) -> None:
        """Nothing to do: a received event already left the queue."""

    async def close(self) -> None:
        """Leave the broker."""
        self.backend.subscriptions.pop(self.group, None)


class MemoryBackend(BrokerBackend):
    """Events in memory, fanned out to every consumer group."""

    system = "memory"

    subscriptions: dict[str, MemorySubscription]

    async def open(self) -> None:
        """See :meth:`BrokerBackend.open`."""
        self.subscriptions = {}

    async def publish(self, event: BaseCloudEvent) -> None:
        """See :meth:`BrokerBackend.publish`."""
        received = Received(event)
        for subscription in self.subscriptions.values():
            subscription.queue.put_nowait(received)

    async def subscribe(
        self, group: str, ordered: bool, attributes: Mapping[str, str] = NO_ATTRIBUTES
    ) -> Subscription:
        """See :meth:`BrokerBackend.subscribe`; the queue is FIFO, so order holds either way."""
        subscription = MemorySubscription(self, group)
        self.subscriptions[group] = subscription
        return subscription

    async def close(self) -> None:
        """See :meth:`BrokerBackend.close`."""
        self.subscriptions.clear()

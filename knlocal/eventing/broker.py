"""The broker ingress, with Knative's contract (knative-semantics.md §2.2).

`POST /<namespace>/<broker>` with a binary or structured CloudEvent: `202` once the backend
stored it; `400` not a valid CloudEvent (or TTL exhausted); `404` unknown broker or path `/`;
`405` other methods; `503` the backend could not store it. `OPTIONS` answers the WebHook
handshake.
"""

import logging
from collections.abc import Mapping
from datetime import UTC, datetime

from aiohttp import web

from knlocal.edge import json_error
from knlocal.errors import BackendError
from knlocal.eventing.backends.base import BrokerBackend
from knlocal.eventing.classes import MT_CHANNEL_BASED_BROKER
from knlocal.eventing.dispatcher import TTL_EXTENSION
from knlocal.eventing.events import (
    MAX_EVENT_BYTES,
    BaseCloudEvent,
    InvalidEvent,
    decode_http,
    replace_attributes,
)
from knlocal.manifests import Broker

log = logging.getLogger("knlocal.eventing")

#: The MT broker's starting TTL (§2.9).
MAX_TTL = 255


class BrokerRejected(Exception):
    """An event the broker refuses, with the HTTP status Knative answers."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class RunningBroker:
    """A Broker with its backend: the one way events enter it (ingress and replies alike)."""

    def __init__(self, broker: Broker, backend: BrokerBackend) -> None:
        self.broker = broker
        self.backend = backend
        self.accepted = 0
        self.rejected = 0

    async def ingest(self, event: BaseCloudEvent) -> None:
        """Apply the class's ingress rules and store the event.

        :raises BrokerRejected: 400 when the TTL is exhausted; 503 when the backend failed.
        """
        if self.broker.broker_class == MT_CHANNEL_BASED_BROKER:
            event = _with_ttl(event)
        try:
            await self.backend.publish(event)
        except BackendError as exc:
            self.rejected += 1
            message = f"broker {self.broker.name} could not store the event: {exc}"
            raise BrokerRejected(503, message) from exc
        self.accepted += 1


def _with_ttl(event: BaseCloudEvent) -> BaseCloudEvent:
    # §2.9: set to 255 if absent, else decrement; ≤ 0 ⇒ 400. Also stamp the arrival time.
    raw = event.get_extension(TTL_EXTENSION)
    try:
        ttl = MAX_TTL if raw is None else int(raw) - 1
    except (TypeError, ValueError):
        ttl = MAX_TTL
    if raw is not None and ttl <= 0:
        raise BrokerRejected(400, f"event {event.get_id()} exhausted its {TTL_EXTENSION}")
    arrival = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return replace_attributes(event, {TTL_EXTENSION: ttl, "knativearrivaltime": arrival})


def ingress_app(brokers: Mapping[tuple[str, str], RunningBroker]) -> web.Application:
    """The broker ingress as an aiohttp application."""

    async def handle(request: web.Request) -> web.Response:
        if request.method == "OPTIONS":
            return web.Response(
                status=200,
                headers={
                    "Allow": "POST, OPTIONS",
                    "WebHook-Allowed-Origin": "*",
                    "WebHook-Allowed-Rate": "*",
                },
            )
        if request.method != "POST":
            return json_error(
                405,
                f"method {request.method} not allowed; the broker accepts POST",
                {"Allow": "POST, OPTIONS"},
            )
        segments = [s for s in request.path.split("/") if s]
        if not segments:
            return json_error(404, "no broker at /; POST to /<namespace>/<broker>")
        if len(segments) != 2:
            return json_error(400, f"expected the path /<namespace>/<broker>; found {request.path}")
        broker = brokers.get((segments[0], segments[1]))
        if broker is None:
            return json_error(404, f"no broker {segments[1]!r} in namespace {segments[0]!r}")
        try:
            event = decode_http(request.headers, await request.read())
            await broker.ingest(event)
        except InvalidEvent as exc:
            # The client's mistake, not the runtime's: one line, no traceback.
            log.warning("broker %s/%s refused an event: %s", *segments, exc)
            return json_error(400, str(exc))
        except BrokerRejected as exc:
            return json_error(exc.status, exc.message)
        return web.Response(status=202)

    app = web.Application(client_max_size=MAX_EVENT_BYTES)
    app.router.add_route("*", "/{tail:.*}", handle)
    return app

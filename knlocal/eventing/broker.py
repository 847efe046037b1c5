"""The broker ingress, with Knative's contract (knative-semantics.md §2.2).

`POST /<namespace>/<broker>` with a binary or structured CloudEvent (1.0 or 0.3): `202` once
the backend stored it; `400` not a valid CloudEvent (checked before the broker is looked up,
as `ingress_handler.go` does) or TTL exhausted; `404` unknown broker or path `/`; `405` other
methods; `503` the backend could not store it. `OPTIONS` answers the WebHook handshake. No
request makes it answer another 5xx.
"""

import logging
from collections.abc import Mapping
from datetime import UTC, datetime

from aiohttp import web

from knlocal import tracing
from knlocal.apis.eventing import Broker
from knlocal.edge import error_body, json_error
from knlocal.errors import BackendError
from knlocal.eventing import ttl
from knlocal.eventing.backends.base import BrokerBackend
from knlocal.eventing.events import (
    MAX_EVENT_BYTES,
    BaseCloudEvent,
    InvalidEvent,
    as_binary_hop,
    decode_http,
    replace_attributes,
)
from knlocal.eventing.sender import Reply

log = logging.getLogger("knlocal.eventing")

_JSON = {"Content-Type": "application/json"}


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

        :raises BrokerRejected: 400 when the TTL is exhausted or an extension value cannot
            cross a binary hop; 503 when the backend failed.
        """
        try:
            event = self._admit(event)
        except InvalidEvent as exc:
            self.rejected += 1
            raise BrokerRejected(400, str(exc)) from exc
        with tracing.publish_span(self.broker.name, self.backend.system, event) as traced:
            try:
                # Stored with the PRODUCER span as its `traceparent`, when tracing is on.
                await self.backend.publish(traced[0])
            except BackendError as exc:
                self.rejected += 1
                message = f"broker {self.broker.name} could not store the event: {exc}"
                raise BrokerRejected(503, message) from exc
        self.accepted += 1

    def _admit(self, event: BaseCloudEvent) -> BaseCloudEvent:
        broker_class = self.broker.broker_class
        if broker_class.max_ttl is not None:
            # §2.9: set to 255 if absent, else decrement; ≤ 0 ⇒ 400. Also stamp the arrival.
            event_ttl = ttl.next_ttl(event, broker_class.max_ttl)
            if event_ttl <= 0:
                raise InvalidEvent(f"event {event.get_id()} exhausted its {ttl.TTL_EXTENSION}")
            arrival = datetime.now(UTC).isoformat().replace("+00:00", "Z")
            event = replace_attributes(
                event, {ttl.TTL_EXTENSION: event_ttl, "knativearrivaltime": arrival}
            )
        # Corrections to §2.3: ingress → channel → broker-filter are binary HTTP hops.
        return as_binary_hop(event) if broker_class.binary_hops else event


class BrokerTarget:
    """A Broker as the destination of its Triggers' replies: its ingress, in process.

    The reply crosses the same decoding and checks as an HTTP request to the ingress.

    :param url: the Broker's address, reported as `knativeerrordest` when it refuses a reply.
    """

    def __init__(self, broker: RunningBroker, url: str) -> None:
        self.broker = broker
        self.url = url

    async def send(self, headers: Mapping[str, str], body: bytes, timeout: float | None) -> Reply:
        """See :class:`knlocal.eventing.sender.Target`; the ingress answers at once."""
        try:
            await self.broker.ingest(decode_http(headers, body))
        except InvalidEvent as exc:
            return Reply(400, _JSON, error_body(str(exc)))
        except BrokerRejected as exc:
            return Reply(exc.status, _JSON, error_body(exc.message))
        return Reply(202, {}, b"")


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
        try:
            # §2.2 (corrections): the event is decoded and validated before the broker lookup.
            event = decode_http(request.headers, await request.read())
        except InvalidEvent as exc:
            # The client's mistake, not the runtime's: one line, no traceback.
            log.warning("broker %s refused an event: %s", request.path, exc)
            return json_error(400, str(exc))
        broker = brokers.get((segments[0], segments[1]))
        if broker is None:
            return json_error(404, f"no broker {segments[1]!r} in namespace {segments[0]!r}")
        try:
            with tracing.incoming(request.headers):
                await broker.ingest(event)
        except BrokerRejected as exc:
            return json_error(exc.status, exc.message)
        return web.Response(status=202)

    app = web.Application(client_max_size=MAX_EVENT_BYTES)
    app.router.add_route("*", "/{tail:.*}", handle)
    return app

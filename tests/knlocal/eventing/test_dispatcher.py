"""TriggerDispatcher against real HTTP subscribers and dead-letter sinks (§2.5-§2.8).

Subscribers and dead-letter sinks are aiohttp servers on 127.0.0.1 answering as scripted; the
broker is a real RunningBroker over the in-memory backend. Delivery specs use 10 ms backoff.
"""

import asyncio
import base64
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field, replace

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings import http as ce_http
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from knlocal.apis.eventing import Broker, Trigger
from knlocal.apis.filters import TriggerFilters
from knlocal.eventing.backends.memory import MemoryBackend, MemorySubscription
from knlocal.eventing.classes import KAFKA_BROKER, MT_CHANNEL_BASED_BROKER, BrokerClass
from knlocal.eventing.delivery import BackoffPolicy, DeliverySpec, Destination
from knlocal.eventing.dispatcher import TriggerStats
from knlocal.factories import running_broker, trigger_dispatcher
from knlocal.resolver import HttpTarget, Resolver
from knlocal.settings import Settings

MT = MT_CHANNEL_BASED_BROKER
KAFKA = KAFKA_BROKER
TYPE = "dev.knuser.user.creation.requested.v1"
REPLY_TYPE = "dev.knuser.user.created.v1"
NAMESPACE = "team-a"
FORMAT = JSONFormat()
#: The Broker's address as the runtime reports it (its `status.address.url`).
BROKER_URL = f"http://127.0.0.1:8081/{NAMESPACE}/default"

Responder = Callable[[], web.Response]


def original(**extensions: object) -> CloudEvent:
    """The event the broker receives and the trigger delivers."""
    return CloudEvent(
        {"id": "orig-1", "source": "/test", "type": TYPE, "datacontenttype": "application/json"}
        | extensions,
        {"name": "Ada"},
    )


def reply_event() -> CloudEvent:
    """The event a subscriber answers with."""
    return CloudEvent(
        {
            "id": "reply-1",
            "source": "/sub",
            "type": REPLY_TYPE,
            "datacontenttype": "application/json",
        },
        {"user": "Ada"},
    )


def answer(status: int, body: bytes = b"", content_type: str | None = None) -> Responder:
    """Answer every request with `status` and `body`."""

    def respond() -> web.Response:
        headers = {"Content-Type": content_type} if content_type else None
        return web.Response(status=status, body=body, headers=headers)

    return respond


#: A dead-letter sink that accepts everything.
ACCEPT = answer(202)


def answer_event(status: int, *, structured: bool = False) -> Responder:
    """Answer every request with `status` and the reply event in the body."""

    def respond() -> web.Response:
        encode = ce_http.to_structured if structured else ce_http.to_binary
        message = encode(reply_event(), FORMAT)
        return web.Response(status=status, body=message.body, headers=dict(message.headers))

    return respond


@dataclass
class Request:
    """One request an endpoint received."""

    headers: dict[str, str]
    body: bytes
    started: float
    finished: float = 0.0

    def event(self) -> BaseCloudEvent:
        """The CloudEvent in the request."""
        lowered = {k.lower(): v for k, v in self.headers.items()}
        return ce_http.from_http(ce_http.HTTPMessage(headers=lowered, body=self.body), FORMAT)


@dataclass
class Endpoint:
    """A subscriber or dead-letter sink: a real aiohttp server on 127.0.0.1, scripted answers."""

    respond: Responder
    delay: float = 0.0
    requests: list[Request] = field(default_factory=list)
    active: int = 0
    max_active: int = 0
    server: TestServer | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        received = Request(dict(request.headers), await request.read(), time.monotonic())
        self.requests.append(received)
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            return self.respond()
        finally:
            self.active -= 1
            received.finished = time.monotonic()

    async def start(self) -> str:
        """Start listening; return the URL."""
        app = web.Application()
        app.router.add_post("/", self._handle)
        self.server = TestServer(app, host="127.0.0.1", port=0)
        await self.server.start_server()
        return str(self.server.make_url("/"))

    async def stop(self) -> None:
        """Stop listening."""
        if self.server is not None:
            await self.server.close()


def closed_port_url() -> str:
    """A URL on a port nothing listens on: connections are refused."""
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def delivery(retry: int, delay: float = 0.01, format: str | None = None) -> DeliverySpec:
    """A delivery spec with exponential backoff and a small delay."""
    return DeliverySpec(
        retry=retry, backoff_policy=BackoffPolicy.EXPONENTIAL, backoff_delay=delay, format=format
    )


@dataclass
class Outcome:
    """What one delivery did."""

    subscriber_url: str
    subscriber: list[Request]
    dead_letter: list[Request]
    stats: TriggerStats
    #: Events the broker stored after the original: the replies.
    replies: list[BaseCloudEvent]


async def dispatch_one(
    respond: Responder,
    *,
    broker_class: BrokerClass = MT,
    retry: int = 2,
    backoff_delay: float = 0.01,
    dead_letter: Responder | None = ACCEPT,
    dead_letter_url: str | None = None,
    subscriber_url: str | None = None,
    filter_type: str = TYPE,
    filter_attributes: dict[str, str] | None = None,
    reply_url: str | None = None,
    format: str | None = None,
    timeout: float | None = None,
    delay: float = 0.0,
    event: CloudEvent | None = None,
) -> Outcome:
    """Put the original event in a broker and let a Trigger's dispatcher handle it.

    :param reply_url: send replies there instead of to the broker (e.g. a closed port).
    """
    broker = Broker("default", NAMESPACE, broker_class, None, None)
    backend = MemoryBackend(broker, {}, Settings())
    await backend.open()
    running = running_broker(broker, backend)
    observer = await backend.subscribe("observer", ordered=False)
    assert isinstance(observer, MemorySubscription)
    subscriber = Endpoint(respond, delay=delay)
    sink = Endpoint(dead_letter or ACCEPT)
    try:
        started_url = await subscriber.start()
        sink_url = await sink.start()
        url = subscriber_url or started_url
        async with aiohttp.ClientSession() as session:
            dls = None
            if dead_letter is not None or dead_letter_url is not None:
                dls = Destination(None, dead_letter_url or sink_url)
            spec = replace(delivery(retry, backoff_delay, format), timeout=timeout)
            trigger = Trigger(
                name="t",
                namespace=NAMESPACE,
                broker="default",
                filters=TriggerFilters({"type": filter_type} | (filter_attributes or {})),
                subscriber=Destination(None, url),
                delivery=replace(spec, dead_letter_sink=dls),
            )
            dispatcher = await trigger_dispatcher(
                trigger,
                running,
                Resolver(session),
                broker_url=BROKER_URL,
                reply=None if reply_url is None else HttpTarget(session, reply_url),
            )
            trigger_queue = dispatcher.subscription
            assert isinstance(trigger_queue, MemorySubscription)
            await running.ingest(event or original())
            received = trigger_queue.queue.get_nowait()
            await asyncio.wait_for(dispatcher.handle(received.event), timeout=10)
        stored = [observer.queue.get_nowait().event for _ in range(observer.queue.qsize())]
        assert stored[0].get_id() == "orig-1"
        return Outcome(url, subscriber.requests, sink.requests, dispatcher.stats, stored[1:])
    finally:
        await subscriber.stop()
        await sink.stop()
        await backend.close()


@dataclass(frozen=True)
class Case:
    """How a delivery should go."""

    respond: Responder
    broker_class: BrokerClass
    attempts: int
    #: The subscriber's reply was published to the broker.
    reply: bool = False
    #: The original went to the dead-letter sink.
    dead_lettered: bool = False
    #: Expected `knativeerrorcode`; None: not checked.
    code: str | None = None
    #: Expected decoded `knativeerrordata`; None: not checked.
    data: bytes | None = None
    #: The dead letter carries the `knativeerror*` extensions.
    reported: bool = True


# retry = 2 throughout: a retried delivery makes 1 + 2 = 3 attempts (§2.7).
CASES: dict[str, Case] = {
    # §2.6: 2xx with a CloudEvent is a reply, re-published to the broker.
    "200-binary-reply": Case(answer_event(200), MT, 1, reply=True),
    "200-structured-reply": Case(answer_event(200, structured=True), MT, 1, reply=True),
    "201-reply": Case(answer_event(201), MT, 1, reply=True),
    "kafka-200-reply": Case(answer_event(200), KAFKA, 1, reply=True),
    # A 202 with an event in the body is a reply: Knative's dispatcher does not look at the
    # status (pkg/kncloudevents/event_dispatcher.go executeRequest; knative-semantics.md,
    # corrections to §2.1/§2.6), although the spec says it MUST NOT be one.
    "202-with-event-body-is-a-reply": Case(answer_event(202), MT, 1, reply=True),
    "kafka-202-with-event-body-is-a-reply": Case(answer_event(202), KAFKA, 1, reply=True),
    "200-empty-is-done": Case(answer(200), MT, 1),
    "204-is-done": Case(answer(204), MT, 1),
    # §2.6: a non-CloudEvent body: MT answers 502 (retried) then DLS; Kafka: DLS, no retry.
    # MT's dead letter then has no knativeerror* extensions: broker-filter's 502 carries no
    # error info (event_dispatcher.go dispatchExecutionInfoTransformers; corrections to §2.8).
    "mt-200-not-an-event-retried-then-dls": Case(
        answer(200, b"ok", "text/plain"), MT, 3, dead_lettered=True, reported=False
    ),
    "kafka-200-not-an-event-dls-at-once": Case(
        answer(200, b"ok", "text/plain"), KAFKA, 1, dead_lettered=True
    ),
    # §2.7: 5xx, 404, 408, 409, 429 are retried, then §2.8 the DLS gets the error extensions.
    "500": Case(answer(500, b"boom"), MT, 3, dead_lettered=True, code="500", data=b"boom"),
    "503": Case(answer(503, b"busy"), MT, 3, dead_lettered=True, code="503", data=b"busy"),
    "404": Case(answer(404, b"no user"), MT, 3, dead_lettered=True, code="404", data=b"no user"),
    "408": Case(answer(408, b"slow"), MT, 3, dead_lettered=True, code="408", data=b"slow"),
    "409": Case(answer(409, b"conflict"), MT, 3, dead_lettered=True, code="409", data=b"conflict"),
    "429": Case(answer(429, b"later"), MT, 3, dead_lettered=True, code="429", data=b"later"),
    "500-empty-body": Case(answer(500), MT, 3, dead_lettered=True, code="500", data=b""),
    "kafka-500": Case(answer(500, b"boom"), KAFKA, 3, dead_lettered=True, code="500", data=b"boom"),
    # §2.7: other 4xx are not retried: straight to the DLS.
    "400": Case(answer(400, b"bad"), MT, 1, dead_lettered=True, code="400", data=b"bad"),
    "401": Case(answer(401, b"who"), MT, 1, dead_lettered=True, code="401", data=b"who"),
    "403": Case(answer(403, b"no"), MT, 1, dead_lettered=True, code="403", data=b"no"),
    "kafka-400": Case(answer(400, b"bad"), KAFKA, 1, dead_lettered=True, code="400", data=b"bad"),
}


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_s2_6_to_s2_8_outcome_by_subscriber_answer(case: Case) -> None:
    """Reply, done, retried or dead-lettered, by the subscriber's status and body."""
    outcome = asyncio.run(dispatch_one(case.respond, broker_class=case.broker_class, retry=2))
    assert len(outcome.subscriber) == case.attempts
    assert outcome.stats.retried == case.attempts - 1
    assert outcome.stats.dropped == 0
    if case.dead_lettered:
        assert (outcome.stats.delivered, outcome.stats.dead_lettered) == (0, 1)
        [request] = outcome.dead_letter
        dead = request.event()
        # §2.8: the DLS gets the ORIGINAL event, with the error extensions.
        assert (dead.get_id(), dead.get_type(), dead.get_data()) == (
            "orig-1",
            TYPE,
            {"name": "Ada"},
        )
        if not case.reported:
            assert {"knativeerrordest", "knativeerrorcode", "knativeerrordata"}.isdisjoint(
                dead.get_attributes()
            )
        else:
            assert dead.get_extension("knativeerrordest") == outcome.subscriber_url
        if case.code is not None:
            assert dead.get_extension("knativeerrorcode") == case.code
        if case.data is not None:
            encoded = dead.get_extension("knativeerrordata")
            assert isinstance(encoded, str)
            assert base64.b64decode(encoded) == case.data
    else:
        assert (outcome.stats.delivered, outcome.stats.dead_lettered) == (1, 0)
        assert outcome.dead_letter == []
    if case.reply:
        [reply] = outcome.replies
        assert (reply.get_id(), reply.get_type(), reply.get_data()) == (
            "reply-1",
            REPLY_TYPE,
            {"user": "Ada"},
        )
    else:
        assert outcome.replies == []


# (id, broker class, TTL the stored reply carries)
REPLY_TTL: list[tuple[str, BrokerClass, int | None]] = [
    # Ingress stamps 255 on the original; the dispatcher copies it onto the reply, and the reply's
    # pass through the ingress decrements it: 254.
    ("mt-ttl-re-added-then-decremented", MT, 254),
    # The Kafka broker has no loop protection (§2.6).
    ("kafka-no-ttl", KAFKA, None),
]


@pytest.mark.parametrize(
    ("broker_class", "ttl"), [row[1:] for row in REPLY_TTL], ids=[row[0] for row in REPLY_TTL]
)
def test_s2_9_reply_carries_the_ttl_back_to_the_broker(
    broker_class: BrokerClass, ttl: int | None
) -> None:
    """The MT broker strips the TTL before the subscriber and puts it on the reply."""
    outcome = asyncio.run(dispatch_one(answer_event(200), broker_class=broker_class))
    [request] = outcome.subscriber
    assert "ce-knativebrokerttl" not in {k.lower() for k in request.headers}
    [reply] = outcome.replies
    stored = reply.get_extension("knativebrokerttl")
    assert (None if stored is None else int(stored)) == ttl


def test_s2_5_subscriber_gets_prefer_reply_and_kn_namespace() -> None:
    """Every attempt carries `Prefer: reply` and the Trigger's namespace, in binary mode."""
    outcome = asyncio.run(dispatch_one(answer(500), retry=1))
    assert len(outcome.subscriber) == 2
    for request in outcome.subscriber:
        headers = {k.lower(): v for k, v in request.headers.items()}
        assert headers["prefer"] == "reply"
        assert headers["kn-namespace"] == NAMESPACE
        assert headers["ce-id"] == "orig-1"
        assert headers["ce-type"] == TYPE


@pytest.mark.parametrize("retry", [0, 1, 3], ids=["retry-0", "retry-1", "retry-3"])
def test_s2_7_attempts_are_one_plus_retry(retry: int) -> None:
    """A retryable failure is attempted 1 + retry times, then dead-lettered once."""
    outcome = asyncio.run(dispatch_one(answer(500), retry=retry))
    assert len(outcome.subscriber) == 1 + retry
    assert len(outcome.dead_letter) == 1


def test_s2_7_retries_wait_the_exponential_backoff() -> None:
    """MT exponential backoff d·2^(k-1), d = 50 ms: at least 50 ms, then 100 ms between tries."""
    outcome = asyncio.run(dispatch_one(answer(500), retry=2, backoff_delay=0.05))
    first, second, third = outcome.subscriber
    tolerance = 0.005  # the event loop may wake a little early
    assert second.started - first.finished >= 0.05 - tolerance
    assert third.started - second.finished >= 0.10 - tolerance


def test_s2_7_transport_error_is_retried_then_dead_lettered() -> None:
    """A closed port is a transport error: retried, then DLS with code 500 (§2.8, Go)."""
    url = closed_port_url()
    outcome = asyncio.run(dispatch_one(answer(200), retry=2, subscriber_url=url))
    assert outcome.stats.retried == 2
    assert outcome.stats.dead_lettered == 1
    [request] = outcome.dead_letter
    dead = request.event()
    assert dead.get_id() == "orig-1"
    assert dead.get_extension("knativeerrordest") == url
    assert dead.get_extension("knativeerrorcode") == "500"
    encoded = dead.get_extension("knativeerrordata")
    assert isinstance(encoded, str)
    assert base64.b64decode(encoded).startswith(b"dispatch error: ")


def test_s2_7_without_dead_letter_sink_the_event_is_dropped() -> None:
    """With no DLS, an undeliverable event is dropped after its retries."""
    outcome = asyncio.run(dispatch_one(answer(500), retry=2, dead_letter=None))
    assert len(outcome.subscriber) == 3
    assert (outcome.stats.dropped, outcome.stats.dead_lettered, outcome.stats.delivered) == (
        1,
        0,
        0,
    )
    assert outcome.dead_letter == []


# (id, DLS answer, DLS attempts)
FAILING_SINKS: list[tuple[str, Responder, int]] = [
    ("dls-500-retried", answer(500), 3),
    ("dls-429-retried", answer(429), 3),
    ("dls-400-not-retried", answer(400), 1),
]


@pytest.mark.parametrize(
    ("sink", "attempts"), [row[1:] for row in FAILING_SINKS], ids=[row[0] for row in FAILING_SINKS]
)
def test_s2_1_failing_dead_letter_sink_is_retried_then_dropped(
    sink: Responder, attempts: int
) -> None:
    """DLS delivery is itself retried with the same policy; if it fails, the event is dropped."""
    outcome = asyncio.run(dispatch_one(answer(500), retry=2, dead_letter=sink))
    assert len(outcome.dead_letter) == attempts
    assert (outcome.stats.dropped, outcome.stats.dead_lettered) == (1, 0)


def test_s2_1_unreachable_dead_letter_sink_drops_the_event() -> None:
    """A DLS nobody listens on: the event is dropped after the DLS retries."""
    outcome = asyncio.run(
        dispatch_one(answer(500), retry=1, dead_letter=None, dead_letter_url=closed_port_url())
    )
    assert len(outcome.subscriber) == 2
    assert (outcome.stats.dropped, outcome.stats.dead_lettered) == (1, 0)


def test_s2_3_filtered_out_event_is_not_delivered() -> None:
    """An event the Trigger's filter fails never reaches the subscriber nor the DLS."""
    outcome = asyncio.run(dispatch_one(answer(200), filter_type="com.example.other"))
    assert outcome.subscriber == []
    assert outcome.dead_letter == []
    assert (outcome.stats.filtered_out, outcome.stats.delivered) == (1, 0)


def test_s2_6_reply_the_broker_cannot_be_reached_for_is_retried_alone_then_dead_lettered() -> None:
    """event_dispatcher.go `send`: the reply has its own retries; the subscriber is called once.

    The Broker's address refuses connections: the reply is retried (no response, §2.7), then the
    original goes to the DLS naming the reply's destination (§2.8: "or the reply URL").
    """
    broker_down = closed_port_url()
    outcome = asyncio.run(dispatch_one(answer_event(200), retry=2, reply_url=broker_down))
    assert len(outcome.subscriber) == 1
    assert outcome.stats.retried == 2
    [request] = outcome.dead_letter
    dead = request.event()
    assert dead.get_id() == "orig-1"
    assert dead.get_extension("knativeerrordest") == broker_down
    assert dead.get_extension("knativeerrorcode") == "500"
    assert outcome.replies == []


def invalid_reply() -> web.Response:
    """A well-formed binary CloudEvent without `ce-id`: sdk-go decodes it, Validate() refuses it."""
    headers = {"ce-specversion": "1.0", "ce-source": "/sub", "ce-type": REPLY_TYPE}
    return web.Response(status=200, headers=headers)


# (id, original's extensions, subscriber's answer, the ingress's reason)
REFUSED_REPLIES: list[tuple[str, dict[str, object], Responder]] = [
    # §2.9: the original arrives with TTL 2 → the ingress stores 1; the reply carries 1 back and
    # the ingress decrements it to 0: refused with 400.
    ("ttl-exhausted", {"knativebrokerttl": "2"}, answer_event(200)),
    # §2.2: the reply misses a required attribute: the ingress refuses it with 400.
    ("reply-not-a-valid-event", {}, invalid_reply),
]


@pytest.mark.parametrize(
    ("extensions", "respond"),
    [row[1:] for row in REFUSED_REPLIES],
    ids=[row[0] for row in REFUSED_REPLIES],
)
def test_s2_6_s2_8_reply_refused_by_the_broker_dead_letters_the_original_once(
    extensions: dict[str, object], respond: Responder
) -> None:
    """Corrections to §2.6/§2.8 (event_dispatcher.go `send`, retries.go `SelectiveRetry`): the
    Broker answers 400, which is not retried; the original goes once to the DLS with
    knativeerrorcode 400 and knativeerrordest = the Broker's URL; no second subscriber call."""
    outcome = asyncio.run(dispatch_one(respond, retry=2, event=original(**extensions)))
    assert len(outcome.subscriber) == 1
    assert outcome.stats.retried == 0
    assert (outcome.stats.delivered, outcome.stats.dead_lettered) == (0, 1)
    [request] = outcome.dead_letter
    dead = request.event()
    assert (dead.get_id(), dead.get_type()) == ("orig-1", TYPE)
    assert dead.get_extension("knativeerrorcode") == "400"
    assert dead.get_extension("knativeerrordest") == BROKER_URL
    assert outcome.replies == []


def test_s2_6_malformed_structured_reply_is_a_502_retried() -> None:
    """filter_handler.go `writeResponse`: `binding.ToEvent` fails on a broken body ⇒ 502, which
    the channel dispatcher retries (§2.6); then the DLS gets the 502."""
    respond = answer(200, b'{"id": ', "application/cloudevents+json")
    outcome = asyncio.run(dispatch_one(respond, retry=2))
    assert len(outcome.subscriber) == 3
    [request] = outcome.dead_letter
    assert request.event().get_extension("knativeerrorcode") is None


# (id, broker class, extensions the dead letter of a timed-out delivery carries)
TIMEOUTS: list[tuple[str, BrokerClass, set[str]]] = [
    # Corrections to §2.8: the channel gets no answer from broker-filter: no error info.
    ("mt-no-extensions", MT, set()),
    # §2.8 Kafka: no HTTP response ⇒ only knativeerrordest.
    ("kafka-dest-only", KAFKA, {"knativeerrordest"}),
]


@pytest.mark.parametrize(
    ("broker_class", "extensions"), [row[1:] for row in TIMEOUTS], ids=[r[0] for r in TIMEOUTS]
)
def test_s2_7_s2_8_timed_out_delivery_is_retried_then_dead_lettered(
    broker_class: BrokerClass, extensions: set[str]
) -> None:
    """`delivery.timeout` elapses: retried (no response, §2.7), then the DLS (§2.8)."""
    outcome = asyncio.run(
        dispatch_one(answer(202), broker_class=broker_class, retry=1, delay=0.3, timeout=0.05)
    )
    assert len(outcome.subscriber) == 2
    [request] = outcome.dead_letter
    error = {"knativeerrordest", "knativeerrorcode", "knativeerrordata"}
    assert error & set(request.event().get_attributes()) == extensions


# (id, delivery.format, content type the subscriber sees, whether ce- headers are used)
FORMATS: list[tuple[str, str | None, str, bool]] = [
    ("default-binary", None, "application/json", True),
    ("binary-forced", "binary", "application/json", True),
    ("json-structured", "json", "application/cloudevents+json", False),
]


@pytest.mark.parametrize(
    ("format", "content_type", "binary"),
    [row[1:] for row in FORMATS],
    ids=[row[0] for row in FORMATS],
)
def test_s2_5_delivery_format_selects_the_content_mode(
    format: str | None, content_type: str, binary: bool
) -> None:
    """Corrections to §2.5 (filter_handler.go, `WithEventFormat(t.Spec.Delivery.Format)`):
    binary mode unless `delivery.format: json` asks for structured mode."""
    outcome = asyncio.run(dispatch_one(answer(202), format=format))
    [request] = outcome.subscriber
    headers = {k.lower(): v for k, v in request.headers.items()}
    assert headers["content-type"].startswith(content_type)
    assert ("ce-id" in headers) is binary
    assert (request.event().get_id(), request.event().get_data()) == ("orig-1", {"name": "Ada"})
    assert headers["prefer"] == "reply"


def test_s2_3_structured_extension_values_reach_the_filter_as_strings() -> None:
    """Corrections to §2.3: ingress → channel → broker-filter are binary hops, so a structured
    event's `"amount": 5, "flag": true` matches `filter.attributes {amount: "5", flag: "true"}`
    (sdk-go types.Format: strconv.Itoa, strconv.FormatBool)."""
    outcome = asyncio.run(
        dispatch_one(
            answer(202),
            event=original(amount=5, flag=True),
            filter_attributes={"amount": "5", "flag": "true"},
        )
    )
    assert (outcome.stats.filtered_out, outcome.stats.delivered) == (0, 1)
    [request] = outcome.subscriber
    headers = {k.lower(): v for k, v in request.headers.items()}
    assert (headers["ce-amount"], headers["ce-flag"]) == ("5", "true")


# --- ordered delivery (Kafka `delivery.order: ordered`) -----------------------------------------


@pytest.fixture
def events() -> Iterator[list[CloudEvent]]:
    """Four events of the trigger's type, in publishing order."""
    yield [
        CloudEvent({"id": f"e-{i}", "source": "/test", "type": TYPE}, {"n": i}) for i in range(4)
    ]


async def run_dispatcher(ordered: bool, events: list[CloudEvent]) -> Endpoint:
    """Run a dispatcher over four events with a slow subscriber; return the subscriber."""
    broker = Broker("default", NAMESPACE, KAFKA, None, None)
    backend = MemoryBackend(broker, {}, Settings())
    await backend.open()
    subscriber = Endpoint(answer(202), delay=0.05)
    url = await subscriber.start()
    try:
        async with aiohttp.ClientSession() as session:
            trigger = Trigger(
                name="t",
                namespace=NAMESPACE,
                broker="default",
                filters=TriggerFilters(),
                subscriber=Destination(None, url),
                delivery=delivery(0),
                ordered=ordered,
            )
            dispatcher = await trigger_dispatcher(
                trigger, running_broker(broker, backend), Resolver(session), broker_url=BROKER_URL
            )
            task = asyncio.create_task(dispatcher.run())
            for evt in events:
                await backend.publish(evt)
            deadline = time.monotonic() + 5
            while dispatcher.stats.delivered < len(events) and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await dispatcher.stop()
            assert dispatcher.stats.delivered == len(events)
    finally:
        await subscriber.stop()
        await backend.close()
    return subscriber


# (id, ordered, most deliveries in flight at once)
ORDERING: list[tuple[str, bool, int]] = [
    ("ordered-one-at-a-time", True, 1),
    ("unordered-all-at-once", False, 4),
]


@pytest.mark.parametrize(
    ("ordered", "max_active"), [row[1:] for row in ORDERING], ids=[row[0] for row in ORDERING]
)
def test_ordered_delivery_sends_same_key_events_one_after_another(
    events: list[CloudEvent], ordered: bool, max_active: int
) -> None:
    """Ordered: one same-key event at a time, in publishing order; unordered: in parallel."""
    subscriber = asyncio.run(run_dispatcher(ordered, events))
    assert subscriber.max_active == max_active
    if ordered:
        ids = [r.event().get_id() for r in subscriber.requests]
        assert ids == ["e-0", "e-1", "e-2", "e-3"]
        for before, after in zip(subscriber.requests, subscriber.requests[1:], strict=False):
            assert after.started >= before.finished

"""One suite, every broker backend: what Triggers rely on, whichever backend stores the events.

Each test runs the runtime's own eventing pieces, as `knlocal run` wires them: the backend the
registry builds for the Broker's class, a RunningBroker (the ingress's and the replies' way in),
and one TriggerDispatcher per Trigger, running. Subscribers and dead-letter sinks are real aiohttp
servers on 127.0.0.1 that record what they receive and answer as each test scripts.

Where backends differ (Knative's do too), the difference is declared in :class:`BackendCase` and
each backend is held to what it declares. Kafka, RabbitMQ and NATS run against the shared servers
(`make kafka`, `make rabbitmq`, `make nats`); without one its cases skip (fail when `CI=true`).
Every test gets its own Broker, hence its own topic / exchange / stream and consumer groups /
queues / consumers, which are deleted afterwards.
"""

import asyncio
import base64
import itertools
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings import http as ce_http
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from knlocal.apis import loader
from knlocal.apis.classes import (
    KAFKA_BROKER,
    MT_CHANNEL_BASED_BROKER,
    RABBITMQ_BROKER,
    BrokerClass,
)
from knlocal.apis.duck import BackoffPolicy, DeliverySpec, Destination
from knlocal.apis.eventing import Broker, Trigger
from knlocal.apis.filters import parse_filters
from knlocal.eventing.backends import registry
from knlocal.eventing.backends.base import BrokerBackend
from knlocal.eventing.backends.kafka import topic_name
from knlocal.eventing.backends.nats import stream_name
from knlocal.eventing.backends.rabbitmq import exchange_name
from knlocal.eventing.dispatcher import TriggerDispatcher
from knlocal.eventing.retries import backoff_seconds
from knlocal.factories import running_broker, trigger_dispatcher
from knlocal.resolver import Resolver
from knlocal.settings import Settings
from tests.servers import (
    ROOT,
    drop_kafka,
    drop_nats,
    drop_rabbitmq,
    require_kafka,
    require_nats,
    require_rabbitmq,
)

NAMESPACE = "default"
FORMAT = JSONFormat()
#: Bound on every wait for a delivery: a broken backend fails the test instead of hanging it.
WAIT_SECONDS = 20.0
#: How long "nothing arrives" is watched for. Kafka delivers in milliseconds here.
QUIET_SECONDS = 1.5
#: Retries fast enough for a test; the backoff test sets its own.
FAST = DeliverySpec(retry=2, backoff_policy=BackoffPolicy.EXPONENTIAL, backoff_delay=0.01)


@dataclass(frozen=True)
class BackendCase:
    """A broker backend and what it promises, as data (style-models.md lesson 9)."""

    name: str
    #: The Broker class selecting it (`eventing.knative.dev/broker.class`).
    broker_class: BrokerClass
    #: An event delivered but not acknowledged when its consumer crashed is delivered again to
    #: the group's next consumer (Kafka: uncommitted offsets, §3.1; IMC: gone, §2.2).
    redelivers_after_crash: bool
    #: Events stored while no dispatcher runs are still delivered after the runtime restarts.
    durable: bool
    #: Response headers `kne-<name>` become dead-letter extensions `<name>` (Kafka only, §2.8).
    kne_headers_as_extensions: bool

    def config(self) -> Mapping[str, str]:
        """The data of the Broker's config, as brokers/<backend>/ declares it."""
        return _manifest_config(self.name)


@cache
def _manifest_config(backend: str) -> Mapping[str, str]:
    system = loader.load(Settings(broker=backend, manifests=ROOT))
    [broker] = system.brokers.values()
    return system.broker_config(broker)


INMEMORY = BackendCase(
    "inmemory",
    MT_CHANNEL_BASED_BROKER,
    redelivers_after_crash=False,
    durable=False,
    kne_headers_as_extensions=False,
)
KAFKA = BackendCase(
    "kafka",
    KAFKA_BROKER,
    redelivers_after_crash=True,
    durable=True,
    kne_headers_as_extensions=True,
)
RABBITMQ = BackendCase(
    "rabbitmq",
    RABBITMQ_BROKER,
    redelivers_after_crash=True,
    durable=True,
    kne_headers_as_extensions=False,
)
#: Channel-based, like inmemory: the channel template in brokers/nats/ selects JetStream (§3.4).
NATS = BackendCase(
    "nats",
    MT_CHANNEL_BASED_BROKER,
    redelivers_after_crash=True,
    durable=True,
    kne_headers_as_extensions=False,
)


# --- subscribers ----------------------------------------------------------------------------

Answer = Callable[[BaseCloudEvent], web.Response]


def status(code: int, body: bytes = b"", headers: Mapping[str, str] | None = None) -> Answer:
    """Answer every event with `code` and `body`."""
    return lambda _: web.Response(status=code, body=body, headers=headers)


#: A subscriber or sink that accepts everything.
ACCEPT = status(202)


def reply(make: Callable[[BaseCloudEvent], CloudEvent]) -> Answer:
    """Answer 200 with the event `make` builds, in binary mode (§2.6)."""

    def respond(event: BaseCloudEvent) -> web.Response:
        message = ce_http.to_binary(make(event), FORMAT)
        return web.Response(status=200, body=message.body, headers=dict(message.headers))

    return respond


@dataclass
class Delivery:
    """One request a subscriber received."""

    event: BaseCloudEvent
    at: float


@dataclass
class Subscriber:
    """A real HTTP subscriber on 127.0.0.1 that records deliveries and answers as scripted.

    :ivar hold: when set, each request waits until the event is set (a stuck delivery).
    """

    answer: Answer = ACCEPT
    delay: float = 0.0
    hold: asyncio.Event | None = None
    deliveries: list[Delivery] = field(default_factory=list)
    active: int = 0
    max_active: int = 0
    url: str = ""
    _server: TestServer | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        lowered = {k.lower(): v for k, v in request.headers.items()}
        message = ce_http.HTTPMessage(headers=lowered, body=await request.read())
        event = ce_http.from_http(message, FORMAT)
        self.deliveries.append(Delivery(event, time.monotonic()))
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            if self.hold is not None:
                await self.hold.wait()
            await asyncio.sleep(self.delay)
            return self.answer(event)
        finally:
            self.active -= 1

    async def start(self) -> None:
        """Listen on a free loopback port."""
        app = web.Application()
        app.router.add_post("/", self._handle)
        self._server = TestServer(app, host="127.0.0.1", port=0)
        await self._server.start_server()
        self.url = str(self._server.make_url("/"))

    async def stop(self) -> None:
        """Stop listening."""
        if self._server is not None:
            await self._server.close()

    def ids(self) -> list[str]:
        """The ids of the events received, in arrival order (repeats included)."""
        return [d.event.get_id() for d in self.deliveries]

    def times(self, event_id: str) -> list[float]:
        """When each attempt to deliver `event_id` arrived."""
        return [d.at for d in self.deliveries if d.event.get_id() == event_id]


# --- the runtime's eventing pieces ----------------------------------------------------------


def event(event_id: str, type_: str, data: Any = None, **extensions: str) -> CloudEvent:
    """A CloudEvent as a producer would send it."""
    attributes = {"id": event_id, "source": "/conformance", "type": type_, **extensions}
    if data is not None:
        attributes["datacontenttype"] = "application/json"
    return CloudEvent(attributes, data)


class Eventing:
    """One Broker with its backend and Triggers, wired as the runtime wires them.

    :param case: the backend under test.
    :param broker_name: the Broker's name; a restart reuses it (and so the topic and groups).
    """

    def __init__(self, case: BackendCase, broker_name: str) -> None:
        self.case = case
        self.broker = Broker(broker_name, NAMESPACE, case.broker_class, None, None)
        self.settings = Settings.from_env()
        self.backend: BrokerBackend = registry.create(self.broker, case.config(), self.settings)
        self.running = running_broker(self.broker, self.backend)
        self.dispatchers: list[TriggerDispatcher] = []
        self._runs: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        """Open the backend, as the runtime does at start."""
        await self.backend.open()
        self._session = aiohttp.ClientSession()

    async def trigger(
        self,
        name: str,
        subscriber: Subscriber,
        *,
        spec: Mapping[str, Any] | None = None,
        delivery: DeliverySpec = FAST,
        dead_letter: Subscriber | None = None,
        ordered: bool = False,
    ) -> TriggerDispatcher:
        """Subscribe Trigger `name`'s consumer group and start its dispatcher.

        :param spec: the Trigger's `spec` for its filter (`filter` / `filters`); none: all.
        """
        assert self._session is not None
        sink = None if dead_letter is None else Destination(None, dead_letter.url)
        trigger = Trigger(
            name=name,
            namespace=NAMESPACE,
            broker=self.broker.name,
            filters=parse_filters(spec or {}),
            subscriber=Destination(None, subscriber.url),
            delivery=replace(delivery, dead_letter_sink=sink),
            ordered=ordered,
        )
        dispatcher = await trigger_dispatcher(
            trigger,
            self.running,
            Resolver(self._session),
            broker_url=f"http://127.0.0.1:8081/{NAMESPACE}/{self.broker.name}",
        )
        self.dispatchers.append(dispatcher)
        self._runs.append(asyncio.create_task(dispatcher.run()))
        return dispatcher

    async def crash(self, dispatcher: TriggerDispatcher) -> None:
        """Stop a Trigger's dispatcher mid-delivery and close its consumer; nothing is acked."""
        index = self.dispatchers.index(dispatcher)
        self._runs.pop(index).cancel()
        self.dispatchers.pop(index)
        await dispatcher.stop()
        await dispatcher.subscription.close()

    async def close(self) -> None:
        """Stop dispatchers and close the backend, as the runtime does when it stops."""
        for run in self._runs:
            run.cancel()
        await asyncio.gather(*self._runs, return_exceptions=True)
        await asyncio.gather(*(d.stop() for d in self.dispatchers))
        await self.backend.close()
        if self._session is not None:
            await self._session.close()


async def eventually(check: Callable[[], bool], what: str) -> None:
    """Wait until `check()` holds, at most WAIT_SECONDS."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not check():
        assert time.monotonic() < deadline, f"still waiting after {WAIT_SECONDS} s for {what}"
        await asyncio.sleep(0.02)


Scenario = Callable[[BackendCase, str], Coroutine[Any, Any, None]]


@pytest.fixture(
    params=[INMEMORY, pytest.param(KAFKA, marks=pytest.mark.kafka), RABBITMQ, NATS],
    ids=["inmemory", "kafka", "rabbitmq", "nats"],
)
def case(request: pytest.FixtureRequest) -> BackendCase:
    """Each backend; a server-backed one only when its shared server runs."""
    backend: BackendCase = request.param
    if backend is KAFKA:
        require_kafka()
    elif backend is RABBITMQ:
        require_rabbitmq()
    elif backend is NATS:
        require_nats()
    return backend


@pytest.fixture
def broker_name(case: BackendCase) -> Iterator[str]:
    """A Broker name no other test uses; its Kafka topic and groups are dropped afterwards."""
    name = f"conformance-{uuid.uuid4().hex[:10]}"
    yield name
    if case is KAFKA:
        servers = Settings.from_env().kafka_bootstrap_servers
        broker = Broker(name, NAMESPACE, KAFKA_BROKER, None, None)
        drop_kafka(
            servers,
            [topic_name(broker)],
            [f"knative-trigger-{NAMESPACE}-{name}-{t}" for t in _TRIGGERS],
        )
    elif case is RABBITMQ:
        broker = Broker(name, NAMESPACE, RABBITMQ_BROKER, None, None)
        drop_rabbitmq(
            Settings.from_env().rabbitmq_url,
            [exchange_name(broker)],
            [f"knative-trigger-{NAMESPACE}-{name}-{t}" for t in _TRIGGERS],
        )
    elif case is NATS:
        broker = Broker(name, NAMESPACE, MT_CHANNEL_BASED_BROKER, None, None)
        drop_nats(Settings.from_env().nats_url, [stream_name(broker)])


#: Trigger names the scenarios use, suffixed with the Broker's name to keep groups apart.
_TRIGGERS = ("a", "b", "c", "d")


def run(scenario: Scenario, case: BackendCase, broker_name: str) -> None:
    """Run an async scenario to the end."""
    asyncio.run(scenario(case, broker_name))


# --- the suite ------------------------------------------------------------------------------


def test_s2_3_each_trigger_gets_exactly_the_events_its_filter_passes(
    case: BackendCase, broker_name: str
) -> None:
    """Filters are evaluated per Trigger; each matching Trigger gets each event exactly once."""

    async def scenario(case: BackendCase, broker_name: str) -> None:
        subscribers = {name: Subscriber() for name in ("a", "b", "c", "d")}
        for subscriber in subscribers.values():
            await subscriber.start()
        eventing = Eventing(case, broker_name)
        await eventing.open()
        try:
            specs: dict[str, Mapping[str, Any]] = {
                "a": {"filters": [{"exact": {"type": "dev.test.a"}}]},
                "b": {"filters": [{"prefix": {"type": "dev.test."}}]},
                "c": {"filter": {"attributes": {"type": "dev.test.b"}}},
                "d": {},  # no filter: every event
            }
            for name, spec in specs.items():
                await eventing.trigger(f"{broker_name}-{name}", subscribers[name], spec=spec)
            for event_id, type_ in (("1", "dev.test.a"), ("2", "dev.test.b"), ("3", "other.x")):
                await eventing.running.ingest(event(event_id, type_))
            await eventually(lambda: len(subscribers["d"].deliveries) == 3, "3 events at d")
            await asyncio.sleep(QUIET_SECONDS)  # and nothing more arrives anywhere
            got = {name: sorted(s.ids()) for name, s in subscribers.items()}
            assert got == {"a": ["1"], "b": ["1", "2"], "c": ["2"], "d": ["1", "2", "3"]}
        finally:
            await eventing.close()
            for subscriber in subscribers.values():
                await subscriber.stop()

    run(scenario, case, broker_name)


def test_s2_6_replies_are_stored_and_routed_to_every_matching_trigger(
    case: BackendCase, broker_name: str
) -> None:
    """A 2xx CloudEvent answer is re-published to the Broker and evaluated against all Triggers."""

    def created(request: BaseCloudEvent) -> CloudEvent:
        return event(f"reply-to-{request.get_id()}", "dev.test.created", {"user": "Ada"})

    async def scenario(case: BackendCase, broker_name: str) -> None:
        creator = Subscriber(reply(created))
        watcher = Subscriber()
        everything = Subscriber()
        for subscriber in (creator, watcher, everything):
            await subscriber.start()
        eventing = Eventing(case, broker_name)
        await eventing.open()
        try:
            for name, subscriber, type_ in (
                ("a", creator, "dev.test.create"),
                ("b", watcher, "dev.test.created"),
            ):
                spec = {"filters": [{"exact": {"type": type_}}]}
                await eventing.trigger(f"{broker_name}-{name}", subscriber, spec=spec)
            await eventing.trigger(f"{broker_name}-c", everything)
            await eventing.running.ingest(event("req-1", "dev.test.create", {"name": "Ada"}))
            await eventually(lambda: len(watcher.deliveries) == 1, "the reply at its Trigger")
            await eventually(lambda: len(everything.deliveries) == 2, "both events at 'all'")
            await asyncio.sleep(QUIET_SECONDS)
            [delivered] = watcher.deliveries
            assert delivered.event.get_id() == "reply-to-req-1"
            assert delivered.event.get_data() == {"user": "Ada"}
            assert sorted(everything.ids()) == ["reply-to-req-1", "req-1"]
            assert creator.ids() == ["req-1"]  # its own reply did not pass its filter
        finally:
            await eventing.close()
            for subscriber in (creator, watcher, everything):
                await subscriber.stop()

    run(scenario, case, broker_name)


#: (answer status, attempts with retry = 2, dead-lettered) — §2.1 and §2.7.
STATUSES: dict[int, tuple[int, bool]] = {
    200: (1, False),
    202: (1, False),
    204: (1, False),
    500: (3, True),
    503: (3, True),
    404: (3, True),
    408: (3, True),
    409: (3, True),
    429: (3, True),
    400: (1, True),
    401: (1, True),
    403: (1, True),
    410: (1, True),
}


def test_s2_7_retryable_statuses_are_retried_others_dead_lettered_at_once(
    case: BackendCase, broker_name: str
) -> None:
    """5xx, 404, 408, 409, 429 get 1 + retry attempts; other 4xx one; then the DLS gets it."""

    def by_status(received: BaseCloudEvent) -> web.Response:
        data = received.get_data()
        assert isinstance(data, dict)
        return web.Response(status=data["status"])

    async def scenario(case: BackendCase, broker_name: str) -> None:
        subscriber = Subscriber(by_status)
        sink = Subscriber()
        await subscriber.start()
        await sink.start()
        eventing = Eventing(case, broker_name)
        await eventing.open()
        try:
            await eventing.trigger(f"{broker_name}-a", subscriber, dead_letter=sink)
            for code in STATUSES:
                await eventing.running.ingest(event(f"s{code}", "dev.test.a", {"status": code}))
            expected_dead = sorted(f"s{code}" for code, (_, dead) in STATUSES.items() if dead)
            await eventually(lambda: len(sink.deliveries) == len(expected_dead), "dead letters")
            await asyncio.sleep(QUIET_SECONDS)
            attempts = {code: len(subscriber.times(f"s{code}")) for code in STATUSES}
            assert attempts == {code: expected for code, (expected, _) in STATUSES.items()}
            assert sorted(sink.ids()) == expected_dead
        finally:
            await eventing.close()
            await subscriber.stop()
            await sink.stop()

    run(scenario, case, broker_name)


#: Tolerance on a backoff gap: asyncio may wake a timer ~1 ms early; a loaded 2-core machine and
#: the HTTP round trip make it late, by far less than the smallest difference between formulas.
EARLY, LATE = 0.01, 0.3


def test_s2_7_backoff_gaps_follow_the_broker_class_formula(
    case: BackendCase, broker_name: str
) -> None:
    """The waits between attempts are `backoff_seconds` of the class: exponential and linear."""
    specs = {
        "a": DeliverySpec(retry=3, backoff_policy=BackoffPolicy.EXPONENTIAL, backoff_delay=0.1),
        "b": DeliverySpec(retry=3, backoff_policy=BackoffPolicy.LINEAR, backoff_delay=0.1),
    }

    async def scenario(case: BackendCase, broker_name: str) -> None:
        subscribers = {name: Subscriber(status(503)) for name in specs}
        sink = Subscriber()
        for subscriber in (*subscribers.values(), sink):
            await subscriber.start()
        eventing = Eventing(case, broker_name)
        await eventing.open()
        try:
            for name, spec in specs.items():
                await eventing.trigger(
                    f"{broker_name}-{name}",
                    subscribers[name],
                    spec={"filters": [{"exact": {"type": f"dev.test.{name}"}}]},
                    delivery=spec,
                    dead_letter=sink,
                )
                await eventing.running.ingest(event(name, f"dev.test.{name}"))
            await eventually(lambda: len(sink.deliveries) == 2, "both events dead-lettered")
            for name, spec in specs.items():
                times = subscribers[name].times(name)
                assert len(times) == 4, times
                gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
                for retry, gap in enumerate(gaps, start=1):
                    wanted = backoff_seconds(spec, retry, case.broker_class)
                    assert wanted - EARLY <= gap <= wanted + LATE, (name, retry, gaps)
        finally:
            await eventing.close()
            for subscriber in (*subscribers.values(), sink):
                await subscriber.stop()

    run(scenario, case, broker_name)


def test_s2_8_dead_letter_sink_gets_the_original_with_error_extensions(
    case: BackendCase, broker_name: str
) -> None:
    """The DLS gets the original event (id, type, data) with knativeerror* extensions."""

    async def scenario(case: BackendCase, broker_name: str) -> None:
        subscriber = Subscriber(status(500, b"boom", {"kne-reason": "quota"}))
        sink = Subscriber()
        await subscriber.start()
        await sink.start()
        eventing = Eventing(case, broker_name)
        await eventing.open()
        try:
            await eventing.trigger(f"{broker_name}-a", subscriber, dead_letter=sink)
            await eventing.running.ingest(event("e1", "dev.test.a", {"name": "Ada"}))
            await eventually(lambda: len(sink.deliveries) == 1, "the dead letter")
            dead = sink.deliveries[0].event
            assert (dead.get_id(), dead.get_type(), dead.get_data()) == (
                "e1",
                "dev.test.a",
                {"name": "Ada"},
            )
            assert dead.get_extension("knativeerrordest") == subscriber.url
            assert dead.get_extension("knativeerrorcode") == "500"
            encoded = dead.get_extension("knativeerrordata")
            assert isinstance(encoded, str)
            assert base64.b64decode(encoded) == b"boom"
            expected_reason = "quota" if case.kne_headers_as_extensions else None
            assert dead.get_extension("reason") == expected_reason
        finally:
            await eventing.close()
            await subscriber.stop()
            await sink.stop()

    run(scenario, case, broker_name)


def test_s3_1_ordered_trigger_delivers_one_at_a_time_in_order(
    case: BackendCase, broker_name: str
) -> None:
    """`delivery.order: ordered`: events of one partition key arrive in order, never overlapping."""

    async def scenario(case: BackendCase, broker_name: str) -> None:
        subscriber = Subscriber(delay=0.05)
        await subscriber.start()
        eventing = Eventing(case, broker_name)
        await eventing.open()
        try:
            await eventing.trigger(f"{broker_name}-a", subscriber, ordered=True)
            ids = [f"o{i}" for i in range(6)]
            for event_id in ids:
                await eventing.running.ingest(event(event_id, "dev.test.a", partitionkey="user-1"))
            await eventually(lambda: len(subscriber.deliveries) == len(ids), "every event")
            assert subscriber.ids() == ids
            assert subscriber.max_active == 1
        finally:
            await eventing.close()
            await subscriber.stop()

    run(scenario, case, broker_name)


def test_s3_1_event_unacknowledged_at_a_crash_comes_back_as_the_backend_declares(
    case: BackendCase, broker_name: str
) -> None:
    """A consumer dies mid-delivery; the group's next consumer gets the event again (Kafka)."""

    async def scenario(case: BackendCase, broker_name: str) -> None:
        stuck = Subscriber(hold=asyncio.Event())
        healthy = Subscriber()
        await stuck.start()
        await healthy.start()
        eventing = Eventing(case, broker_name)
        await eventing.open()
        try:
            dispatcher = await eventing.trigger(f"{broker_name}-a", stuck)
            await eventing.running.ingest(event("e1", "dev.test.a", {"n": 1}))
            await eventually(lambda: len(stuck.deliveries) == 1, "the first delivery")
            await eventing.crash(dispatcher)
            await eventing.trigger(f"{broker_name}-a", healthy)
            if case.redelivers_after_crash:
                await eventually(lambda: len(healthy.deliveries) == 1, "the redelivery")
                assert healthy.deliveries[0].event.get_data() == {"n": 1}
            await asyncio.sleep(QUIET_SECONDS)
            assert healthy.ids() == (["e1"] if case.redelivers_after_crash else [])
        finally:
            await eventing.close()
            await stuck.stop()
            await healthy.stop()

    run(scenario, case, broker_name)


def test_s3_1_events_stored_before_a_restart_are_delivered_after_it_if_durable(
    case: BackendCase, broker_name: str
) -> None:
    """Events accepted (202) while the Trigger's dispatcher was down survive a runtime restart."""

    async def scenario(case: BackendCase, broker_name: str) -> None:
        subscriber = Subscriber()
        await subscriber.start()
        before = Eventing(case, broker_name)
        await before.open()
        try:
            # The Trigger exists (its group is subscribed), but the runtime stops before it
            # delivers anything: its dispatcher is stopped at once.
            dispatcher = await before.trigger(f"{broker_name}-a", subscriber)
            await before.crash(dispatcher)
            for i in range(5):
                await before.running.ingest(event(f"e{i}", "dev.test.a", {"n": i}))
        finally:
            await before.close()
        after = Eventing(case, broker_name)
        await after.open()
        try:
            await after.trigger(f"{broker_name}-a", subscriber)
            expected = [f"e{i}" for i in range(5)] if case.durable else []
            if case.durable:
                await eventually(lambda: len(subscriber.deliveries) == 5, "5 stored events")
            await asyncio.sleep(QUIET_SECONDS)
            assert sorted(subscriber.ids()) == expected
        finally:
            await after.close()
            await subscriber.stop()

    run(scenario, case, broker_name)

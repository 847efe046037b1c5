"""The broker ingress over HTTP: Knative's contract (§2.2) and loop protection (§2.9)."""

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from cloudevents.core.bindings import http as ce_http
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from knlocal.apis.eventing import Broker
from knlocal.apis.filters import TriggerFilters
from knlocal.eventing.backends.base import Received
from knlocal.eventing.backends.memory import MemoryBackend, MemorySubscription
from knlocal.eventing.broker import ingress_app
from knlocal.eventing.classes import KAFKA_BROKER, MT_CHANNEL_BASED_BROKER, BrokerClass
from knlocal.eventing.filters import FilterResult, build_trigger_filter
from knlocal.factories import running_broker
from knlocal.settings import Settings

TYPE = "dev.knuser.user.created.v1"


def event(**extensions: Any) -> CloudEvent:
    """An event to send, with a fixed id and JSON data."""
    return CloudEvent(
        {"id": "e-1", "source": "/test", "type": TYPE, "datacontenttype": "application/json"}
        | extensions,
        {"hello": "world"},
    )


def binary(evt: CloudEvent) -> tuple[dict[str, str], bytes]:
    """The event in binary content mode."""
    message = ce_http.to_binary(evt, JSONFormat())
    return dict(message.headers), message.body


def structured(evt: CloudEvent) -> tuple[dict[str, str], bytes]:
    """The event in structured content mode."""
    message = ce_http.to_structured(evt, JSONFormat())
    return dict(message.headers), message.body


def without(headers: dict[str, str], name: str) -> dict[str, str]:
    """Headers without one of them."""
    return {k: v for k, v in headers.items() if k.lower() != name}


Scenario = Callable[[TestClient[Any, Any], MemorySubscription], Awaitable[Any]]


def run(scenario: Scenario, broker_class: BrokerClass = MT_CHANNEL_BASED_BROKER) -> Any:
    """Serve the ingress of broker default/default (in-memory backend) and run `scenario`."""

    async def main() -> Any:
        broker = Broker("default", "default", broker_class, None, None)
        backend = MemoryBackend(broker, {}, Settings())
        await backend.open()
        subscription = await backend.subscribe("knative-trigger-default-t", ordered=False)
        assert isinstance(subscription, MemorySubscription)
        app = ingress_app({("default", "default"): running_broker(broker, backend)})
        try:
            async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
                return await scenario(client, subscription)
        finally:
            await backend.close()

    return asyncio.run(main())


GOOD_BINARY = binary(event())
GOOD_STRUCTURED = structured(event())
V03_BINARY = (
    {"ce-specversion": "0.3", "ce-id": "e-1", "ce-source": "/test", "ce-type": TYPE}
    | {"Content-Type": "application/json"},
    b'{"hello": "world"}',
)
V03_STRUCTURED = (
    {"Content-Type": "application/cloudevents+json"},
    json.dumps(
        {"specversion": "0.3", "id": "e-1", "source": "/test", "type": TYPE}
        | {"datacontenttype": "application/json", "data": {"hello": "world"}}
    ).encode(),
)

# (id, method, path, headers, body, status, stored in the subscription's queue)
CONTRACT: list[tuple[str, str, str, dict[str, str], bytes, int, bool]] = [
    ("post-binary", "POST", "/default/default", *GOOD_BINARY, 202, True),
    ("post-structured", "POST", "/default/default", *GOOD_STRUCTURED, 202, True),
    ("get-is-405", "GET", "/default/default", {}, b"", 405, False),
    ("put-is-405", "PUT", "/default/default", *GOOD_BINARY, 405, False),
    ("root-is-404", "POST", "/", *GOOD_BINARY, 404, False),
    ("one-segment-is-400", "POST", "/a", *GOOD_BINARY, 400, False),
    ("three-segments-is-400", "POST", "/a/b/c", *GOOD_BINARY, 400, False),
    ("unknown-broker-is-404", "POST", "/default/other", *GOOD_BINARY, 404, False),
    ("unknown-namespace-is-404", "POST", "/team/default", *GOOD_BINARY, 404, False),
    (
        "plain-json-is-400",
        "POST",
        "/default/default",
        {"Content-Type": "application/json"},
        b'{"hello": "world"}',
        400,
        False,
    ),
    ("no-body-no-headers-is-400", "POST", "/default/default", {}, b"", 400, False),
    (
        "malformed-structured-is-400",
        "POST",
        "/default/default",
        {"Content-Type": "application/cloudevents+json"},
        b'{"id": "e-1", ',
        400,
        False,
    ),
    (
        "missing-id-binary-is-400",
        "POST",
        "/default/default",
        without(GOOD_BINARY[0], "ce-id"),
        GOOD_BINARY[1],
        400,
        False,
    ),
    (
        "missing-source-binary-is-400",
        "POST",
        "/default/default",
        without(GOOD_BINARY[0], "ce-source"),
        GOOD_BINARY[1],
        400,
        False,
    ),
    (
        "missing-type-binary-is-400",
        "POST",
        "/default/default",
        without(GOOD_BINARY[0], "ce-type"),
        GOOD_BINARY[1],
        400,
        False,
    ),
    (
        "missing-specversion-binary-is-400",
        "POST",
        "/default/default",
        without(GOOD_BINARY[0], "ce-specversion"),
        GOOD_BINARY[1],
        400,
        False,
    ),
    # ingress_handler.go decodes and validates before it looks the broker up (corrections
    # to §2.2): an invalid event to an unknown broker is 400, a valid one 404.
    (
        "invalid-event-to-unknown-broker-is-400",
        "POST",
        "/default/other",
        {"Content-Type": "application/json"},
        b'{"hello": "world"}',
        400,
        False,
    ),
    ("valid-event-to-unknown-broker-is-404", "POST", "/default/other", *GOOD_BINARY, 404, False),
    # Corrections to §2.2: CloudEvents 0.3 is accepted (202), in both content modes.
    ("specversion-0.3-binary-is-202", "POST", "/default/default", *V03_BINARY, 202, True),
    ("specversion-0.3-structured-is-202", "POST", "/default/default", *V03_STRUCTURED, 202, True),
    (
        "missing-id-structured-is-400",
        "POST",
        "/default/default",
        {"Content-Type": "application/cloudevents+json"},
        json.dumps({"specversion": "1.0", "source": "/test", "type": TYPE}).encode(),
        400,
        False,
    ),
]


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "status", "stored"),
    [row[1:] for row in CONTRACT],
    ids=[row[0] for row in CONTRACT],
)
def test_s2_2_ingress_contract(
    method: str, path: str, headers: dict[str, str], body: bytes, status: int, stored: bool
) -> None:
    """Method, path and body decide the status; only an accepted event reaches the triggers."""

    async def scenario(client: TestClient[Any, Any], subscription: MemorySubscription) -> None:
        response = await client.request(method, path, headers=headers, data=body)
        assert response.status == status
        if status == 202:
            assert await response.read() == b""
        else:
            error = (await response.json())["error"]
            assert isinstance(error, str)
            assert error
        if stored:
            received = subscription.queue.get_nowait()
            assert received.event.get_id() == "e-1"
            assert received.event.get_type() == TYPE
            assert received.event.get_data() == {"hello": "world"}
        assert subscription.queue.empty()

    run(scenario)


def test_s2_2_options_answers_the_webhook_handshake() -> None:
    """OPTIONS is 200 with Allow and the WebHook headers."""

    async def scenario(client: TestClient[Any, Any], subscription: MemorySubscription) -> None:
        response = await client.options("/default/default")
        assert response.status == 200
        assert response.headers["Allow"] == "POST, OPTIONS"
        assert response.headers["WebHook-Allowed-Origin"] == "*"
        assert response.headers["WebHook-Allowed-Rate"] == "*"
        assert subscription.queue.empty()

    run(scenario)


def test_s2_2_errors_say_what_was_wrong() -> None:
    """The 400 for a missing id names the attribute; the 404 names the broker."""

    async def scenario(client: TestClient[Any, Any], subscription: MemorySubscription) -> None:
        headers, body = GOOD_BINARY
        missing = await client.post(
            "/default/default", headers=without(headers, "ce-id"), data=body
        )
        assert "id" in (await missing.json())["error"]
        unknown = await client.post("/default/nope", headers=headers, data=body)
        assert "'nope'" in (await unknown.json())["error"]

    run(scenario)


def test_s2_2_accepted_event_is_stamped_with_its_arrival_time() -> None:
    """The MT broker adds `knativearrivaltime` at ingress."""

    async def scenario(client: TestClient[Any, Any], subscription: MemorySubscription) -> Received:
        await client.post("/default/default", headers=GOOD_BINARY[0], data=GOOD_BINARY[1])
        return subscription.queue.get_nowait()

    received = run(scenario)
    assert isinstance(received.event.get_extension("knativearrivaltime"), str)


# (id, knativebrokerttl sent or None, status, TTL stored)
TTL: list[tuple[str, str | None, int, int | None]] = [
    ("absent-is-stamped-255", None, 202, 255),
    ("5-is-decremented-to-4", "5", 202, 4),
    ("255-is-decremented-to-254", "255", 202, 254),
    ("2-is-decremented-to-1", "2", 202, 1),
    ("1-is-exhausted", "1", 400, None),
    ("0-is-exhausted", "0", 400, None),
]


@pytest.mark.parametrize(
    ("ttl", "status", "stored"), [row[1:] for row in TTL], ids=[row[0] for row in TTL]
)
def test_s2_9_ttl_at_ingress(ttl: str | None, status: int, stored: int | None) -> None:
    """The MT broker stamps 255 when absent, else decrements; at 0 or below it refuses (400)."""
    extensions = {} if ttl is None else {"knativebrokerttl": ttl}
    headers, body = binary(event(**extensions))

    async def scenario(client: TestClient[Any, Any], subscription: MemorySubscription) -> None:
        response = await client.post("/default/default", headers=headers, data=body)
        assert response.status == status
        if stored is None:
            assert "knativebrokerttl" in (await response.json())["error"]
            assert subscription.queue.empty()
        else:
            received = subscription.queue.get_nowait()
            assert int(received.event.get_extension("knativebrokerttl")) == stored

    run(scenario)


@pytest.mark.parametrize(("sent", "stored"), [("abc", 255), ("3.7", 2)], ids=["text", "float"])
def test_s2_9_ttl_that_is_not_an_integer(sent: str, stored: int) -> None:
    """pkg/broker/ttl.go TTLDefaulter: a TTL that types.ToInteger cannot read restarts at 255;
    a number written as text is truncated first ("3.7" → 3, then decremented to 2)."""
    headers, body = binary(event(knativebrokerttl=sent))

    async def scenario(client: TestClient[Any, Any], subscription: MemorySubscription) -> Any:
        response = await client.post("/default/default", headers=headers, data=body)
        assert response.status == 202
        return subscription.queue.get_nowait().event.get_extension("knativebrokerttl")

    assert int(run(scenario)) == stored


STRUCTURED = {"Content-Type": "application/cloudevents+json"}
_BASE = {"specversion": "1.0", "id": "e-1", "source": "/test", "type": TYPE}

# (id, headers, body): inputs that must get a 4xx, never a 5xx (§2.2).
ODD_INPUTS: list[tuple[str, dict[str, str], bytes]] = [
    ("json-nested-too-deep", STRUCTURED, b"[" * 100_000),
    ("not-utf8", STRUCTURED, b"\xff\xfe"),
    ("json-array", STRUCTURED, b"[1]"),
    ("id-not-a-string", STRUCTURED, json.dumps(_BASE | {"id": 5}).encode()),
    ("specversion-2.0", STRUCTURED, json.dumps(_BASE | {"specversion": "2.0"}).encode()),
    ("time-not-a-time", STRUCTURED, json.dumps(_BASE | {"time": "yesterday"}).encode()),
    ("bad-extension-name", STRUCTURED, json.dumps(_BASE | {"Bad-Name": "x"}).encode()),
    ("data-and-data-base64", STRUCTURED,
     json.dumps(_BASE | {"data": 1, "data_base64": "AA=="}).encode()),
    # An extension value sdk-go cannot write into a binary-mode header (types.Format).
    ("extension-object", STRUCTURED, json.dumps(_BASE | {"x": {"a": 1}}).encode()),
    ("extension-out-of-int32", STRUCTURED, json.dumps(_BASE | {"x": 2**31}).encode()),
    ("binary-time-not-a-time",
     {f"ce-{k}": v for k, v in _BASE.items()} | {"ce-time": "nope"}, b""),
]  # fmt: skip


@pytest.mark.parametrize(
    ("headers", "body"), [row[1:] for row in ODD_INPUTS], ids=[row[0] for row in ODD_INPUTS]
)
def test_s2_2_no_input_gets_a_5xx(headers: dict[str, str], body: bytes) -> None:
    """§2.2: what the sender got wrong is a 400 with a JSON error, and nothing is stored."""

    async def scenario(client: TestClient[Any, Any], subscription: MemorySubscription) -> None:
        response = await client.post("/default/default", headers=headers, data=body)
        assert response.status == 400
        assert (await response.json())["error"]
        assert subscription.queue.empty()

    run(scenario)


def test_s2_3_structured_extension_values_become_strings_as_after_a_binary_hop() -> None:
    """Corrections to §2.3: in the MT broker the event crosses binary HTTP hops (ingress →
    channel → broker-filter) before the filter, where sdk-go's types.Format writes 5 as "5"
    and true as "true": `filter.attributes {amount: "5", flag: "true"}` matches."""
    body = json.dumps(_BASE | {"amount": 5, "flag": True, "gone": None}).encode()

    async def scenario(client: TestClient[Any, Any], subscription: MemorySubscription) -> Any:
        response = await client.post("/default/default", headers=STRUCTURED, data=body)
        assert response.status == 202
        return subscription.queue.get_nowait().event

    stored = run(scenario)
    assert (stored.get_extension("amount"), stored.get_extension("flag")) == ("5", "true")
    assert stored.get_extension("gone") is None
    matching = build_trigger_filter(
        TriggerFilters({"amount": "5", "flag": "true"}), MT_CHANNEL_BASED_BROKER
    )
    assert matching.evaluate(stored.get_attributes()) is FilterResult.PASS


def test_s2_9_kafka_broker_has_no_ttl() -> None:
    """The Kafka broker has no loop protection: no TTL is stamped (§2.6, §6)."""
    headers, body = binary(event())

    async def scenario(client: TestClient[Any, Any], subscription: MemorySubscription) -> Received:
        response = await client.post("/default/default", headers=headers, data=body)
        assert response.status == 202
        return subscription.queue.get_nowait()

    received = run(scenario, broker_class=KAFKA_BROKER)
    assert received.event.get_extension("knativebrokerttl") is None
    assert received.event.get_id() == "e-1"

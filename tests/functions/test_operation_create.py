"""operation-create: `POST /users` stores a pending operation and emits the creation request."""

import asyncio
import json
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from functions import operation_create
from functions.catalog import USER_CREATION_REQUESTED
from functions.ce import BaseCloudEvent
from functions.contract import HttpRequest
from functions.errors import FunctionError, ServiceUnavailable
from functions.sink import HttpSink
from functions.stores.base import OperationStore
from functions.stores.sqlite import SqliteTable


class Recorder:
    """The injected `publish`: records each event; optionally refuses like a broker that is down."""

    def __init__(self, refuse: str | None = None) -> None:
        self.events: list[BaseCloudEvent] = []
        self.refuse = refuse

    def __call__(self, event: BaseCloudEvent) -> None:
        self.events.append(event)
        if self.refuse is not None:
            raise ServiceUnavailable(self.refuse)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """The operations database file."""
    return tmp_path / "operations.sqlite3"


@pytest.fixture
def operations(db: Path) -> OperationStore:
    """The operation service's real SQLite store."""
    return OperationStore(SqliteTable(db))


def rows(db: Path) -> int:
    """How many operations the database file holds."""
    with closing(sqlite3.connect(db)) as conn:
        count: int = conn.execute("SELECT count(*) FROM records").fetchone()[0]
    return count


def only_record(db: Path) -> dict[str, Any]:
    """The one operation the database file holds, as stored."""
    with closing(sqlite3.connect(db)) as conn:
        [(body,)] = conn.execute("SELECT body FROM records").fetchall()
    record: dict[str, Any] = json.loads(body)
    return record


def post(body: Any, content_type: str | None = "application/json", **headers: str) -> HttpRequest:
    """A `POST /users` request; `body` is JSON-encoded unless it is bytes."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    all_headers = dict(headers)
    if content_type is not None:
        all_headers["Content-Type"] = content_type
    return HttpRequest("POST", "/users", all_headers, raw)


def test_accepts_stores_pending_and_publishes_the_request(
    operations: OperationStore, db: Path
) -> None:
    """A valid request gets 202 with the pending operation and its Location; one event is sent."""
    publish = Recorder()
    response = operation_create.handle(
        post({"name": "  Ada Lovelace "}), operations=operations, publish=publish
    )
    assert response.status == 202
    body = response.body
    operation_id = body["id"]
    uuid.UUID(operation_id)
    assert response.headers == {"Location": f"/operations/{operation_id}"}
    assert body["status"] == "pending"
    assert (body["result"], body["error"]) == (None, None)
    assert set(body) == {"id", "status", "createdAt", "updatedAt", "result", "error", "traceId"}
    # No trace context around a bare handler call: none is invented (functions/tracing.py).
    assert body["traceId"] is None
    stored = operations.get(operation_id)
    assert stored is not None
    assert (stored["status"], stored["request"]) == ("pending", {"name": "Ada Lovelace"})
    assert rows(db) == 1
    [event] = publish.events
    assert event.get_type() == USER_CREATION_REQUESTED
    assert event.get_source() == "/users-service"
    assert event.get_data() == {"operationId": operation_id, "name": "Ada Lovelace"}
    assert event.get_extension("operationid") == operation_id
    assert event.get_extension("partitionkey") == operation_id


# (id, body, content type, status, text the error must contain)
BAD_INPUT: list[tuple[str, Any, str | None, int, str]] = [
    ("malformed-json", b'{"name": ', "application/json", 400, "body is not valid JSON"),
    ("not-utf8", b"\xff\xfe{", "application/json", 400, "body is not valid JSON"),
    (
        "wrong-content-type",
        {"name": "Ada"},
        "text/plain",
        415,
        "expected Content-Type: application/json; found text/plain",
    ),
    (
        "no-content-type",
        {"name": "Ada"},
        None,
        415,
        "expected Content-Type: application/json; found none",
    ),
    ("missing-name", {}, "application/json", 400, "'name' is a required property"),
    ("empty-name", {"name": ""}, "application/json", 400, "invalid body at name:"),
    ("blank-name", {"name": " \t "}, "application/json", 400, "at name: must not be blank"),
    ("name-is-a-number", {"name": 5}, "application/json", 400, "at name: 5 is not of type"),
    ("name-is-null", {"name": None}, "application/json", 400, "at name: None is not of type"),
    ("name-is-a-list", {"name": ["Ada"]}, "application/json", 400, "invalid body at name:"),
    (
        "extra-field",
        {"name": "Ada", "role": "admin"},
        "application/json",
        400,
        "'role' was unexpected",
    ),
    ("name-201-characters", {"name": "a" * 201}, "application/json", 400, "is too long"),
    ("body-is-a-list", ["Ada"], "application/json", 400, "is not of type 'object'"),
    ("body-is-a-string", "Ada", "application/json", 400, "is not of type 'object'"),
]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "message"),
    [row[1:] for row in BAD_INPUT],
    ids=[row[0] for row in BAD_INPUT],
)
def test_bad_input_is_refused_and_nothing_is_stored_or_sent(
    operations: OperationStore,
    db: Path,
    body: Any,
    content_type: str | None,
    status: int,
    message: str,
) -> None:
    """Bad input gets a 4xx saying what was wrong; no operation is stored and no event sent."""
    publish = Recorder()
    with pytest.raises(FunctionError) as caught:
        operation_create.handle(post(body, content_type), operations=operations, publish=publish)
    assert caught.value.status == status
    assert message in caught.value.message
    assert rows(db) == 0
    assert publish.events == []


# (id, body, content type): the edges that are still valid
VALID_EDGES: list[tuple[str, dict[str, Any], str]] = [
    ("name-200-characters", {"name": "b" * 200}, "application/json"),
    ("content-type-with-charset", {"name": "Ada"}, "application/json; charset=utf-8"),
    ("content-type-upper-case", {"name": "Ada"}, "Application/JSON"),
]


@pytest.mark.parametrize(
    ("body", "content_type"),
    [row[1:] for row in VALID_EDGES],
    ids=[row[0] for row in VALID_EDGES],
)
def test_valid_edges_are_accepted(
    operations: OperationStore, body: dict[str, Any], content_type: str
) -> None:
    """The longest allowed name and parameterised JSON content types are accepted."""
    publish = Recorder()
    response = operation_create.handle(
        post(body, content_type), operations=operations, publish=publish
    )
    assert response.status == 202
    assert len(publish.events) == 1


def test_idempotency_key_returns_the_same_operation(operations: OperationStore, db: Path) -> None:
    """Retrying with the same Idempotency-Key returns the same operation; one is stored."""
    publish = Recorder()
    request = post({"name": "Ada"}, **{"Idempotency-Key": "retry-1"})
    first = operation_create.handle(request, operations=operations, publish=publish)
    second = operation_create.handle(request, operations=operations, publish=publish)
    assert second.body == first.body
    assert second.headers == first.headers
    assert rows(db) == 1


def test_idempotency_key_retry_while_pending_publishes_again(operations: OperationStore) -> None:
    """A retry with the same key while the operation is pending publishes the request again.

    Deliberate: if operation-create died between storing the operation and publishing its event,
    the retry is what gets the flow going; the consumers are idempotent, so a second event for a
    flow already under way changes nothing.
    """
    publish = Recorder()
    request = post({"name": "Ada"}, **{"Idempotency-Key": "retry-2"})
    first = operation_create.handle(request, operations=operations, publish=publish)
    second = operation_create.handle(request, operations=operations, publish=publish)
    assert first.body["id"] == second.body["id"]
    assert len(publish.events) == 2
    assert publish.events[0].get_data() == publish.events[1].get_data()


def test_idempotency_key_retry_after_the_end_publishes_nothing(operations: OperationStore) -> None:
    """Once the operation finished, a retry with its key returns it and publishes nothing."""
    publish = Recorder()
    request = post({"name": "Ada"}, **{"Idempotency-Key": "retry-3"})
    created = operation_create.handle(request, operations=operations, publish=publish)
    operations.complete(created.body["id"], {"user": {"id": "u", "name": "Ada"}})
    again = operation_create.handle(request, operations=operations, publish=publish)
    assert again.body["status"] == "completed"
    assert len(publish.events) == 1


def test_different_idempotency_keys_are_different_operations(
    operations: OperationStore, db: Path
) -> None:
    """Two keys (or none) make two operations, each with its event."""
    publish = Recorder()
    one = operation_create.handle(
        post({"name": "Ada"}, **{"Idempotency-Key": "a"}), operations=operations, publish=publish
    )
    two = operation_create.handle(
        post({"name": "Ada"}, **{"Idempotency-Key": "b"}), operations=operations, publish=publish
    )
    three = operation_create.handle(post({"name": "Ada"}), operations=operations, publish=publish)
    assert len({one.body["id"], two.body["id"], three.body["id"]}) == 3
    assert rows(db) == 3
    assert len(publish.events) == 3


def test_broker_refusal_is_202_and_the_operation_stays_pending_with_its_event(
    operations: OperationStore, db: Path
) -> None:
    """Broker down, store up: 202, the operation pending with the very event it tried to send."""
    publish = Recorder(refuse="the broker at http://broker/default/default refused: HTTP 500")
    response = operation_create.handle(
        post({"name": "Ada"}), operations=operations, publish=publish
    )
    assert response.status == 202
    assert response.body["status"] == "pending"
    [event] = publish.events
    stored = only_record(db)
    assert stored["status"] == "pending"
    assert stored["error"] is None
    # The outbox: the event is stored with the operation, so it can be published again as is.
    again = operation_create.stored_event(stored)
    assert (again.get_id(), again.get_type(), again.get_data()) == (
        event.get_id(),
        USER_CREATION_REQUESTED,
        {"operationId": stored["id"], "name": "Ada"},
    )
    assert again.get_extension("partitionkey") == stored["id"]


def test_idempotency_key_of_201_characters_is_400_and_stores_nothing(
    operations: OperationStore, db: Path
) -> None:
    """The OpenAPI allows at most 200 characters; one more is refused before anything is stored."""
    publish = Recorder()
    with pytest.raises(FunctionError) as caught:
        operation_create.handle(
            post({"name": "Ada"}, **{"Idempotency-Key": "k" * 201}),
            operations=operations,
            publish=publish,
        )
    assert caught.value.status == 400
    assert "Idempotency-Key must be 1 to 200 characters; found 201" in caught.value.message
    assert rows(db) == 0
    assert publish.events == []
    ok = operation_create.handle(
        post({"name": "Ada"}, **{"Idempotency-Key": "k" * 200}),
        operations=operations,
        publish=publish,
    )
    assert ok.status == 202


def test_idempotency_key_reused_with_another_body_is_422(
    operations: OperationStore, db: Path
) -> None:
    """The same key with a different body: 422 saying so; the first operation is untouched."""
    publish = Recorder()
    key = {"Idempotency-Key": "once"}
    first = operation_create.handle(
        post({"name": "Ada"}, **key), operations=operations, publish=publish
    )
    with pytest.raises(FunctionError) as caught:
        operation_create.handle(
            post({"name": "Bob"}, **key), operations=operations, publish=publish
        )
    assert caught.value.status == 422
    assert "was used for another request" in caught.value.message
    assert len(publish.events) == 1
    assert only_record(db)["request"] == {"name": "Ada"}
    assert only_record(db)["id"] == first.body["id"]


# --- the sweep: re-drive stalled operations, fail the expired ------------------------------------


def ping(data: Any, event_type: str = operation_create.PING_EVENT_TYPE) -> HttpRequest:
    """What the PingSource operation-sweep sends (binary mode)."""
    headers = {
        "ce-specversion": "1.0",
        "ce-id": str(uuid.uuid4()),
        "ce-source": "/apis/v1/namespaces/default/pingsources/operation-sweep",
        "ce-type": event_type,
        "Content-Type": "application/json",
    }
    return HttpRequest("POST", "/sweep", headers, json.dumps(data).encode())


def age(operations: OperationStore, operation_id: str, seconds: int) -> None:
    """Make an operation `seconds` old, as if accepted that long ago."""
    record = operations.get(operation_id)
    assert record is not None
    then = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - seconds))
    assert operations.table.replace_if_status({**record, "createdAt": then}, "pending")


POLICY = {"stalledAfterSeconds": 30, "failAfterSeconds": 900}


def test_sweep_republishes_stalled_fails_expired_and_leaves_fresh_alone(
    operations: OperationStore,
) -> None:
    """Fresh: untouched; stalled: its stored event again (same id); expired: failed with why."""
    down = Recorder(refuse="broker down")
    ids = {}
    for name in ("Fresh", "Stalled", "Expired", "Done"):
        ids[name] = operation_create.handle(
            post({"name": name}), operations=operations, publish=down
        ).body["id"]
    age(operations, ids["Stalled"], 31)
    age(operations, ids["Expired"], 901)
    age(operations, ids["Done"], 901)
    operations.complete(ids["Done"], {"user": {}})
    publish = Recorder()
    response = operation_create.serve(ping(POLICY), operations=operations, publish=publish)
    assert response.status == 200
    assert response.body == {"pending": 3, "republished": 1, "failed": 1, "unpublished": 0}
    [event] = publish.events
    original = next(e for e in down.events if e.get_data()["name"] == "Stalled")  # type: ignore[index]
    assert event.get_id() == original.get_id()
    expired = operations.get(ids["Expired"])
    assert expired is not None
    assert expired["status"] == "failed"
    assert expired["error"] == {"reason": "the flow did not finish within 900 s"}
    for name in ("Fresh", "Stalled"):
        record = operations.get(ids[name])
        assert record is not None
        assert record["status"] == "pending"


def test_sweep_republishes_an_operation_stored_before_operations_kept_their_event(
    operations: OperationStore,
) -> None:
    """A pending operation with no outbox (an older record) gets its event rebuilt from it."""
    operations.create("op-old", "user.create", {"name": "Ada"})
    age(operations, "op-old", 60)
    publish = Recorder()
    response = operation_create.serve(ping(POLICY), operations=operations, publish=publish)
    assert response.body["republished"] == 1
    [event] = publish.events
    assert event.get_type() == USER_CREATION_REQUESTED
    assert event.get_data() == {"operationId": "op-old", "name": "Ada"}


def test_sweep_with_the_broker_down_keeps_operations_pending_and_tries_once(
    operations: OperationStore,
) -> None:
    """The broker still down: one attempt, the stalled operations stay pending for next time."""
    publish = Recorder(refuse="broker down")
    for name in ("Ada", "Bob"):
        operation_id = operation_create.handle(
            post({"name": name}), operations=operations, publish=publish
        ).body["id"]
        age(operations, operation_id, 60)
    publish.events.clear()
    response = operation_create.serve(ping(POLICY), operations=operations, publish=publish)
    assert response.body == {"pending": 2, "republished": 0, "failed": 0, "unpublished": 2}
    assert len(publish.events) == 1
    assert [op["status"] for op in operations.pending(10)] == ["pending", "pending"]


@pytest.mark.parametrize(
    ("data", "event_type", "message"),
    [
        (POLICY, "dev.example.other", "expected an event of type dev.knative.sources.ping"),
        ({"stalledAfterSeconds": 30}, operation_create.PING_EVENT_TYPE, "expected data"),
        (
            {"stalledAfterSeconds": 900, "failAfterSeconds": 30},
            operation_create.PING_EVENT_TYPE,
            "0 < s < f",
        ),
        (
            {"stalledAfterSeconds": True, "failAfterSeconds": 30},
            operation_create.PING_EVENT_TYPE,
            "0 < s < f",
        ),
    ],
    ids=["not-a-ping", "missing-field", "fail-before-stall", "boolean"],
)
def test_sweep_refuses_what_is_not_a_valid_ping(
    operations: OperationStore, data: Any, event_type: str, message: str
) -> None:
    """A sweep request that is not a ping with a valid policy: 400, nothing touched."""
    publish = Recorder()
    operation_create.handle(post({"name": "Ada"}), operations=operations, publish=publish)
    with pytest.raises(FunctionError) as caught:
        operation_create.serve(ping(data, event_type), operations=operations, publish=publish)
    assert caught.value.status == 400
    assert message in caught.value.message
    assert len(publish.events) == 1


# --- the real HttpSink against a broker stand-in ------------------------------------------------


class BrokerStandIn:
    """An aiohttp server on 127.0.0.1 answering every POST with `status`, in its own thread."""

    def __init__(self, status: int) -> None:
        self.status = status
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests.append((dict(request.headers), await request.read()))
        return web.Response(status=self.status, text="" if self.status < 300 else "broker says no")

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/default/default", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}/default/default"

    def __enter__(self) -> "BrokerStandIn":
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=5)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()


@pytest.fixture
def closed_port_url() -> Iterator[str]:
    """A broker URL on a port nothing listens on: connections are refused."""
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    yield f"http://127.0.0.1:{port}/default/default"


def test_http_sink_accepted_202(operations: OperationStore) -> None:
    """With the real sink and a broker answering 202, the event arrives in binary mode."""
    with BrokerStandIn(202) as broker:
        response = operation_create.handle(
            post({"name": "Ada"}), operations=operations, publish=HttpSink(broker.url, 5.0)
        )
        [(headers, body)] = broker.requests
    assert response.status == 202
    lowered = {k.lower(): v for k, v in headers.items()}
    assert lowered["ce-type"] == USER_CREATION_REQUESTED
    assert lowered["ce-operationid"] == response.body["id"]
    assert json.loads(body) == {"operationId": response.body["id"], "name": "Ada"}
    stored = operations.get(response.body["id"])
    assert stored is not None
    assert stored["status"] == "pending"


# (id, broker status, text the failure reason must contain)
SINK_FAILURES: list[tuple[str, int, str]] = [
    ("refused-500-not-retried", 500, "refused the event: HTTP 500 broker says no"),
    ("refused-400", 400, "refused the event: HTTP 400 broker says no"),
]


@pytest.mark.parametrize(
    ("broker_status", "message"),
    [row[1:] for row in SINK_FAILURES],
    ids=[row[0] for row in SINK_FAILURES],
)
def test_http_sink_refusal_keeps_the_operation_pending(
    operations: OperationStore, db: Path, broker_status: int, message: str
) -> None:
    """A broker answering an error: still 202 (the store is up); the operation stays pending."""
    with BrokerStandIn(broker_status) as broker:
        response = operation_create.handle(
            post({"name": "Ada"}), operations=operations, publish=HttpSink(broker.url, 5.0)
        )
        attempts = len(broker.requests)
    assert attempts == 1  # the broker may have stored it: sending again could duplicate it
    assert response.status == 202
    assert only_record(db)["status"] == "pending"


def test_http_sink_retries_503_then_keeps_the_operation_pending(
    operations: OperationStore, db: Path
) -> None:
    """A 503 (the broker could not store it, §2.2) is retried; then 202 and pending."""
    with BrokerStandIn(503) as broker:
        response = operation_create.handle(
            post({"name": "Ada"}), operations=operations, publish=HttpSink(broker.url, 5.0)
        )
        attempts = len(broker.requests)
    assert attempts > 1
    assert response.status == 202
    assert only_record(db)["status"] == "pending"


def test_http_sink_connection_refused_keeps_the_operation_pending(
    operations: OperationStore, db: Path, closed_port_url: str
) -> None:
    """No broker listening: 202 all the same, and the operation is pending with its event."""
    response = operation_create.handle(
        post({"name": "Ada"}), operations=operations, publish=HttpSink(closed_port_url, 2.0)
    )
    assert response.status == 202
    stored = only_record(db)
    assert stored["status"] == "pending"
    assert stored["outbox"]["data"] == {"operationId": stored["id"], "name": "Ada"}

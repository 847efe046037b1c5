"""The app factory through Flask's test client: CloudEvents in, binary replies out, JSON errors."""

import json
import sqlite3
from contextlib import closing
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from functions import operation_create, operation_get, operation_update
from functions.app import create_app
from functions.catalog import APPROVAL_DECIDED, OPERATION_COMPLETED, USER_CREATED
from functions.ce import BaseCloudEvent, encode_binary, encode_structured, new_event
from functions.errors import ServiceUnavailable
from functions.registry import EventFunction, HttpFunction, load_function
from functions.settings import Settings
from functions.stores.base import OperationStore
from functions.stores.sqlite import SqliteTable

OPERATION_ID = "1e7a9b5c-0d2f-4a4b-8c9e-3f5a7b9c1d4e"
USER_ID = "2f8b0c6d-1e3a-4b5c-9d0f-4a6b8c0d2e5f"
USER = {"id": USER_ID, "name": "Ada", "status": "approval_pending", "reason": None}


class Recorder:
    """The injected `publish` of operation-create: records events; may refuse like a broker."""

    def __init__(self, refuse: str | None = None) -> None:
        self.events: list[BaseCloudEvent] = []
        self.refuse = refuse

    def __call__(self, event: BaseCloudEvent) -> None:
        self.events.append(event)
        if self.refuse is not None:
            raise ServiceUnavailable(self.refuse)


def user_created(user: dict[str, Any] | None = None) -> BaseCloudEvent:
    """A `user.created` event, what user-approve consumes."""
    return new_event(
        USER_CREATED,
        "/users-service",
        {"operationId": OPERATION_ID, "user": user or USER},
        operation_id=OPERATION_ID,
    )


@pytest.fixture
def approve() -> FlaskClient:
    """user-approve, an event function, wired by the registry."""
    settings = Settings(function="user-approve")
    return create_app(load_function(settings), settings).test_client()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """The operations database file."""
    return tmp_path / "operations.sqlite3"


def rows(db: Path) -> int:
    """How many operations the database file holds."""
    with closing(sqlite3.connect(db)) as conn:
        count: int = conn.execute("SELECT count(*) FROM records").fetchone()[0]
    return count


def api_app(db: Path, publish: Recorder, max_body_bytes: int = 64 * 1024) -> Flask:
    """operation-create, a public-API function, with a real store and a recording publish."""
    function = HttpFunction(
        "operation-create",
        partial(
            operation_create.serve, operations=OperationStore(SqliteTable(db)), publish=publish
        ),
        operation_create.ROUTES,
    )
    return create_app(
        function, Settings(function="operation-create", max_body_bytes=max_body_bytes)
    )


def json_error(response: Any) -> str:
    """The `error` of a JSON error response; fails unless the body is exactly that."""
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error"}
    message: str = body["error"]
    return message


# --- event functions ---------------------------------------------------------------------------


@pytest.mark.parametrize("encode", [encode_binary, encode_structured], ids=["binary", "structured"])
def test_event_in_either_mode_gets_a_binary_reply(approve: FlaskClient, encode: Any) -> None:
    """Binary and structured CloudEvents are accepted; the reply is written in binary mode."""
    event = user_created()
    headers, body = encode(event)
    response = approve.post("/", headers=headers, data=body)
    assert response.status_code == 200
    assert response.headers["ce-specversion"] == "1.0"
    assert response.headers["ce-type"] == APPROVAL_DECIDED
    assert response.headers["ce-source"] == "/users-service"
    assert response.headers["ce-operationid"] == OPERATION_ID
    assert response.headers["ce-id"] not in ("", event.get_id())
    assert response.mimetype == "application/json"
    assert json.loads(response.data) == {
        "operationId": OPERATION_ID,
        "userId": USER_ID,
        "approved": True,
        "reason": None,
    }


def test_reply_id_is_the_same_in_both_modes(approve: FlaskClient) -> None:
    """The same event, sent in either mode, yields the same reply id."""
    event = user_created()
    ids = []
    for encode in (encode_binary, encode_structured):
        headers, body = encode(event)
        ids.append(approve.post("/", headers=headers, data=body).headers["ce-id"])
    assert ids[0] == ids[1]


def test_no_reply_is_202_with_an_empty_body(db: Path) -> None:
    """A handler without a reply (operation-update) answers 202 and no body; its effect happens."""
    operations = OperationStore(SqliteTable(db))
    operations.create(OPERATION_ID, "user.create", {"name": "Ada"})
    function = EventFunction(
        "operation-update", partial(operation_update.handle, operations=operations)
    )
    client = create_app(function, Settings(function="operation-update")).test_client()
    event = new_event(
        OPERATION_COMPLETED,
        "/users-service",
        {"operationId": OPERATION_ID, "user": {**USER, "status": "approved"}},
        operation_id=OPERATION_ID,
    )
    headers, body = encode_binary(event)
    response = client.post("/", headers=headers, data=body)
    assert response.status_code == 202
    assert response.data == b""
    assert not any(k.lower().startswith("ce-") for k, _ in response.headers.items())
    stored = operations.get(OPERATION_ID)
    assert stored is not None
    assert stored["status"] == "completed"


BINARY = {
    "ce-specversion": "1.0",
    "ce-id": "e-1",
    "ce-source": "/users-service",
    "ce-type": USER_CREATED,
    "Content-Type": "application/json",
}
GOOD_DATA = json.dumps({"operationId": OPERATION_ID, "user": USER}).encode()


def without(header: str) -> dict[str, str]:
    """The binary headers without one of them."""
    return {k: v for k, v in BINARY.items() if k != header}


# (id, headers, body, text the error must contain)
NOT_CLOUDEVENTS: list[tuple[str, dict[str, str], bytes, str]] = [
    (
        "plain-json",
        {"Content-Type": "application/json"},
        GOOD_DATA,
        "expected a CloudEvent: binary mode (ce-specversion, ce-id, ce-source, ce-type headers)"
        " or structured mode (Content-Type: application/cloudevents+json); found neither"
        " (Content-Type: application/json)",
    ),
    ("wrong-content-type", {"Content-Type": "text/plain"}, b"hello", "(Content-Type: text/plain)"),
    ("no-content-type", {}, b"hello", "found neither"),
    (
        "malformed-structured-json",
        {"Content-Type": "application/cloudevents+json"},
        b'{"specversion": "1.0", "id": ',
        "structured CloudEvent body is not valid JSON",
    ),
    (
        "structured-not-an-object",
        {"Content-Type": "application/cloudevents+json"},
        b"[1, 2]",
        "structured CloudEvent body must be a JSON object; found list",
    ),
    (
        "binary-missing-id",
        without("ce-id"),
        GOOD_DATA,
        "missing required attribute(s) id",
    ),
    ("binary-missing-source", without("ce-source"), GOOD_DATA, "source"),
    ("binary-missing-type", without("ce-type"), GOOD_DATA, "type"),
    ("binary-missing-specversion", without("ce-specversion"), GOOD_DATA, "specversion"),
    (
        "structured-missing-id",
        {"Content-Type": "application/cloudevents+json"},
        json.dumps(
            {"specversion": "1.0", "source": "/s", "type": USER_CREATED, "data": {}}
        ).encode(),
        "missing required attribute(s) id",
    ),
    (
        "unsupported-specversion",
        {**BINARY, "ce-specversion": "2.0"},
        GOOD_DATA,
        "specversion",
    ),
    (
        "data-fails-the-schema",
        BINARY,
        json.dumps({"operationId": OPERATION_ID, "user": {"id": USER_ID}}).encode(),
        f"data of {USER_CREATED} is invalid at user: 'name' is a required property",
    ),
    (
        "data-not-json",
        BINARY,
        b"{not json",
        f"expected JSON object data for {USER_CREATED}; found str",
    ),
    (
        "type-not-consumed",
        {**BINARY, "ce-type": "com.example.other"},
        GOOD_DATA,
        f"expected an event of type {USER_CREATED}; found 'com.example.other'",
    ),
]


@pytest.mark.parametrize(
    ("headers", "body", "message"),
    [row[1:] for row in NOT_CLOUDEVENTS],
    ids=[row[0] for row in NOT_CLOUDEVENTS],
)
def test_anything_but_a_valid_event_is_400_with_a_precise_error(
    approve: FlaskClient, headers: dict[str, str], body: bytes, message: str
) -> None:
    """Non-CloudEvents, missing attributes and invalid data get 400 and a JSON error."""
    response = approve.post("/", headers=headers, data=body)
    assert response.status_code == 400
    assert message in json_error(response)


# --- both kinds --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/health/readiness", "/health/liveness"])
@pytest.mark.parametrize("kind", ["event", "api"])
def test_health_endpoints(approve: FlaskClient, db: Path, kind: str, path: str) -> None:
    """Every app serves readiness and liveness."""
    client = approve if kind == "event" else api_app(db, Recorder()).test_client()
    name = "user-approve" if kind == "event" else "operation-create"
    response = client.get(path)
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "function": name}


# (id, kind, method, path, status, error)
ROUTING: list[tuple[str, str, str, str, int, str]] = [
    ("event-unknown-route", "event", "GET", "/nope", 404, "no route GET /nope on user-approve"),
    (
        "event-post-elsewhere",
        "event",
        "POST",
        "/users",
        404,
        "no route POST /users on user-approve",
    ),
    ("event-get-root", "event", "GET", "/", 405, "method GET not allowed on /"),
    ("event-put-root", "event", "PUT", "/", 405, "method PUT not allowed on /"),
    ("api-unknown-route", "api", "GET", "/nope", 404, "no route GET /nope on operation-create"),
    ("api-root", "api", "POST", "/", 404, "no route POST / on operation-create"),
    ("api-get-users", "api", "GET", "/users", 405, "method GET not allowed on /users"),
    ("api-delete-users", "api", "DELETE", "/users", 405, "method DELETE not allowed on /users"),
]


@pytest.mark.parametrize(
    ("kind", "method", "path", "status", "error"),
    [row[1:] for row in ROUTING],
    ids=[row[0] for row in ROUTING],
)
def test_unknown_route_and_wrong_method_are_json_errors(
    approve: FlaskClient, db: Path, kind: str, method: str, path: str, status: int, error: str
) -> None:
    """An unknown route is 404 and a wrong method 405, both as JSON errors."""
    client = approve if kind == "event" else api_app(db, Recorder()).test_client()
    response = client.open(path, method=method)
    assert response.status_code == status
    assert json_error(response) == error


def test_oversized_event_is_413() -> None:
    """An event larger than max_body_bytes is refused with 413 as JSON."""
    settings = Settings(function="user-approve", max_body_bytes=100)
    client = create_app(load_function(settings), settings).test_client()
    headers, body = encode_binary(user_created())
    assert len(body) > 100
    response = client.post("/", headers=headers, data=body)
    assert response.status_code == 413
    assert json_error(response) == "body larger than 100 bytes"


# --- the public API ----------------------------------------------------------------------------


def test_api_accepts_with_202_location_and_one_event(db: Path) -> None:
    """`POST /users` answers 202 JSON with the pending operation and its Location."""
    publish = Recorder()
    client = api_app(db, publish).test_client()
    response = client.post("/users", json={"name": "Ada"})
    assert response.status_code == 202
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert body["status"] == "pending"
    assert response.headers["Location"] == f"/operations/{body['id']}"
    assert rows(db) == 1
    assert len(publish.events) == 1


def test_api_idempotency_key_header_reaches_the_handler(db: Path) -> None:
    """Through HTTP, the same Idempotency-Key returns the same operation."""
    client = api_app(db, Recorder()).test_client()
    first = client.post("/users", json={"name": "Ada"}, headers={"Idempotency-Key": "k"})
    second = client.post("/users", json={"name": "Ada"}, headers={"Idempotency-Key": "k"})
    assert first.get_json()["id"] == second.get_json()["id"]
    assert rows(db) == 1


# (id, body, content type, status, text the error must contain)
API_ERRORS: list[tuple[str, bytes, str, int, str]] = [
    ("malformed-json", b'{"name"', "application/json", 400, "body is not valid JSON"),
    ("wrong-content-type", b'{"name": "Ada"}', "text/plain", 415, "found text/plain"),
    ("missing-name", b"{}", "application/json", 400, "'name' is a required property"),
    ("blank-name", b'{"name": "  "}', "application/json", 400, "must not be blank"),
]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "message"),
    [row[1:] for row in API_ERRORS],
    ids=[row[0] for row in API_ERRORS],
)
def test_api_bad_input_is_a_json_error_and_stores_nothing(
    db: Path, body: bytes, content_type: str, status: int, message: str
) -> None:
    """Bad input is a 4xx JSON error; no operation is stored and no event is sent."""
    publish = Recorder()
    client = api_app(db, publish).test_client()
    response = client.post("/users", data=body, headers={"Content-Type": content_type})
    assert response.status_code == status
    assert message in json_error(response)
    assert rows(db) == 0
    assert publish.events == []


def test_api_oversized_body_is_413_and_stores_nothing(db: Path) -> None:
    """A body larger than max_body_bytes is refused with 413 JSON; nothing is stored or sent."""
    publish = Recorder()
    client = api_app(db, publish, max_body_bytes=64).test_client()
    response = client.post("/users", json={"name": "A" * 100})
    assert response.status_code == 413
    assert json_error(response) == "body larger than 64 bytes"
    assert rows(db) == 0
    assert publish.events == []


def test_api_broker_refusal_is_202_and_the_operation_stays_pending_with_its_event(
    db: Path,
) -> None:
    """Broker down, store up: 202, and the operation is pending with its event stored (outbox)."""
    publish = Recorder(refuse="the broker at http://b refused the event: HTTP 500")
    client = api_app(db, publish).test_client()
    response = client.post("/users", json={"name": "Ada"})
    assert response.status_code == 202
    assert response.get_json()["status"] == "pending"
    stored = OperationStore(SqliteTable(db)).get(response.get_json()["id"])
    assert stored is not None
    assert stored["status"] == "pending"
    assert stored["outbox"]["id"] == publish.events[0].get_id()


def test_api_idempotency_key_too_long_is_400_and_reused_is_422_json(db: Path) -> None:
    """issue 11: a 201-character key is 400; a key reused with another body is 422; both JSON."""
    publish = Recorder()
    client = api_app(db, publish).test_client()
    response = client.post("/users", json={"name": "Ada"}, headers={"Idempotency-Key": "k" * 201})
    assert response.status_code == 400
    assert "Idempotency-Key must be 1 to 200 characters" in json_error(response)
    assert rows(db) == 0
    first = client.post("/users", json={"name": "Ada"}, headers={"Idempotency-Key": "k"})
    assert first.status_code == 202
    response = client.post("/users", json={"name": "Bob"}, headers={"Idempotency-Key": "k"})
    assert response.status_code == 422
    assert "was used for another request" in json_error(response)
    assert rows(db) == 1


def test_api_unknown_operation_is_404_json(db: Path) -> None:
    """`GET /operations/{id}` of an unknown id is 404 with a JSON error naming it."""
    function = HttpFunction(
        "operation-get",
        partial(operation_get.handle, operations=OperationStore(SqliteTable(db))),
        operation_get.ROUTES,
    )
    client = create_app(function, Settings(function="operation-get")).test_client()
    response = client.get("/operations/nope")
    assert response.status_code == 404
    assert json_error(response) == "no operation with id 'nope'"

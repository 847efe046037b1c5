"""W3C Trace Context through the app factory, with no spans recorded (functions/tracing.py).

The context is carried whether or not an exporter is configured: a public-API request continues
its `traceparent` or starts one, returns it, and stores it with the operation's event; an event
function continues its event's trace in the reply, in binary and in structured mode. (Spans in a
real Zipkin: tests/knlocal/test_tracing.py.)
"""

import json
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from functions import tracing
from functions.app import create_app
from functions.catalog import USER_CREATED
from functions.ce import decode_http, encode_binary, encode_structured, new_event
from functions.registry import load_function
from functions.settings import Settings
from functions.stores.sqlite import SqliteTable
from tests.functions.test_app import OPERATION_ID, USER, Recorder, api_app

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"


@pytest.fixture
def approve() -> FlaskClient:
    """user-approve, an event function, wired by the registry."""
    settings = Settings(function="user-approve")
    return create_app(load_function(settings), settings).test_client()


def _post_user(client: FlaskClient, **headers: str) -> Any:
    return client.post(
        "/users",
        headers={"Content-Type": "application/json", **headers},
        data=json.dumps({"name": "Ada"}),
    )


def test_post_users_continues_the_clients_traceparent(tmp_path: Path) -> None:
    """The client's trace: in the answer's header, on the operation, on the stored event."""
    publish = Recorder()
    client = api_app(tmp_path / "ops.sqlite3", publish).test_client()
    response = _post_user(client, traceparent=TRACEPARENT, tracestate="vendor=1")
    assert response.status_code == 202
    assert response.headers["traceparent"] == TRACEPARENT
    assert response.get_json()["traceId"] == TRACE_ID
    (event,) = publish.events
    assert event.get_extension("traceparent") == TRACEPARENT
    assert event.get_extension("tracestate") == "vendor=1"


def test_post_users_without_traceparent_starts_a_trace(tmp_path: Path) -> None:
    """A new trace id per request, not sampled (nothing records spans here)."""
    client = api_app(tmp_path / "ops.sqlite3", Recorder()).test_client()
    first, second = _post_user(client), _post_user(client)
    ids = [r.get_json()["traceId"] for r in (first, second)]
    assert all(tracing.trace_id(r.headers["traceparent"]) for r in (first, second))
    assert [r.headers["traceparent"].split("-")[1] for r in (first, second)] == ids
    assert ids[0] != ids[1]
    assert first.headers["traceparent"].endswith("-00")


def test_an_invalid_traceparent_is_replaced(tmp_path: Path) -> None:
    """W3C Trace Context §4.3: a malformed `traceparent` is ignored, a new trace begins."""
    client = api_app(tmp_path / "ops.sqlite3", Recorder()).test_client()
    response = _post_user(client, traceparent="00-not-a-trace-01")
    assert tracing.trace_id(response.headers["traceparent"]) == response.get_json()["traceId"]


@pytest.mark.parametrize("encode", [encode_binary, encode_structured], ids=["binary", "structured"])
def test_the_reply_continues_the_events_trace(approve: FlaskClient, encode: Any) -> None:
    """The Distributed Tracing extension of the event is the reply's, in either mode."""
    event = new_event(
        USER_CREATED,
        "/users-service",
        {"operationId": OPERATION_ID, "user": USER},
        operation_id=OPERATION_ID,
    )
    traced = type(event)({**event.get_attributes(), "traceparent": TRACEPARENT}, event.get_data())
    headers, body = encode(traced)
    response = approve.post("/", headers=headers, data=body)
    assert response.status_code == 200
    assert response.headers["ce-traceparent"] == TRACEPARENT
    reply = decode_http(dict(response.headers), response.data)
    structured = json.loads(encode_structured(reply)[1])
    assert structured["traceparent"] == TRACEPARENT


def test_an_untraced_event_gets_an_untraced_reply(approve: FlaskClient) -> None:
    """No context is invented for an event: a duplicate delivery yields the identical reply."""
    event = new_event(
        USER_CREATED,
        "/users-service",
        {"operationId": OPERATION_ID, "user": USER},
        operation_id=OPERATION_ID,
    )
    headers, body = encode_binary(event)
    replies = [approve.post("/", headers=headers, data=body) for _ in range(2)]
    assert "ce-traceparent" not in replies[0].headers
    assert replies[0].headers["ce-id"] == replies[1].headers["ce-id"]
    assert replies[0].data == replies[1].data


def test_store_calls_are_untouched_while_no_spans_are_recorded(tmp_path: Path) -> None:
    """Off, the registry's tables are the store's own objects: no wrapper, no cost."""
    table = SqliteTable(tmp_path / "t.sqlite3")
    assert tracing.traced_table(table, "operations", "sqlite") is table

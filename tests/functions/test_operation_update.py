"""operation-update: finish operations forward-only; dead letters (§2.8) fail them."""

import base64
from pathlib import Path
from typing import Any

import pytest

from functions import operation_update
from functions.catalog import (
    OPERATION_COMPLETED,
    OPERATION_FAILED,
    USER_CREATED,
    USER_CREATION_REQUESTED,
)
from functions.ce import BaseCloudEvent, CloudEvent, new_event
from functions.errors import InvalidEvent, NotFound
from functions.stores.base import OperationStore
from functions.stores.sqlite import SqliteTable

OPERATION_ID = "7a3c5d1e-6f8b-4c0d-9e5a-9b1c3d4e5f60"
UNKNOWN_ID = "00000000-0000-4000-8000-000000000001"
USER = {
    "id": "8b4d6e2f-7a9c-4d1e-8f6b-0c2d4e6f8a1b",
    "name": "Ada",
    "status": "approved",
    "reason": None,
}
SUBSCRIBER = "http://user-create.default.svc.cluster.local"


@pytest.fixture
def operations(tmp_path: Path) -> OperationStore:
    """The operation service's real SQLite store, holding one pending operation."""
    store = OperationStore(SqliteTable(tmp_path / "operations.sqlite3"))
    store.create(OPERATION_ID, "user.create", {"name": "Ada"})
    return store


def completed(operation_id: str = OPERATION_ID) -> BaseCloudEvent:
    """An `operation.completed` event as user-create-response replies it."""
    return new_event(
        OPERATION_COMPLETED,
        "/users-service",
        {"operationId": operation_id, "user": USER},
        operation_id=operation_id,
    )


def failed(reason: str, operation_id: str = OPERATION_ID) -> BaseCloudEvent:
    """An `operation.failed` event as user-create-response replies it."""
    return new_event(
        OPERATION_FAILED,
        "/users-service",
        {"operationId": operation_id, "reason": reason},
        operation_id=operation_id,
    )


def dead_lettered(
    original: BaseCloudEvent, *, code: str = "500", body: bytes = b"database is locked"
) -> BaseCloudEvent:
    """The original event plus the extensions the broker adds before the DLS (§2.8)."""
    return CloudEvent(
        {
            **original.get_attributes(),
            "knativeerrordest": SUBSCRIBER,
            "knativeerrorcode": code,
            "knativeerrordata": base64.b64encode(body).decode("ascii"),
        },
        original.get_data(),
    )


def status(operations: OperationStore, operation_id: str = OPERATION_ID) -> dict[str, Any]:
    """The stored operation's status, result and error."""
    record = operations.get(operation_id)
    assert record is not None
    return {k: record[k] for k in ("status", "result", "error")}


def test_completed_event_completes_the_operation_with_the_user(
    operations: OperationStore,
) -> None:
    """`operation.completed` moves a pending operation to completed with its user; no reply."""
    operation_update.handle(completed(), operations=operations)
    assert status(operations) == {"status": "completed", "result": {"user": USER}, "error": None}


def test_failed_event_fails_the_operation_with_the_reason(operations: OperationStore) -> None:
    """`operation.failed` moves a pending operation to failed with the readable reason."""
    operation_update.handle(failed("user rejected: x"), operations=operations)
    assert status(operations) == {
        "status": "failed",
        "result": None,
        "error": {"reason": "user rejected: x"},
    }


# (id, first event, second event, expected final state)
FORWARD_ONLY: list[tuple[str, BaseCloudEvent, BaseCloudEvent, dict[str, Any]]] = [
    (
        "completed-then-failed-stays-completed",
        completed(),
        failed("late"),
        {"status": "completed", "result": {"user": USER}, "error": None},
    ),
    (
        "failed-then-completed-stays-failed",
        failed("first"),
        completed(),
        {"status": "failed", "result": None, "error": {"reason": "first"}},
    ),
    (
        "failed-then-failed-keeps-the-first-reason",
        failed("first"),
        failed("second"),
        {"status": "failed", "result": None, "error": {"reason": "first"}},
    ),
    (
        "completed-then-dead-letter-stays-completed",
        completed(),
        dead_lettered(completed()),
        {"status": "completed", "result": {"user": USER}, "error": None},
    ),
]


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [row[1:] for row in FORWARD_ONLY],
    ids=[row[0] for row in FORWARD_ONLY],
)
def test_finished_operation_never_changes(
    operations: OperationStore,
    first: BaseCloudEvent,
    second: BaseCloudEvent,
    expected: dict[str, Any],
) -> None:
    """Operation states only move forward: a later event leaves a finished operation as is."""
    operation_update.handle(first, operations=operations)
    finished_at = operations.get(OPERATION_ID)
    operation_update.handle(second, operations=operations)
    assert status(operations) == expected
    assert operations.get(OPERATION_ID) == finished_at


@pytest.mark.parametrize("make", [completed, lambda: failed("no")], ids=["completed", "failed"])
def test_duplicate_delivery_changes_nothing(operations: OperationStore, make: Any) -> None:
    """The same event delivered twice has the effect of one delivery."""
    event = make()
    operation_update.handle(event, operations=operations)
    once = operations.get(OPERATION_ID)
    operation_update.handle(event, operations=operations)
    assert operations.get(OPERATION_ID) == once


# (id, original event type, status code, response body, texts the reason must contain)
DEAD_LETTERS: list[tuple[str, BaseCloudEvent, str, bytes, tuple[str, ...]]] = [
    (
        "request-undeliverable-500",
        new_event(
            USER_CREATION_REQUESTED,
            "/users-service",
            {"operationId": OPERATION_ID, "name": "Ada"},
            operation_id=OPERATION_ID,
        ),
        "500",
        b"database is locked",
        (USER_CREATION_REQUESTED, SUBSCRIBER, "500", "database is locked"),
    ),
    (
        "user-created-undeliverable-404",
        new_event(
            USER_CREATED,
            "/users-service",
            {"operationId": OPERATION_ID, "user": {**USER, "status": "approval_pending"}},
            operation_id=OPERATION_ID,
        ),
        "404",
        b'{"error": "no user"}',
        (USER_CREATED, SUBSCRIBER, "404", "no user"),
    ),
    (
        "completed-undeliverable-empty-body",
        completed(),
        "503",
        b"",
        (OPERATION_COMPLETED, SUBSCRIBER, "503"),
    ),
]


@pytest.mark.parametrize(
    ("original", "code", "body", "mentions"),
    [row[1:] for row in DEAD_LETTERS],
    ids=[row[0] for row in DEAD_LETTERS],
)
def test_s2_8_dead_letter_fails_a_pending_operation_with_a_readable_reason(
    operations: OperationStore,
    original: BaseCloudEvent,
    code: str,
    body: bytes,
    mentions: tuple[str, ...],
) -> None:
    """A dead-lettered event of any type fails its pending operation, saying where and why."""
    event = dead_lettered(original, code=code, body=body)
    operation_update.handle(event, operations=operations)
    state = status(operations)
    assert state["status"] == "failed"
    reason = state["error"]["reason"]
    for text in mentions:
        assert text in reason
    if body:
        # The body is shown decoded, not as the base64 the extension carries.
        assert base64.b64encode(body).decode() not in reason


def test_s2_8_dead_letter_is_idempotent(operations: OperationStore) -> None:
    """The same dead letter delivered twice fails the operation once."""
    event = dead_lettered(completed())
    operation_update.handle(event, operations=operations)
    once = operations.get(OPERATION_ID)
    operation_update.handle(event, operations=operations)
    assert operations.get(OPERATION_ID) == once


def test_s2_8_dead_letter_of_an_unknown_operation_is_not_found(
    operations: OperationStore,
) -> None:
    """A dead letter naming an operation that does not exist raises NotFound (retried)."""
    with pytest.raises(NotFound) as caught:
        operation_update.handle(dead_lettered(completed(UNKNOWN_ID)), operations=operations)
    assert UNKNOWN_ID in caught.value.message
    assert operations.get(UNKNOWN_ID) is None


def test_s2_8_dead_letter_naming_no_operation_is_invalid(operations: OperationStore) -> None:
    """A dead letter without `operationid` nor data.operationId is refused, saying so."""
    original = CloudEvent(
        {"id": "e-1", "source": "/elsewhere", "type": "com.example.other", "specversion": "1.0"},
        {"hello": "world"},
    )
    with pytest.raises(InvalidEvent) as caught:
        operation_update.handle(dead_lettered(original), operations=operations)
    assert "e-1" in caught.value.message
    assert "operationid" in caught.value.message
    assert status(operations)["status"] == "pending"


@pytest.mark.parametrize(
    "event",
    [completed(UNKNOWN_ID), failed("x", UNKNOWN_ID)],
    ids=["completed", "failed"],
)
def test_unknown_operation_is_not_found(operations: OperationStore, event: BaseCloudEvent) -> None:
    """An event for an operation not stored (yet) raises NotFound: 404, retried (§2.7)."""
    with pytest.raises(NotFound) as caught:
        operation_update.handle(event, operations=operations)
    assert caught.value.status == 404
    assert UNKNOWN_ID in caught.value.message
    assert operations.get(UNKNOWN_ID) is None


# (id, type, data, text the error must contain)
INVALID: list[tuple[str, str, dict[str, Any], str]] = [
    (
        "completed-without-user",
        OPERATION_COMPLETED,
        {"operationId": OPERATION_ID},
        "'user' is a required property",
    ),
    (
        "completed-user-with-unknown-status",
        OPERATION_COMPLETED,
        {"operationId": OPERATION_ID, "user": {**USER, "status": "maybe"}},
        "at user/status:",
    ),
    (
        "failed-with-empty-reason",
        OPERATION_FAILED,
        {"operationId": OPERATION_ID, "reason": ""},
        "at reason:",
    ),
    (
        "failed-operation-id-not-a-uuid",
        OPERATION_FAILED,
        {"operationId": "op", "reason": "x"},
        "at operationId:",
    ),
    (
        "not-an-operation-event",
        USER_CREATED,
        {"operationId": OPERATION_ID, "user": USER},
        f"expected an event of type {OPERATION_COMPLETED} or {OPERATION_FAILED}",
    ),
]


@pytest.mark.parametrize(
    ("event_type", "data", "message"),
    [row[1:] for row in INVALID],
    ids=[row[0] for row in INVALID],
)
def test_invalid_event_is_refused_naming_the_field(
    operations: OperationStore, event_type: str, data: dict[str, Any], message: str
) -> None:
    """Invalid data raises InvalidEvent naming the field; the operation stays pending."""
    event = new_event(event_type, "/users-service", data, operation_id=OPERATION_ID)
    with pytest.raises(InvalidEvent) as caught:
        operation_update.handle(event, operations=operations)
    assert message in caught.value.message
    assert status(operations)["status"] == "pending"

"""user-create: store the requested user pending approval, reply `user.created`; idempotent."""

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from functions import user_create
from functions.catalog import USER_CREATED, USER_CREATION_REQUESTED
from functions.ce import BaseCloudEvent, new_event
from functions.errors import InvalidEvent
from functions.stores.base import UserStore
from functions.stores.sqlite import SqliteTable

OPERATION_ID = "3c9e1f7a-2b4d-4e6f-8a1c-5d7e9f0a1b2c"
OTHER_OPERATION_ID = "4d0f2a8b-3c5e-4f7a-9b2d-6e8f0a1b2c3d"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """The users database file."""
    return tmp_path / "users.sqlite3"


@pytest.fixture
def users(db: Path) -> UserStore:
    """The user service's real SQLite store."""
    return UserStore(SqliteTable(db))


def rows(db: Path) -> int:
    """How many users the database file holds."""
    with closing(sqlite3.connect(db)) as conn:
        count: int = conn.execute("SELECT count(*) FROM records").fetchone()[0]
    return count


def requested(data: dict[str, Any]) -> BaseCloudEvent:
    """A `user.creation.requested` event as operation-create emits it."""
    return new_event(
        USER_CREATION_REQUESTED,
        "/users-service",
        data,
        operation_id=str(data.get("operationId", OPERATION_ID)),
    )


def without_time(event: BaseCloudEvent) -> dict[str, Any]:
    """An event's attributes but `time`, which is stamped when the event is built."""
    return {k: v for k, v in event.get_attributes().items() if k != "time"}


def test_stores_the_user_pending_approval_and_replies_user_created(users: UserStore) -> None:
    """The user is stored `approval_pending` and announced in a `user.created` reply."""
    reply = user_create.handle(requested({"operationId": OPERATION_ID, "name": "Ada"}), users=users)
    assert reply.get_type() == USER_CREATED
    assert reply.get_source() == "/users-service"
    assert reply.get_extension("operationid") == OPERATION_ID
    assert reply.get_extension("partitionkey") == OPERATION_ID
    data = reply.get_data()
    assert isinstance(data, dict)
    user_id = data["user"]["id"]
    assert data == {
        "operationId": OPERATION_ID,
        "user": {"id": user_id, "name": "Ada", "status": "approval_pending", "reason": None},
    }
    stored = users.get(user_id)
    assert stored is not None
    assert (stored["name"], stored["status"], stored["operationId"]) == (
        "Ada",
        "approval_pending",
        OPERATION_ID,
    )


def test_duplicate_delivery_changes_nothing_and_yields_the_same_reply(
    users: UserStore, db: Path
) -> None:
    """The same event delivered twice stores one user and replies identically (§2.1)."""
    event = requested({"operationId": OPERATION_ID, "name": "Ada"})
    first = user_create.handle(event, users=users)
    data = first.get_data()
    assert isinstance(data, dict)
    stored_first = users.get(data["user"]["id"])
    second = user_create.handle(event, users=users)
    assert without_time(second) == without_time(first)
    assert second.get_data() == first.get_data()
    assert users.get(data["user"]["id"]) == stored_first
    assert rows(db) == 1


def test_same_operation_requested_again_creates_no_second_user(users: UserStore, db: Path) -> None:
    """A second request event of the same operation (a new event id) reuses the first user."""
    first = user_create.handle(requested({"operationId": OPERATION_ID, "name": "Ada"}), users=users)
    again = user_create.handle(
        requested({"operationId": OPERATION_ID, "name": "Grace"}), users=users
    )
    first_data, again_data = first.get_data(), again.get_data()
    assert isinstance(first_data, dict)
    assert isinstance(again_data, dict)
    assert again_data["user"] == first_data["user"]  # same id, and the name stored first
    assert rows(db) == 1


def test_different_operations_create_different_users(users: UserStore, db: Path) -> None:
    """Each operation gets its own user."""
    one = user_create.handle(requested({"operationId": OPERATION_ID, "name": "Ada"}), users=users)
    two = user_create.handle(
        requested({"operationId": OTHER_OPERATION_ID, "name": "Ada"}), users=users
    )
    one_data, two_data = one.get_data(), two.get_data()
    assert isinstance(one_data, dict)
    assert isinstance(two_data, dict)
    assert one_data["user"]["id"] != two_data["user"]["id"]
    assert rows(db) == 2


# (id, data, text the error must contain)
INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("missing-name", {"operationId": OPERATION_ID}, "'name' is a required property"),
    ("empty-name", {"operationId": OPERATION_ID, "name": ""}, "at name:"),
    ("name-not-a-string", {"operationId": OPERATION_ID, "name": 7}, "at name: 7 is not of type"),
    ("name-too-long", {"operationId": OPERATION_ID, "name": "a" * 201}, "at name:"),
    ("operation-id-not-a-uuid", {"operationId": "op-1", "name": "Ada"}, "at operationId:"),
    ("missing-operation-id", {"name": "Ada"}, "'operationId' is a required property"),
    (
        "extra-field",
        {"operationId": OPERATION_ID, "name": "Ada", "admin": True},
        "'admin' was unexpected",
    ),
]


@pytest.mark.parametrize(
    ("data", "message"), [row[1:] for row in INVALID], ids=[row[0] for row in INVALID]
)
def test_invalid_data_is_refused_naming_the_field_and_stores_nothing(
    users: UserStore, db: Path, data: dict[str, Any], message: str
) -> None:
    """Data failing the catalog schema raises InvalidEvent (400) naming the field."""
    with pytest.raises(InvalidEvent) as caught:
        user_create.handle(requested(data), users=users)
    assert message in caught.value.message
    assert USER_CREATION_REQUESTED in caught.value.message
    assert caught.value.status == 400
    assert rows(db) == 0


def test_another_event_type_is_refused(users: UserStore, db: Path) -> None:
    """A `user.created` event is not for user-create."""
    event = new_event(
        USER_CREATED,
        "/users-service",
        {"operationId": OPERATION_ID, "name": "Ada"},
        operation_id=OPERATION_ID,
    )
    with pytest.raises(InvalidEvent) as caught:
        user_create.handle(event, users=users)
    assert caught.value.message == (
        f"expected an event of type {USER_CREATION_REQUESTED}; found {USER_CREATED!r}"
    )
    assert rows(db) == 0

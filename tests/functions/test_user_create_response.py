"""user-create-response: record the decision on the user, reply with the operation's end."""

from pathlib import Path
from typing import Any

import pytest

from functions import user_create_response
from functions.catalog import APPROVAL_DECIDED, OPERATION_COMPLETED, OPERATION_FAILED
from functions.ce import BaseCloudEvent, new_event
from functions.errors import InvalidEvent, NotFound
from functions.stores.base import UserStore
from functions.stores.sqlite import SqliteTable

OPERATION_ID = "5e1a3b9c-4d6f-4a8b-9c3e-7f9a1b2c3d4e"
USER_ID = "6f2b4c0d-5e7a-4b9c-8d4f-8a0b2c3d4e5f"
UNKNOWN_USER_ID = "00000000-0000-4000-8000-000000000000"


@pytest.fixture
def users(tmp_path: Path) -> UserStore:
    """The user service's real SQLite store, holding Ada pending approval."""
    store = UserStore(SqliteTable(tmp_path / "users.sqlite3"))
    store.create(USER_ID, "Ada", OPERATION_ID)
    return store


def decided(approved: bool, reason: str | None, user_id: str = USER_ID) -> BaseCloudEvent:
    """An `approval.decided` event as user-approve replies it."""
    return new_event(
        APPROVAL_DECIDED,
        "/users-service",
        {"operationId": OPERATION_ID, "userId": user_id, "approved": approved, "reason": reason},
        operation_id=OPERATION_ID,
    )


def without_time(event: BaseCloudEvent) -> dict[str, Any]:
    """An event's attributes but `time`, which is stamped when the event is built."""
    return {k: v for k, v in event.get_attributes().items() if k != "time"}


def test_approved_user_completes_the_operation(users: UserStore) -> None:
    """An approval stores `approved` and replies `operation.completed` with the user."""
    reply = user_create_response.handle(decided(True, None), users=users)
    assert reply.get_type() == OPERATION_COMPLETED
    assert reply.get_extension("operationid") == OPERATION_ID
    assert reply.get_data() == {
        "operationId": OPERATION_ID,
        "user": {"id": USER_ID, "name": "Ada", "status": "approved", "reason": None},
    }
    stored = users.get(USER_ID)
    assert stored is not None
    assert (stored["status"], stored["reason"]) == ("approved", None)


def test_rejected_user_fails_the_operation_with_the_reason(users: UserStore) -> None:
    """A rejection stores `rejected` with its reason and replies `operation.failed`."""
    reason = "a name needs at least two letters"
    reply = user_create_response.handle(decided(False, reason), users=users)
    assert reply.get_type() == OPERATION_FAILED
    assert reply.get_data() == {"operationId": OPERATION_ID, "reason": f"user rejected: {reason}"}
    stored = users.get(USER_ID)
    assert stored is not None
    assert (stored["status"], stored["reason"]) == ("rejected", reason)


@pytest.mark.parametrize("approved", [True, False], ids=["approved", "rejected"])
def test_duplicate_delivery_changes_nothing_and_yields_the_same_reply(
    users: UserStore, approved: bool
) -> None:
    """The same event delivered twice leaves the stored user as is and replies identically."""
    event = decided(approved, None if approved else "reserved")
    first = user_create_response.handle(event, users=users)
    stored = users.get(USER_ID)
    second = user_create_response.handle(event, users=users)
    assert without_time(second) == without_time(first)
    assert second.get_data() == first.get_data()
    assert users.get(USER_ID) == stored


# (id, first decision, later decision, expected status, expected reply type)
FIRST_WINS: list[tuple[str, tuple[bool, str | None], tuple[bool, str | None], str, str]] = [
    ("approved-then-rejected", (True, None), (False, "late"), "approved", OPERATION_COMPLETED),
    ("rejected-then-approved", (False, "early"), (True, None), "rejected", OPERATION_FAILED),
]


@pytest.mark.parametrize(
    ("first", "later", "status", "reply_type"),
    [row[1:] for row in FIRST_WINS],
    ids=[row[0] for row in FIRST_WINS],
)
def test_first_decision_wins(
    users: UserStore,
    first: tuple[bool, str | None],
    later: tuple[bool, str | None],
    status: str,
    reply_type: str,
) -> None:
    """A later, different decision never changes the user; its reply reports the stored one."""
    first_reply = user_create_response.handle(decided(*first), users=users)
    later_reply = user_create_response.handle(decided(*later), users=users)
    stored = users.get(USER_ID)
    assert stored is not None
    assert stored["status"] == status
    assert stored["reason"] == first[1]
    assert later_reply.get_type() == reply_type
    assert later_reply.get_data() == first_reply.get_data()


def test_unknown_user_is_not_found(users: UserStore) -> None:
    """A decision on a user not stored (yet) raises NotFound: 404, which the broker retries."""
    with pytest.raises(NotFound) as caught:
        user_create_response.handle(decided(True, None, UNKNOWN_USER_ID), users=users)
    assert UNKNOWN_USER_ID in caught.value.message
    assert caught.value.status == 404
    assert users.get(UNKNOWN_USER_ID) is None


# (id, data, text the error must contain)
INVALID: list[tuple[str, dict[str, Any], str]] = [
    (
        "approved-not-a-boolean",
        {"operationId": OPERATION_ID, "userId": USER_ID, "approved": "yes", "reason": None},
        "at approved: 'yes' is not of type 'boolean'",
    ),
    (
        "missing-reason",
        {"operationId": OPERATION_ID, "userId": USER_ID, "approved": True},
        "'reason' is a required property",
    ),
    (
        "user-id-not-a-uuid",
        {"operationId": OPERATION_ID, "userId": "u1", "approved": True, "reason": None},
        "at userId: 'u1' is not a 'uuid'",
    ),
]


@pytest.mark.parametrize(
    ("data", "message"), [row[1:] for row in INVALID], ids=[row[0] for row in INVALID]
)
def test_invalid_data_is_refused_naming_the_field(
    users: UserStore, data: dict[str, Any], message: str
) -> None:
    """Data failing the catalog schema raises InvalidEvent naming the field; the user stays."""
    event = new_event(APPROVAL_DECIDED, "/users-service", data, operation_id=OPERATION_ID)
    with pytest.raises(InvalidEvent) as caught:
        user_create_response.handle(event, users=users)
    assert message in caught.value.message
    stored = users.get(USER_ID)
    assert stored is not None
    assert stored["status"] == "approval_pending"

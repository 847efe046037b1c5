"""user-approve: the approval rules, and the `approval.decided` reply built from them."""

import uuid
from typing import Any

import pytest

from functions import user_approve
from functions.catalog import APPROVAL_DECIDED, USER_CREATED
from functions.ce import BaseCloudEvent, new_event
from functions.errors import InvalidEvent

OPERATION_ID = "0d8f2a4e-6b1c-4f3a-9e57-1c2b3d4e5f60"
USER_ID = "7a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"

#: The reasons, as a person reads them in the failed operation.
CHARACTERS = "a name may contain only letters, spaces, hyphens, apostrophes and dots; found {!r}"
TWO_LETTERS = "a name needs at least two letters"
RESERVED = "the name {!r} is reserved"


def user_created(name: str, *, user: dict[str, Any] | None = None) -> BaseCloudEvent:
    """A `user.created` event for a user named `name`, as user-create replies it."""
    data = user or {"id": USER_ID, "name": name, "status": "approval_pending", "reason": None}
    return new_event(
        USER_CREATED,
        "/users-service",
        {"operationId": OPERATION_ID, "user": data},
        operation_id=OPERATION_ID,
    )


# (id, name)
APPROVED: list[tuple[str, str]] = [
    ("latin", "Ada Lovelace"),
    ("two-letters", "Al"),
    ("accents-precomposed", "Zoë Émilie"),
    ("accent-combining-mark", "Zoe\u0308"),
    ("han", "李小龙"),
    ("cyrillic", "Пётр Ильич"),
    ("greek", "Αθηνά"),
    ("arabic", "ليلى"),
    ("hebrew", "דוד"),
    ("devanagari-with-vowel-signs", "देवी"),
    ("hyphen", "Jean-Luc"),
    ("apostrophe", "O'Brien"),
    ("typographic-apostrophe", "O\u2019Brien"),
    ("dots", "J. R. R. Tolkien"),
    ("reserved-word-inside-a-longer-name", "Rootsworth"),
    ("reserved-word-as-one-of-two-names", "Admin Smith"),
]

# (id, name, reason)
REJECTED: list[tuple[str, str, str]] = [
    ("digit", "Ann3", CHARACTERS.format("3")),
    ("only-digits", "42", CHARACTERS.format("4")),
    ("arabic-indic-digit", "Ana\u0663", CHARACTERS.format("\u0663")),
    ("at-sign", "x@y", CHARACTERS.format("@")),
    ("underscore", "ann_b", CHARACTERS.format("_")),
    ("emoji", "Ann\U0001f600", CHARACTERS.format("\U0001f600")),
    ("tab-is-not-a-space", "Mary\tAnn", CHARACTERS.format("\t")),
    ("first-offending-character-is-named", "a1!", CHARACTERS.format("1")),
    ("one-letter", "A", TWO_LETTERS),
    ("one-han-character", "李", TWO_LETTERS),
    ("one-letter-and-separators", "A.", TWO_LETTERS),
    ("separators-only", "- '", TWO_LETTERS),
    ("letter-and-combining-mark-is-one-letter", "e\u0301", TWO_LETTERS),
    ("reserved", "admin", RESERVED.format("admin")),
    ("reserved-upper-case", "ADMIN", RESERVED.format("ADMIN")),
    ("reserved-mixed-case", "Administrator", RESERVED.format("Administrator")),
    ("reserved-with-surrounding-spaces", "  Root ", RESERVED.format("Root")),
    ("reserved-system", "System", RESERVED.format("System")),
    ("reserved-support", "support", RESERVED.format("support")),
    ("reserved-null", "NULL", RESERVED.format("NULL")),
    ("reserved-none", "None", RESERVED.format("None")),
    ("reserved-undefined", "undefined", RESERVED.format("undefined")),
]


@pytest.mark.parametrize("name", [row[1] for row in APPROVED], ids=[row[0] for row in APPROVED])
def test_decide_approves(name: str) -> None:
    """Names of letters of any script with the allowed separators are approved."""
    assert user_approve.decide(name) is None


@pytest.mark.parametrize(
    ("name", "reason"), [row[1:] for row in REJECTED], ids=[row[0] for row in REJECTED]
)
def test_decide_rejects_with_reason(name: str, reason: str) -> None:
    """Digits, symbols, one letter and reserved names are rejected with a readable reason."""
    assert user_approve.decide(name) == reason


ROWS: list[tuple[str, str, bool, str | None]] = [
    ("approved", "Zoë O\u2019Brien", True, None),
    ("rejected-digit", "R2D2", False, CHARACTERS.format("2")),
    ("rejected-reserved", "Root", False, RESERVED.format("Root")),
]


@pytest.mark.parametrize(
    ("name", "approved", "reason"), [row[1:] for row in ROWS], ids=[row[0] for row in ROWS]
)
def test_handle_replies_approval_decided(name: str, approved: bool, reason: str | None) -> None:
    """The reply is `approval.decided` for the same operation and user, with the decision."""
    reply = user_approve.handle(user_created(name))
    assert reply.get_type() == APPROVAL_DECIDED
    assert reply.get_source() == "/users-service"
    assert reply.get_data() == {
        "operationId": OPERATION_ID,
        "userId": USER_ID,
        "approved": approved,
        "reason": reason,
    }
    # The flow's extensions follow the operation (catalog.yaml header).
    assert reply.get_extension("operationid") == OPERATION_ID
    assert reply.get_extension("partitionkey") == OPERATION_ID


def test_handle_duplicate_delivery_yields_identical_reply() -> None:
    """The same event delivered twice yields the same reply: same id, type, source and data."""
    event = user_created("Ada")
    first = user_approve.handle(event)
    second = user_approve.handle(event)
    # `time` is stamped when the reply is built; consumers deduplicate by source + id (§2.1).
    assert {k: v for k, v in first.get_attributes().items() if k != "time"} == {
        k: v for k, v in second.get_attributes().items() if k != "time"
    }
    assert first.get_data() == second.get_data()


def test_handle_reply_id_is_derived_from_the_input_event() -> None:
    """Two different input events get different reply ids; neither reuses the input's id."""
    one, other = user_created("Ada"), user_created("Ada")
    assert one.get_id() != other.get_id()
    reply_one, reply_other = user_approve.handle(one), user_approve.handle(other)
    assert reply_one.get_id() != reply_other.get_id()
    assert reply_one.get_id() not in (one.get_id(), other.get_id())
    uuid.UUID(reply_one.get_id())  # a UUID, like every id of the flow


# (id, user data, text the error must contain)
INVALID: list[tuple[str, dict[str, Any], str]] = [
    (
        "missing-name",
        {"id": USER_ID, "status": "approval_pending"},
        "at user: 'name' is a required property",
    ),
    (
        "user-id-not-a-uuid",
        {"id": "42", "name": "Ada", "status": "approval_pending"},
        "at user/id: '42' is not a 'uuid'",
    ),
    (
        "unknown-status",
        {"id": USER_ID, "name": "Ada", "status": "new"},
        "at user/status:",
    ),
]


@pytest.mark.parametrize(
    ("user", "message"), [row[1:] for row in INVALID], ids=[row[0] for row in INVALID]
)
def test_handle_invalid_data_names_the_field(user: dict[str, Any], message: str) -> None:
    """Data that fails the catalog schema is refused, naming the field."""
    with pytest.raises(InvalidEvent) as caught:
        user_approve.handle(user_created("Ada", user=user))
    assert message in caught.value.message
    assert caught.value.status == 400


def test_handle_refuses_another_event_type() -> None:
    """An event of a type user-approve does not consume is refused, naming the expected type."""
    event = new_event(
        APPROVAL_DECIDED,
        "/users-service",
        {"operationId": OPERATION_ID, "userId": USER_ID, "approved": True, "reason": None},
        operation_id=OPERATION_ID,
    )
    with pytest.raises(InvalidEvent) as caught:
        user_approve.handle(event)
    assert caught.value.message == (
        f"expected an event of type {USER_CREATED}; found {APPROVAL_DECIDED!r}"
    )

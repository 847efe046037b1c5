"""One suite, every store backend: what the functions rely on, whichever store holds their data.

- idempotent creation: creating an existing id stores nothing and returns the stored record;
- forward-only states: a finished record never moves again, whatever arrives later;
- unknown ids: None, not an error;
- concurrent duplicates (threads, and for SQLite processes too): exactly one caller wins, every
  caller sees the same final record, and `Transition.changed` is True exactly once;
- the handlers on top: a duplicate delivery yields the same reply and no second user.

DynamoDB runs against DynamoDB Local (`make dynamodb`); without it those cases skip (fail when
`CI=true`).
"""

import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing
from functools import partial
from pathlib import Path

import pytest

from functions import user_create, user_create_response
from functions.catalog import (
    APPROVAL_DECIDED,
    OPERATION_COMPLETED,
    OPERATION_FAILED,
    USER_CREATED,
    USER_CREATION_REQUESTED,
)
from functions.ce import BaseCloudEvent, new_event
from functions.settings import Settings
from functions.stores import OperationStore, UserStore, open_table
from functions.stores.base import Transition
from tests.functions.stores import dynamodb_local
from tests.functions.stores.concurrency import create_then_finish, race, race_in_processes

#: Concurrent callers per race: more than gunicorn's 16 threads per instance.
RACERS = 24
#: Processes per race on SQLite (each with its own connection, as instances have).
PROCESS_RACERS = 6


@pytest.fixture(params=["sqlite", pytest.param("dynamodb", marks=pytest.mark.dynamodb)])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """A function's settings on each store backend, with empty tables."""
    if request.param == "sqlite":
        yield Settings(function="test", store="sqlite", data_dir=tmp_path)
    else:
        with dynamodb_local.fresh_tables() as dynamodb:
            yield dynamodb


@pytest.fixture
def operations(settings: Settings) -> OperationStore:
    return OperationStore(open_table(settings, "operations"))


@pytest.fixture
def users(settings: Settings) -> UserStore:
    return UserStore(open_table(settings, "users"))


def count_records(settings: Settings, service: str) -> int:
    """How many records a service's table holds, read behind the store's back."""
    if settings.store == "dynamodb":
        return dynamodb_local.count_items(settings, service)
    with closing(sqlite3.connect(settings.data_dir / f"{service}.sqlite3")) as conn:
        count: int = conn.execute("SELECT count(*) FROM records").fetchone()[0]
    return count


def new_id() -> str:
    return str(uuid.uuid4())


# -- idempotent creation, unknown ids ------------------------------------------------------------


def test_creating_an_operation_twice_returns_the_first(operations: OperationStore) -> None:
    op_id = new_id()
    first = operations.create(op_id, "user.create", {"name": "Ada"})
    second = operations.create(op_id, "user.create", {"name": "Grace"})
    assert first["status"] == "pending"
    assert first["request"] == {"name": "Ada"}
    assert second == first
    assert operations.get(op_id) == first


def test_the_outbox_event_is_stored_with_the_operation(operations: OperationStore) -> None:
    """The pending operation and its event are one record: written together, read together."""
    op_id = new_id()
    outbox = {"specversion": "1.0", "id": "e-1", "type": "t", "source": "/s", "data": {"a": 1}}
    operations.create(op_id, "user.create", {"name": "Ada"}, outbox)
    stored = operations.get(op_id)
    assert stored is not None
    assert stored["outbox"] == outbox


def test_pending_lists_only_pending_operations_up_to_the_limit(
    operations: OperationStore,
) -> None:
    """The sweep's one query: the pending operations, never a finished one, at most `limit`."""
    pending = {new_id() for _ in range(5)}
    for op_id in pending:
        operations.create(op_id, "user.create", {"name": "Ada"})
    done, failed = new_id(), new_id()
    for op_id in (done, failed):
        operations.create(op_id, "user.create", {"name": "Ada"})
    operations.complete(done, {"user": {}})
    operations.fail(failed, "no")
    assert {op["id"] for op in operations.pending(100)} == pending
    assert len(operations.pending(2)) == 2
    assert {op["status"] for op in operations.pending(100)} == {"pending"}


def test_creating_a_user_twice_returns_the_first(users: UserStore) -> None:
    user_id, op_id = new_id(), new_id()
    first = users.create(user_id, "Ada", op_id)
    second = users.create(user_id, "Grace", new_id())
    assert (first["status"], first["name"], first["operationId"]) == (
        "approval_pending",
        "Ada",
        op_id,
    )
    assert second == first
    assert users.get(user_id) == first


def test_unknown_ids_are_none(operations: OperationStore, users: UserStore) -> None:
    unknown = new_id()
    assert operations.get(unknown) is None
    assert operations.complete(unknown, {"user": "x"}) is None
    assert operations.fail(unknown, "no reason") is None
    assert users.get(unknown) is None
    assert users.decide(unknown, approved=True, reason=None) is None
    # Answering "unknown" must not have created anything.
    assert operations.get(unknown) is None
    assert users.get(unknown) is None


# -- forward-only states --------------------------------------------------------------------------


def _finish(operations: OperationStore, op_id: str, how: str, tag: str) -> Transition | None:
    if how == "complete":
        return operations.complete(op_id, {"tag": tag})
    return operations.fail(op_id, f"reason {tag}")


@pytest.mark.parametrize(
    ("first", "then"),
    [("complete", "fail"), ("fail", "complete"), ("complete", "complete"), ("fail", "fail")],
)
def test_a_finished_operation_never_moves(
    operations: OperationStore, first: str, then: str
) -> None:
    op_id = new_id()
    operations.create(op_id, "user.create", {"name": "Ada"})

    done = _finish(operations, op_id, first, "first")
    assert done is not None and done.changed
    expected = {"complete": "completed", "fail": "failed"}[first]
    assert done.record["status"] == expected
    assert operations.get(op_id) == done.record

    late = _finish(operations, op_id, then, "late")
    assert late is not None
    assert not late.changed
    assert late.record == done.record
    assert operations.get(op_id) == done.record


@pytest.mark.parametrize(("first", "then"), [(True, False), (False, True)])
def test_a_user_decision_is_final(users: UserStore, first: bool, then: bool) -> None:
    user_id = new_id()
    users.create(user_id, "Ada", new_id())

    decided = users.decide(user_id, approved=first, reason=None if first else "too young")
    assert decided is not None and decided.changed
    assert decided.record["status"] == ("approved" if first else "rejected")

    late = users.decide(user_id, approved=then, reason=None if then else "late rejection")
    assert late is not None
    assert not late.changed
    assert late.record == decided.record
    assert users.get(user_id) == decided.record


# -- concurrent duplicates ------------------------------------------------------------------------


def test_concurrent_creates_store_one_operation(
    operations: OperationStore, settings: Settings
) -> None:
    op_id = new_id()
    results = race(
        [
            partial(operations.create, op_id, "user.create", {"name": f"racer {i}"})
            for i in range(RACERS)
        ]
    )
    stored = operations.get(op_id)
    assert stored is not None
    assert all(result == stored for result in results)
    assert stored["request"]["name"] in {f"racer {i}" for i in range(RACERS)}
    assert count_records(settings, "operations") == 1


def test_concurrent_finishes_have_one_winner(operations: OperationStore) -> None:
    op_id = new_id()
    operations.create(op_id, "user.create", {"name": "Ada"})
    hows = ["complete" if i % 2 else "fail" for i in range(RACERS)]
    transitions = race(
        [partial(_finish, operations, op_id, how, str(i)) for i, how in enumerate(hows)]
    )
    assert all(t is not None for t in transitions)
    winners = [i for i, t in enumerate(transitions) if t is not None and t.changed]
    assert len(winners) == 1, f"expected exactly one changed transition; found {len(winners)}"
    stored = operations.get(op_id)
    assert all(t is not None and t.record == stored for t in transitions)
    # The stored outcome is the winner's own call, not a mix of several callers'.
    (winner,) = winners
    assert stored is not None
    if hows[winner] == "complete":
        assert (stored["status"], stored["result"]) == ("completed", {"tag": str(winner)})
    else:
        assert (stored["status"], stored["error"]) == ("failed", {"reason": f"reason {winner}"})


def test_concurrent_decisions_have_one_winner(users: UserStore) -> None:
    user_id = new_id()
    users.create(user_id, "Ada", new_id())
    transitions = race(
        [partial(users.decide, user_id, i % 2 == 1, f"racer {i}") for i in range(RACERS)]
    )
    changed = [t for t in transitions if t is not None and t.changed]
    assert len(changed) == 1
    stored = users.get(user_id)
    assert all(t is not None and t.record == stored for t in transitions)
    assert stored == changed[0].record


def test_concurrent_processes_on_sqlite_have_one_winner(tmp_path: Path) -> None:
    # On DynamoDB the server applies each conditional write atomically whoever sends it, so
    # threads already prove it; SQLite's atomicity across processes rests on its file locks.
    settings = Settings(function="test", store="sqlite", data_dir=tmp_path)
    op_id = new_id()
    outcomes = race_in_processes(partial(create_then_finish, settings, op_id), PROCESS_RACERS)

    stored = OperationStore(open_table(settings, "operations")).get(op_id)
    assert stored is not None
    assert all(created == outcomes[0][0] for created, _, _ in outcomes)
    assert [changed for _, _, changed in outcomes].count(True) == 1
    assert all(final == stored for _, final, _ in outcomes)
    assert count_records(settings, "operations") == 1


# -- the handlers' idempotency, end to end on each store ------------------------------------------


def _same(a: BaseCloudEvent, b: BaseCloudEvent) -> bool:
    return (a.get_id(), a.get_type(), a.get_source(), a.get_data()) == (
        b.get_id(),
        b.get_type(),
        b.get_source(),
        b.get_data(),
    )


def _user_id(user_created: BaseCloudEvent) -> str:
    data = user_created.get_data()
    assert isinstance(data, dict), f"expected JSON object data; found {data!r}"
    user_id: str = data["user"]["id"]
    return user_id


def _creation_requested(op_id: str, name: str = "Ada") -> BaseCloudEvent:
    return new_event(
        USER_CREATION_REQUESTED,
        "/users-service",
        {"operationId": op_id, "name": name},
        operation_id=op_id,
    )


def test_user_create_duplicate_delivery_same_reply_one_user(
    users: UserStore, settings: Settings
) -> None:
    op_id = new_id()
    event = _creation_requested(op_id)
    first = user_create.handle(event, users=users)
    second = user_create.handle(event, users=users)
    assert first.get_type() == USER_CREATED
    assert _same(first, second)
    assert count_records(settings, "users") == 1
    user_id = _user_id(first)
    stored = users.get(user_id)
    assert stored is not None and (stored["name"], stored["operationId"]) == ("Ada", op_id)


def test_user_create_concurrent_duplicates_one_user(users: UserStore, settings: Settings) -> None:
    event = _creation_requested(new_id())
    replies = race([partial(user_create.handle, event, users=users)] * RACERS)
    assert all(_same(reply, replies[0]) for reply in replies)
    assert count_records(settings, "users") == 1


def _decided(
    op_id: str, user_id: str, approved: bool, caused_by: BaseCloudEvent | None
) -> BaseCloudEvent:
    data = {
        "operationId": op_id,
        "userId": user_id,
        "approved": approved,
        "reason": None if approved else "name on the deny list",
    }
    return new_event(
        APPROVAL_DECIDED, "/users-service", data, operation_id=op_id, caused_by=caused_by
    )


@pytest.mark.parametrize(
    ("approved", "reply_type"), [(True, OPERATION_COMPLETED), (False, OPERATION_FAILED)]
)
def test_user_create_response_duplicate_same_reply(
    users: UserStore, approved: bool, reply_type: str
) -> None:
    op_id = new_id()
    created = user_create.handle(_creation_requested(op_id), users=users)
    user_id = _user_id(created)

    event = _decided(op_id, user_id, approved, caused_by=created)
    first = user_create_response.handle(event, users=users)
    duplicate = user_create_response.handle(event, users=users)
    assert first.get_type() == reply_type
    assert _same(first, duplicate)

    # A contradicting decision arriving later (another event) does not change the outcome.
    late = _decided(op_id, user_id, not approved, caused_by=None)
    after_late = user_create_response.handle(late, users=users)
    assert after_late.get_type() == reply_type
    assert after_late.get_data() == first.get_data()

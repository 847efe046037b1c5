"""The store interface: a tiny table abstraction per backend, the domain rules above it, once.

A backend implements :class:`Table` — three conditional primitives on JSON records keyed by id,
and one listing by status (the operation sweep's only query). The
domain stores (:class:`OperationStore`, :class:`UserStore`) build idempotency and forward-only
state transitions on those primitives, so every backend obeys the same rules:

- creating a record that exists returns the stored one (a duplicate delivery creates nothing);
- a state moves only from its initial state to a final one, by a compare-and-set on the state, so
  a late or duplicate event never moves a finished record back, even under concurrent deliveries.
"""

import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

Record = dict[str, Any]

PENDING: Final = "pending"
COMPLETED: Final = "completed"
FAILED: Final = "failed"

APPROVAL_PENDING: Final = "approval_pending"
APPROVED: Final = "approved"
REJECTED: Final = "rejected"


class Table(ABC):
    """One table of JSON records with a string `id` and a string `status`.

    Implementations must make each method atomic with respect to concurrent callers in any process.
    """

    @abstractmethod
    def put_if_absent(self, record: Record) -> Record:
        """Store `record` unless a record with its id exists.

        :return: the stored record: `record` itself, or the one that was already there.
        """

    @abstractmethod
    def get(self, record_id: str) -> Record | None:
        """Return the record with this id, or None."""

    @abstractmethod
    def replace_if_status(self, record: Record, expected_status: str) -> bool:
        """Replace the record with `record`'s id, only if its status is still `expected_status`.

        :return: whether the record was replaced.
        """

    @abstractmethod
    def with_status(self, status: str, limit: int) -> list[Record]:
        """Return at most `limit` records whose status is `status`, in no particular order."""

    def close(self) -> None:  # noqa: B027 - optional hook, most backends have nothing to release
        """Release connections."""


@dataclass(frozen=True)
class Transition:
    """The outcome of a state change: the record as stored, and whether this call changed it."""

    record: Record
    changed: bool


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class _StateMachine:
    """Forward-only moves from one initial status to final ones, by compare-and-set."""

    initial: str
    final: frozenset[str]

    def __init__(self, table: Table) -> None:
        self.table = table

    def _create(self, record: Record) -> Record:
        return self.table.put_if_absent({**record, "status": self.initial})

    def _finish(self, record_id: str, status: str, fields: Mapping[str, Any]) -> Transition | None:
        if status not in self.final:
            raise ValueError(f"expected a final status {sorted(self.final)}; found {status!r}")
        current = self.table.get(record_id)
        if current is None:
            return None
        if current["status"] != self.initial:
            return Transition(current, changed=False)
        updated = {**current, **fields, "status": status, "updatedAt": _now()}
        if self.table.replace_if_status(updated, expected_status=self.initial):
            return Transition(updated, changed=True)
        # Another delivery finished it between our read and our write: report what it stored.
        stored = self.table.get(record_id)
        assert stored is not None, f"record {record_id} vanished"
        return Transition(stored, changed=False)


class OperationStore(_StateMachine):
    """The operation service's store: operations move `pending → completed | failed`, once."""

    initial = PENDING
    final = frozenset({COMPLETED, FAILED})

    def create(
        self,
        operation_id: str,
        kind: str,
        request: Mapping[str, Any],
        outbox: Mapping[str, Any] | None = None,
    ) -> Record:
        """Store a pending operation, or return the one already stored under this id.

        :param outbox: the event that starts the operation's flow (a structured-mode CloudEvent
            as JSON), stored in the same record, so the operation and its event are written in
            one atomic write (a transactional outbox): whoever finds the operation pending can
            publish its event again.
        """
        now = _now()
        return self._create(
            {
                "id": operation_id,
                "kind": kind,
                "request": dict(request),
                "createdAt": now,
                "updatedAt": now,
                "result": None,
                "error": None,
                "outbox": dict(outbox) if outbox is not None else None,
            }
        )

    def pending(self, limit: int) -> list[Record]:
        """Return at most `limit` pending operations (for the sweep that re-drives them)."""
        return self.table.with_status(PENDING, limit)

    def get(self, operation_id: str) -> Record | None:
        """Return the operation, or None."""
        return self.table.get(operation_id)

    def complete(self, operation_id: str, result: Mapping[str, Any]) -> Transition | None:
        """Move a pending operation to `completed` with its result.

        :return: the transition, or None when no such operation exists.
        """
        return self._finish(operation_id, COMPLETED, {"result": dict(result)})

    def fail(self, operation_id: str, reason: str) -> Transition | None:
        """Move a pending operation to `failed` with a reason a person can read.

        :return: the transition, or None when no such operation exists.
        """
        return self._finish(operation_id, FAILED, {"error": {"reason": reason}})


class UserStore(_StateMachine):
    """The user service's store: users move `approval_pending → approved | rejected`, once."""

    initial = APPROVAL_PENDING
    final = frozenset({APPROVED, REJECTED})

    def create(self, user_id: str, name: str, operation_id: str) -> Record:
        """Store a user pending approval, or return the one already stored under this id."""
        now = _now()
        return self._create(
            {
                "id": user_id,
                "name": name,
                "operationId": operation_id,
                "reason": None,
                "createdAt": now,
                "updatedAt": now,
            }
        )

    def get(self, user_id: str) -> Record | None:
        """Return the user, or None."""
        return self.table.get(user_id)

    def decide(self, user_id: str, approved: bool, reason: str | None) -> Transition | None:
        """Record the approval decision on a pending user.

        :return: the transition, or None when no such user exists.
        """
        status = APPROVED if approved else REJECTED
        return self._finish(user_id, status, {"reason": reason})

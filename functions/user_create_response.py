"""user-create-response: store the approval decision on the user, reply with the operation's end."""

from functions.catalog import (
    APPROVAL_DECIDED,
    OPERATION_COMPLETED,
    OPERATION_FAILED,
    load_catalog,
)
from functions.ce import BaseCloudEvent, new_event
from functions.errors import NotFound
from functions.stores.base import APPROVED, UserStore


def handle(event: BaseCloudEvent, *, users: UserStore) -> BaseCloudEvent:
    """Record an `approval.decided` event and reply `operation.completed` or `operation.failed`.

    Idempotent: the first decision stored wins and the reply is built from the stored user, so a
    duplicate delivery yields the same reply.

    :raises NotFound: the user does not exist (yet); the broker retries a 404 (§2.7).
    """
    catalog = load_catalog()
    data = catalog.validate(event, accept=(APPROVAL_DECIDED,))
    operation_id = data["operationId"]
    transition = users.decide(data["userId"], data["approved"], data["reason"])
    if transition is None:
        raise NotFound(f"no user with id {data['userId']!r} (operation {operation_id})")
    user = transition.record
    public_user = {k: user[k] for k in ("id", "name", "status", "reason")}
    if user["status"] == APPROVED:
        return new_event(
            OPERATION_COMPLETED,
            catalog.source,
            {"operationId": operation_id, "user": public_user},
            operation_id=operation_id,
            caused_by=event,
        )
    return new_event(
        OPERATION_FAILED,
        catalog.source,
        {"operationId": operation_id, "reason": f"user rejected: {user['reason']}"},
        operation_id=operation_id,
        caused_by=event,
    )

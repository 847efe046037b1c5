"""user-create: store the requested user, pending approval, and reply `user.created`."""

import uuid

from functions.catalog import USER_CREATED, USER_CREATION_REQUESTED, load_catalog
from functions.ce import BaseCloudEvent, new_event
from functions.stores.base import APPROVAL_PENDING, UserStore

#: User ids are derived from the operation id, so a duplicate request creates no second user.
_USER_ID_NAMESPACE = uuid.UUID("9d3f5c2a-1b4e-4c8d-8f7a-3e2d1c0b9a87")


def handle(event: BaseCloudEvent, *, users: UserStore) -> BaseCloudEvent:
    """Create the user of a `user.creation.requested` event.

    Idempotent: the user id is derived from the operation id and the reply from the event, so a
    duplicate delivery stores nothing new and yields the identical reply.
    """
    catalog = load_catalog()
    data = catalog.validate(event, accept=(USER_CREATION_REQUESTED,))
    operation_id = data["operationId"]
    user_id = str(uuid.uuid5(_USER_ID_NAMESPACE, operation_id))
    user = users.create(user_id, data["name"], operation_id)
    reply = {"id": user_id, "name": user["name"], "status": APPROVAL_PENDING, "reason": None}
    return new_event(
        USER_CREATED,
        catalog.source,
        {"operationId": operation_id, "user": reply},
        operation_id=operation_id,
        caused_by=event,
    )

"""operation-update: finish an operation; also the dead-letter sink of every Trigger.

A dead-lettered event arrives as the original event plus `knativeerror*` extensions
(knative-semantics.md §2.8); its operation is marked failed so that no client waits forever.
"""

import base64
import binascii

from functions.catalog import (
    OPERATION_COMPLETED,
    OPERATION_FAILED,
    OPERATION_ID_EXTENSION,
    load_catalog,
)
from functions.ce import BaseCloudEvent
from functions.errors import InvalidEvent, NotFound
from functions.stores.base import OperationStore, Transition


def handle(event: BaseCloudEvent, *, operations: OperationStore) -> None:
    """Move the event's operation to `completed` or `failed`.

    Idempotent and forward-only: a finished operation never changes again.

    :raises NotFound: the operation does not exist (yet); the broker retries a 404 (§2.7).
    """
    catalog = load_catalog()
    if event.get_extension("knativeerrordest") is not None:
        _dead_letter(event, operations)
        return
    data = catalog.validate(event, accept=(OPERATION_COMPLETED, OPERATION_FAILED))
    transition: Transition | None
    if event.get_type() == OPERATION_COMPLETED:
        transition = operations.complete(data["operationId"], {"user": data["user"]})
    else:
        transition = operations.fail(data["operationId"], data["reason"])
    if transition is None:
        raise NotFound(f"no operation with id {data['operationId']!r}")


def _dead_letter(event: BaseCloudEvent, operations: OperationStore) -> None:
    operation_id = event.get_extension(OPERATION_ID_EXTENSION)
    if not isinstance(operation_id, str):
        data = event.get_data()
        operation_id = data.get("operationId") if isinstance(data, dict) else None
    if not isinstance(operation_id, str):
        raise InvalidEvent(
            f"dead-lettered event {event.get_id()} names no operation: expected the"
            f" {OPERATION_ID_EXTENSION!r} extension or data.operationId"
        )
    destination = event.get_extension("knativeerrordest")
    code = event.get_extension("knativeerrorcode")
    detail = _error_detail(event.get_extension("knativeerrordata"))
    reason = (
        f"event {event.get_type()} could not be delivered to {destination}"
        + (f" (last status {code}{': ' + detail if detail else ''})" if code else "")
        + "; the operation cannot finish"
    )
    if operations.fail(operation_id, reason) is None:
        raise NotFound(f"no operation with id {operation_id!r}")


def _error_detail(encoded: object) -> str:
    """Decode `knativeerrordata` (base64 of the last response body) into a short text."""
    if not isinstance(encoded, str) or not encoded:
        return ""
    try:
        text = base64.b64decode(encoded, validate=True).decode("utf-8", errors="replace")
    except (binascii.Error, ValueError):
        return ""
    return " ".join(text.split())[:200]

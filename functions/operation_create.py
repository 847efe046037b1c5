"""operation-create: accept `POST /users`, store a pending operation, emit the creation request.

This is the synchronous-to-asynchronous conversion: the client gets `202 Accepted` and the
operation's URL at once; the rest of the flow runs on the broker.
"""

import uuid
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator

from functions import jsonbody
from functions.catalog import USER_CREATION_REQUESTED, load_catalog
from functions.ce import BaseCloudEvent, new_event
from functions.contract import HttpRequest, HttpResponse, Route
from functions.errors import InvalidRequest, ServiceUnavailable, UnsupportedMediaType
from functions.stores.base import OperationStore, Record

ROUTES = (Route("POST", "/users"),)

#: Operation ids derived from a client's `Idempotency-Key` live in this namespace.
_IDEMPOTENCY_NAMESPACE = uuid.UUID("0b7e8c0e-3f3a-4a53-9a6f-9c1f4d1e7c21")


def handle(
    request: HttpRequest,
    *,
    operations: OperationStore,
    publish: Callable[[BaseCloudEvent], None],
) -> HttpResponse:
    """Create a user asynchronously.

    :param request: `POST /users` with a JSON body `{"name": "…"}`; an optional `Idempotency-Key`
        header makes retries of the same request return the same operation.
    :param operations: the operation service's store.
    :param publish: sends an event to the broker; returns once the broker accepted it.
    :return: `202` with the pending operation and its `Location`.
    :raises InvalidRequest: the body is not JSON or fails the API schema; nothing is stored.
    :raises ServiceUnavailable: the broker did not accept the event; the operation is marked
        failed with that reason, so it never stays pending.
    """
    name = parse_create_user(request)
    key = request.headers.get("Idempotency-Key")
    operation_id = str(uuid.uuid5(_IDEMPOTENCY_NAMESPACE, key) if key else uuid.uuid4())
    operation = operations.create(operation_id, "user.create", {"name": name})
    if operation["status"] == "pending":
        event = new_event(
            USER_CREATION_REQUESTED,
            load_catalog().source,
            {"operationId": operation_id, "name": operation["request"]["name"]},
            operation_id=operation_id,
        )
        try:
            publish(event)
        except ServiceUnavailable as exc:
            operations.fail(operation_id, f"the request could not be queued: {exc.message}")
            raise
    return HttpResponse(
        202, public_operation(operation), {"Location": f"/operations/{operation_id}"}
    )


def parse_create_user(request: HttpRequest) -> str:
    """Validate a create-user request against the OpenAPI schema.

    :return: the name, with surrounding white space removed.
    :raises UnsupportedMediaType: the body is not declared as JSON.
    :raises InvalidRequest: the body is not JSON, or fails the schema, or the name is blank.
    """
    content_type = request.headers.get("Content-Type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise UnsupportedMediaType(
            f"expected Content-Type: application/json; found {content_type or 'none'}"
        )
    body = jsonbody.loads(request.body)
    errors = sorted(_create_user_schema().iter_errors(body), key=lambda e: list(e.absolute_path))
    if errors:
        where = "/".join(str(p) for p in errors[0].absolute_path)
        # The schema's one `pattern` is the name's "not blank" (openapi.yaml says what blank is).
        problem = "must not be blank" if errors[0].validator == "pattern" else errors[0].message
        raise InvalidRequest(f"invalid body{' at ' + where if where else ''}: {problem}")
    name: str = body["name"].strip()
    return name


def public_operation(record: Record) -> dict[str, Any]:
    """The operation as the public API shows it (see `openapi.yaml`, schema `Operation`)."""
    return {
        "id": record["id"],
        "status": record["status"],
        "createdAt": record["createdAt"],
        "updatedAt": record["updatedAt"],
        "result": record.get("result"),
        "error": record.get("error"),
    }


@cache
def _create_user_schema() -> Draft202012Validator:
    spec: Mapping[str, Any] = yaml.safe_load(
        (Path(__file__).parent / "openapi.yaml").read_text(encoding="utf-8")
    )
    return Draft202012Validator(spec["components"]["schemas"]["CreateUserRequest"])

"""operation-get: `GET /operations/{id}` returns the operation as the OpenAPI document says."""

from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

import functions
from functions import operation_get
from functions.contract import HttpRequest
from functions.errors import NotFound
from functions.stores.base import OperationStore
from functions.stores.sqlite import SqliteTable

OPERATION_ID = "9c5e7f3a-8b0d-4e2f-9a7c-1d3e5f7a9b2c"
UNKNOWN_ID = "00000000-0000-4000-8000-000000000002"
USER = {
    "id": "0d6f8a4b-9c1e-4f3a-8b8d-2e4f6a8b0c3d",
    "name": "Ada",
    "status": "approved",
    "reason": None,
}


@cache
def operation_schema() -> Draft202012Validator:
    """The public API's `Operation` schema from `functions/openapi.yaml`."""
    spec = yaml.safe_load(
        (Path(functions.__file__).parent / "openapi.yaml").read_text(encoding="utf-8")
    )
    return Draft202012Validator(
        {"$ref": "#/components/schemas/Operation", "components": spec["components"]}
    )


@pytest.fixture
def operations(tmp_path: Path) -> OperationStore:
    """The operation service's real SQLite store, holding one pending operation."""
    store = OperationStore(SqliteTable(tmp_path / "operations.sqlite3"))
    store.create(OPERATION_ID, "user.create", {"name": "Ada"})
    return store


def get(operation_id: str) -> HttpRequest:
    """A `GET /operations/{id}` request as the app factory passes it."""
    return HttpRequest(
        "GET", f"/operations/{operation_id}", {}, b"", {"operation_id": operation_id}
    )


def leave_pending(operations: OperationStore) -> None:
    """Do nothing: the operation stays pending."""


def complete(operations: OperationStore) -> None:
    """Finish the operation with its user."""
    operations.complete(OPERATION_ID, {"user": USER})


def fail(operations: OperationStore) -> None:
    """Finish the operation with a failure."""
    operations.fail(OPERATION_ID, "user rejected: reserved")


# (id, what happens to the operation, expected status, result, error)
STATES: list[tuple[str, Callable[[OperationStore], None], str, Any, Any]] = [
    ("pending", leave_pending, "pending", None, None),
    ("completed", complete, "completed", {"user": USER}, None),
    ("failed", fail, "failed", None, {"reason": "user rejected: reserved"}),
]


@pytest.mark.parametrize(
    ("finish", "status", "result", "error"),
    [row[1:] for row in STATES],
    ids=[row[0] for row in STATES],
)
def test_returns_the_operation_in_each_state(
    operations: OperationStore,
    finish: Callable[[OperationStore], None],
    status: str,
    result: Any,
    error: Any,
) -> None:
    """200 with the operation, its result or error, matching the OpenAPI `Operation` schema."""
    finish(operations)
    response = operation_get.handle(get(OPERATION_ID), operations=operations)
    assert response.status == 200
    body = response.body
    assert (body["id"], body["status"], body["result"], body["error"]) == (
        OPERATION_ID,
        status,
        result,
        error,
    )
    errors = [e.message for e in operation_schema().iter_errors(body)]
    assert errors == []


def test_does_not_expose_internal_fields(operations: OperationStore) -> None:
    """Only the public fields are shown: not the stored request nor the kind."""
    response = operation_get.handle(get(OPERATION_ID), operations=operations)
    public = {"id", "status", "createdAt", "updatedAt", "result", "error", "traceId"}
    assert set(response.body) == public


def test_unknown_operation_is_not_found(operations: OperationStore) -> None:
    """An id that names no operation raises NotFound (404) naming the id."""
    with pytest.raises(NotFound) as caught:
        operation_get.handle(get(UNKNOWN_ID), operations=operations)
    assert caught.value.status == 404
    assert caught.value.message == f"no operation with id {UNKNOWN_ID!r}"

"""operation-get: `GET /operations/{id}` returns the operation, pending or finished."""

from functions.contract import HttpRequest, HttpResponse, Route
from functions.errors import NotFound
from functions.operation_create import public_operation
from functions.stores.base import OperationStore

ROUTES = (Route("GET", "/operations/<operation_id>"),)


def handle(request: HttpRequest, *, operations: OperationStore) -> HttpResponse:
    """Read one operation.

    :return: `200` with the operation.
    :raises NotFound: no operation has this id.
    """
    operation_id = request.params["operation_id"]
    operation = operations.get(operation_id)
    if operation is None:
        raise NotFound(f"no operation with id {operation_id!r}")
    return HttpResponse(200, public_operation(operation))

"""The six functions by name, and how each is wired to its dependencies.

The mapping is explicit: adding a function means adding a line here, not a decorator side effect.
"""

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from functions import (
    operation_create,
    operation_get,
    operation_update,
    tracing,
    user_approve,
    user_create,
    user_create_response,
)
from functions.contract import EventHandler, HttpHandler, Route
from functions.errors import ConfigError
from functions.settings import Settings
from functions.sink import HttpSink
from functions.stores import OperationStore, UserStore, open_table


@dataclass(frozen=True)
class EventFunction:
    """A function the broker delivers CloudEvents to."""

    name: str
    handler: EventHandler


@dataclass(frozen=True)
class HttpFunction:
    """A function serving routes of the public API."""

    name: str
    handler: HttpHandler
    routes: tuple[Route, ...]


Function = EventFunction | HttpFunction


def _operations(settings: Settings) -> OperationStore:
    table = open_table(settings, "operations")
    return OperationStore(tracing.traced_table(table, "operations", settings.store))


def _users(settings: Settings) -> UserStore:
    return UserStore(tracing.traced_table(open_table(settings, "users"), "users", settings.store))


def _operation_create(settings: Settings) -> Function:
    if not settings.sink:
        raise ConfigError(
            "K_SINK is not set: operation-create needs the broker's address"
            " (Knative's SinkBinding sets it; the local runtime passes the broker ingress)"
        )
    handler = partial(
        operation_create.serve,
        operations=_operations(settings),
        publish=HttpSink(settings.sink, settings.sink_timeout),
    )
    return HttpFunction("operation-create", handler, operation_create.ROUTES)


def _operation_get(settings: Settings) -> Function:
    handler = partial(operation_get.handle, operations=_operations(settings))
    return HttpFunction("operation-get", handler, operation_get.ROUTES)


FUNCTIONS: dict[str, Callable[[Settings], Function]] = {
    "operation-create": _operation_create,
    "operation-get": _operation_get,
    "operation-update": lambda s: EventFunction(
        "operation-update", partial(operation_update.handle, operations=_operations(s))
    ),
    "user-create": lambda s: EventFunction(
        "user-create", partial(user_create.handle, users=_users(s))
    ),
    "user-approve": lambda s: EventFunction("user-approve", user_approve.handle),
    "user-create-response": lambda s: EventFunction(
        "user-create-response", partial(user_create_response.handle, users=_users(s))
    ),
}


def load_function(settings: Settings) -> Function:
    """Build the function named by `settings.function`, wired to its stores and sink.

    :raises ConfigError: the name is unknown, or a dependency is not configured.
    """
    try:
        build = FUNCTIONS[settings.function]
    except KeyError:
        raise ConfigError(
            f"unknown function {settings.function!r}; expected one of {', '.join(FUNCTIONS)}"
        ) from None
    return build(settings)

"""The function contract: what a handler receives and returns. No web framework here.

Event functions take a CloudEvent and return an optional reply CloudEvent. The two public-API
functions take an :class:`HttpRequest` and return an :class:`HttpResponse`.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from functions.ce import BaseCloudEvent

EventHandler = Callable[[BaseCloudEvent], BaseCloudEvent | None]


@dataclass(frozen=True)
class HttpRequest:
    """A public-API request, as the handler sees it."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes
    #: Values captured from the route, e.g. `{"operation_id": "…"}`.
    params: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class HttpResponse:
    """A public-API response; `body` is serialized as JSON."""

    status: int
    body: Any
    headers: Mapping[str, str] = field(default_factory=dict)


HttpHandler = Callable[[HttpRequest], HttpResponse]


@dataclass(frozen=True)
class Route:
    """One HTTP route of a public-API function (Flask-style path, e.g. `/operations/<id>`)."""

    method: str
    path: str

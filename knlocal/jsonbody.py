"""The one way `knlocal` decodes JSON from a request: bounded in size and nesting depth.

`json.loads` recurses once per nesting level, so 5000 `[` raise RecursionError (a 500); and a
deep value that does parse can still exhaust the stack later (schema validation, re-encoding).
Every JSON body the runtime reads (the broker ingress's events) goes through :func:`loads`.
"""

import json
from typing import Any

from knlocal.errors import LocalRuntimeError

#: Deepest nesting accepted: an object or array counts one level. The API and every event of the
#: catalog need three; 32 leaves room without letting a body near the interpreter's stack.
MAX_DEPTH = 32


class JsonBodyError(LocalRuntimeError, ValueError):
    """A body is not JSON, or is larger or deeper than allowed; `message` says which.

    :ivar syntax: True when the body is not JSON at all (as opposed to too large or too deep).
    """

    def __init__(self, message: str, *, syntax: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.syntax = syntax


def loads(
    body: bytes | str, *, max_bytes: int, max_depth: int = MAX_DEPTH, what: str = "body"
) -> Any:
    """Decode a JSON body no larger than `max_bytes` and nested no deeper than `max_depth`.

    :param what: names the body in the error message, e.g. `CloudEvent data`.

    :raises JsonBodyError: saying what was expected and what was found.
    """
    if len(body) > max_bytes:
        raise JsonBodyError(f"{what} larger than {max_bytes} bytes; found {len(body)}")
    try:
        value = json.loads(body)
    except RecursionError:
        raise JsonBodyError(f"{what} nested deeper than {max_depth} levels") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise JsonBodyError(f"{what} is not valid JSON: {exc}", syntax=True) from exc
    depth = _depth(value)
    if depth > max_depth:
        raise JsonBodyError(f"{what} nested deeper than {max_depth} levels; found {depth}")
    return value


def _depth(value: Any) -> int:
    # Iterative, so measuring a deep value cannot itself recurse too far.
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children)
    return deepest

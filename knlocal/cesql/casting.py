"""CESQL types and casts (spec §3.1, §3.7).

A cast returns its value and, when it is not defined for the input, the reason; the
caller then goes on with the returned fallback value (the target type's zero value).
Implicit casts from Integer to Boolean are refused, as the TCK requires (``NOT 10`` is a
cast error); the explicit ``BOOL()`` function defines that one (``BOOL(10)`` is true).
"""

from __future__ import annotations

import re
from typing import Final

from knlocal.cesql.errors import Value

__all__ = [
    "INT32_MAX",
    "INT32_MIN",
    "to_boolean",
    "to_integer",
    "to_string",
    "to_type",
    "wrap",
]

INT32_MIN: Final = -(2**31)
INT32_MAX: Final = 2**31 - 1

_DECIMAL: Final = re.compile(r"[+-]?[0-9]+")


def wrap(value: int) -> int:
    """Wrap to 32 bits as two's complement: integer arithmetic overflows as in sdk-go."""
    return (value - INT32_MIN) % 2**32 + INT32_MIN


def to_string(value: Value) -> str:
    """Cast to String; always defined."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


def to_integer(value: Value) -> tuple[int, str | None]:
    """Cast to Integer: a base-10 32-bit string with an optional sign, or a Boolean."""
    if isinstance(value, bool):
        return int(value), None
    if isinstance(value, int):
        return value, None
    if _DECIMAL.fullmatch(value):
        number = int(value)
        if INT32_MIN <= number <= INT32_MAX:
            return number, None
        return 0, f"cannot cast {value!r} to Integer: out of the 32-bit range"
    return 0, f"cannot cast {value!r} to Integer: not a base-10 integer"


def to_boolean(value: Value) -> tuple[bool, str | None]:
    """Implicit cast to Boolean: ``"true"``/``"false"`` in any case; not from Integer."""
    if isinstance(value, bool):
        return value, None
    if isinstance(value, str):
        lowered = value.lower()
        if lowered == "true":
            return True, None
        if lowered == "false":
            return False, None
        return False, f"cannot cast {value!r} to Boolean: expected 'true' or 'false'"
    return False, f"cannot cast Integer {value} to Boolean implicitly: use BOOL()"


def to_type(value: Value, target: type) -> tuple[Value, str | None]:
    """Cast to the type of another value (``bool``, ``int`` or ``str``)."""
    if target is bool:
        return to_boolean(value)
    if target is int:
        return to_integer(value)
    return to_string(value), None

"""CESQL built-in functions (spec §3.5) and their dispatch by name and arity."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from knlocal.cesql.casting import INT32_MAX, INT32_MIN, to_boolean, to_integer
from knlocal.cesql.errors import (
    CastError,
    EvaluationError,
    FunctionEvaluationError,
    MathError,
    Value,
)

__all__ = ["Failure", "Function", "resolve"]


@dataclass(frozen=True)
class Failure:
    """What a function returns on an error: the error's type, why, and its value."""

    error: type[EvaluationError]
    message: str
    value: Value


@dataclass(frozen=True)
class Function:
    """A function's signature and body.

    ``parameters`` are the types the arguments are cast to, ``None`` for any type (the
    casting functions); ``variadic`` is the type of any further arguments.
    """

    name: str
    parameters: tuple[type | None, ...]
    variadic: type | None
    returns: type
    body: Callable[[Sequence[Value]], Value | Failure]


def _abs(args: Sequence[Value]) -> Value | Failure:
    number = args[0]
    assert isinstance(number, int)
    if number == INT32_MIN:
        return Failure(MathError, "ABS(-2147483648) overflows 32 bits", INT32_MAX)
    return abs(number)


def _int(args: Sequence[Value]) -> Value | Failure:
    number, problem = to_integer(args[0])
    return number if problem is None else Failure(CastError, problem, number)


def _bool(args: Sequence[Value]) -> Value | Failure:
    value = args[0]
    # The explicit cast defines Integer to Boolean (spec §3.7); the implicit one does not.
    if isinstance(value, int) and not isinstance(value, bool):
        return value != 0
    flag, problem = to_boolean(value)
    return flag if problem is None else Failure(CastError, problem, flag)


def _string(args: Sequence[Value]) -> Value | Failure:
    value = args[0]
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _left(args: Sequence[Value]) -> Value | Failure:
    text, count = str(args[0]), int(args[1])
    if count < 0:
        return Failure(FunctionEvaluationError, f"LEFT: negative length {count}", text)
    return text[:count]


def _right(args: Sequence[Value]) -> Value | Failure:
    text, count = str(args[0]), int(args[1])
    if count < 0:
        return Failure(FunctionEvaluationError, f"RIGHT: negative length {count}", text)
    return text[len(text) - count :] if count < len(text) else text


def _substring(args: Sequence[Value]) -> Value | Failure:
    text, position = str(args[0]), int(args[1])
    if position > len(text) or position < -len(text):
        message = f"SUBSTRING: position {position} is outside a string of {len(text)}"
        return Failure(FunctionEvaluationError, message, "")
    if position == 0:
        return ""
    start = position - 1 if position > 0 else len(text) + position
    if len(args) == 2:
        return text[start:]
    length = int(args[2])
    if length < 0:
        return Failure(FunctionEvaluationError, f"SUBSTRING: negative length {length}", "")
    return text[start : start + length]


def _text(args: Sequence[Value]) -> str:
    return str(args[0])


_BUILT_INS: Final = (
    Function("LENGTH", (str,), None, int, lambda a: len(_text(a))),
    Function("CONCAT", (), str, str, lambda a: "".join(str(x) for x in a)),
    Function("CONCAT_WS", (str,), str, str, lambda a: str(a[0]).join(str(x) for x in a[1:])),
    Function("LOWER", (str,), None, str, lambda a: _text(a).lower()),
    Function("UPPER", (str,), None, str, lambda a: _text(a).upper()),
    # Python's str.strip() strips exactly the Unicode whitespace (spec: TRIM).
    Function("TRIM", (str,), None, str, lambda a: _text(a).strip()),
    Function("LEFT", (str, int), None, str, _left),
    Function("RIGHT", (str, int), None, str, _right),
    Function("SUBSTRING", (str, int), None, str, _substring),
    Function("SUBSTRING", (str, int, int), None, str, _substring),
    Function("ABS", (int,), None, int, _abs),
    Function("INT", (None,), None, int, _int),
    Function("BOOL", (None,), None, bool, _bool),
    Function("STRING", (None,), None, str, _string),
)

_FIXED: Final[Mapping[tuple[str, int], Function]] = {
    (f.name, len(f.parameters)): f for f in _BUILT_INS if f.variadic is None
}
_VARIADIC: Final[Mapping[str, Function]] = {f.name: f for f in _BUILT_INS if f.variadic is not None}


def resolve(name: str, arity: int) -> Function | None:
    """The function called ``name`` that takes ``arity`` arguments, if there is one.

    A fixed-arity overload wins; a variadic one takes at least its fixed parameters.
    """
    fixed = _FIXED.get((name, arity))
    if fixed is not None:
        return fixed
    variadic = _VARIADIC.get(name)
    if variadic is not None and arity >= len(variadic.parameters):
        return variadic
    return None

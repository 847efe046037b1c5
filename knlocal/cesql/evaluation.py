"""Compile a CESQL syntax tree into nested closures and evaluate them against an event.

Error semantics (spec §3.3, §4.1 fail-fast mode, as the TCK checks them): an operator
whose own cast or computation fails still computes its result from the fallback values
and raises the error with it; an error raised below an operator ends the evaluation, and
the expression then returns the zero value of its root's return type. So ``NOT 10`` is
``true`` with a cast error, and ``true AND 1 != 1/0`` is ``false`` with a math error.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from knlocal.cesql.casting import to_boolean, to_integer, to_string, to_type, wrap
from knlocal.cesql.errors import (
    CastError,
    EvaluationError,
    MathError,
    MissingAttributeError,
    MissingFunctionError,
    Value,
)
from knlocal.cesql.functions import Failure, Function, resolve
from knlocal.cesql.syntax import (
    Binary,
    Call,
    Exists,
    Identifier,
    In,
    Like,
    Literal,
    Node,
    Unary,
    parse,
)

__all__ = ["Attributes", "Evaluation", "Expression", "compile_expression"]

#: An event as CESQL sees it: attribute and extension names to their values.
Attributes = Mapping[str, Value]

_Run = Callable[[Attributes], Value]

_ZERO: Final[Mapping[type, Value]] = {bool: False, int: 0, str: ""}


@dataclass(frozen=True)
class Evaluation:
    """The result of evaluating an expression: always a value, and maybe an error."""

    value: Value
    error: EvaluationError | None


@dataclass(frozen=True)
class Expression:
    """A compiled CESQL expression."""

    text: str
    root: Node
    #: The attribute names the expression reads (for EXISTS too).
    attributes: frozenset[str]
    run: _Run
    #: The zero value of the root's return type.
    zero: Value

    def evaluate(self, attributes: Attributes) -> Evaluation:
        """Evaluate against one event's attributes (fail-fast, spec §4.1)."""
        try:
            return Evaluation(self.run(attributes), None)
        except EvaluationError as error:
            value = error.value if error.origin is self.root else self.zero
            return Evaluation(value, error)


def compile_expression(text: str) -> Expression:
    """Parse and compile a CESQL v1 expression.

    :raises ParseError: the text does not follow the grammar.
    """
    root = parse(text)
    names: set[str] = set()
    run = _compile(root, names)
    return Expression(text, root, frozenset(names), run, _ZERO[_type_of(root)])


def _type_of(node: Node) -> type:
    """The static return type; an attribute's is unknown, hence Boolean (spec §3.2)."""
    if isinstance(node, Literal):
        return type(node.value)
    if isinstance(node, Unary):
        return bool if node.operator == "NOT" else int
    if isinstance(node, Binary):
        return int if node.operator in _ARITHMETIC else bool
    if isinstance(node, Call):
        function = resolve(node.name, len(node.arguments))
        return bool if function is None else function.returns
    return bool


def _compile(node: Node, names: set[str]) -> _Run:
    if isinstance(node, Literal):
        return _literal(node.value)
    if isinstance(node, Identifier):
        names.add(node.name)
        return _identifier(node)
    if isinstance(node, Exists):
        names.add(node.name)
        return _exists(node.name)
    if isinstance(node, Unary):
        operand = _compile(node.operand, names)
        return _not(node, operand) if node.operator == "NOT" else _negate(node, operand)
    if isinstance(node, Binary):
        return _binary(node, _compile(node.left, names), _compile(node.right, names))
    if isinstance(node, Like):
        return _like(node, _compile(node.subject, names))
    if isinstance(node, In):
        members = tuple(_compile(m, names) for m in node.members)
        return _in(node, _compile(node.subject, names), members)
    return _call(node, tuple(_compile(a, names) for a in node.arguments))


def _literal(value: Value) -> _Run:
    return lambda attributes: value


def _identifier(node: Identifier) -> _Run:
    name = node.name

    def run(attributes: Attributes) -> Value:
        value = attributes.get(name)
        if value is None:
            raise MissingAttributeError(f"the event has no attribute {name!r}", False, node)
        return value

    return run


def _exists(name: str) -> _Run:
    return lambda attributes: name in attributes


def _not(node: Unary, operand: _Run) -> _Run:
    def run(attributes: Attributes) -> Value:
        flag, problem = to_boolean(operand(attributes))
        if problem is not None:
            raise CastError(problem, not flag, node)
        return not flag

    return run


def _negate(node: Unary, operand: _Run) -> _Run:
    def run(attributes: Attributes) -> Value:
        number, problem = to_integer(operand(attributes))
        if problem is not None:
            raise CastError(problem, wrap(-number), node)
        return wrap(-number)

    return run


def _divide(x: int, y: int) -> int:
    # Rounded towards 0 (spec §3.4.2), unlike Python's floor division.
    quotient = abs(x) // abs(y)
    return quotient if (x < 0) == (y < 0) else -quotient


def _modulo(x: int, y: int) -> int:
    # The remainder has the sign of x (spec §3.4.2).
    remainder = abs(x) % abs(y)
    return remainder if x >= 0 else -remainder


_ARITHMETIC: Final[Mapping[str, Callable[[int, int], int]]] = {
    "+": lambda x, y: x + y,
    "-": lambda x, y: x - y,
    "*": lambda x, y: x * y,
    "/": _divide,
    "%": _modulo,
}
_ORDER: Final[Mapping[str, Callable[[int, int], bool]]] = {
    "<": lambda x, y: x < y,
    "<=": lambda x, y: x <= y,
    ">": lambda x, y: x > y,
    ">=": lambda x, y: x >= y,
}


def _binary(node: Binary, left: _Run, right: _Run) -> _Run:
    operator = node.operator
    if operator in ("AND", "OR"):
        return _short_circuit(node, left, right, stop=operator == "OR")
    if operator == "XOR":
        return _xor(node, left, right)
    if operator in ("=", "!=", "<>"):
        return _equality(node, left, right, equal=operator == "=")
    if operator in _ORDER:
        return _integers(node, left, right, _ORDER[operator])
    return _arithmetic(node, left, right, _ARITHMETIC[operator])


def _short_circuit(node: Binary, left: _Run, right: _Run, stop: bool) -> _Run:
    """AND (``stop`` False) and OR (``stop`` True): the right side only if needed."""

    def run(attributes: Attributes) -> Value:
        first, problem = to_boolean(left(attributes))
        if first is stop:
            result = stop
        else:
            result, second_problem = to_boolean(right(attributes))
            problem = problem or second_problem
        if problem is not None:
            raise CastError(problem, result, node)
        return result

    return run


def _xor(node: Binary, left: _Run, right: _Run) -> _Run:
    def run(attributes: Attributes) -> Value:
        first, problem = to_boolean(left(attributes))
        second, second_problem = to_boolean(right(attributes))
        problem = problem or second_problem
        if problem is not None:
            raise CastError(problem, first != second, node)
        return first != second

    return run


def _equality(node: Binary, left: _Run, right: _Run, equal: bool) -> _Run:
    """``=`` is ambiguous: the left side is cast to the right side's type (spec §3.7)."""

    def run(attributes: Attributes) -> Value:
        first = left(attributes)
        second = right(attributes)
        if type(first) is type(second):
            return (first == second) is equal
        cast, problem = to_type(first, type(second))
        result = (cast == second) is equal
        if problem is not None:
            raise CastError(problem, result, node)
        return result

    return run


def _two_integers(attributes: Attributes, left: _Run, right: _Run) -> tuple[int, int, str | None]:
    x, problem = to_integer(left(attributes))
    y, second_problem = to_integer(right(attributes))
    return x, y, problem or second_problem


def _integers(node: Binary, left: _Run, right: _Run, compare: Callable[[int, int], bool]) -> _Run:
    def run(attributes: Attributes) -> Value:
        x, y, problem = _two_integers(attributes, left, right)
        if problem is not None:
            raise CastError(problem, compare(x, y), node)
        return compare(x, y)

    return run


def _arithmetic(node: Binary, left: _Run, right: _Run, apply: Callable[[int, int], int]) -> _Run:
    divides = node.operator in ("/", "%")

    def run(attributes: Attributes) -> Value:
        x, y, problem = _two_integers(attributes, left, right)
        if divides and y == 0:
            if problem is not None:
                raise CastError(problem, 0, node)
            raise MathError(f"{node.operator} by zero", 0, node)
        result = wrap(apply(x, y))
        if problem is not None:
            raise CastError(problem, result, node)
        return result

    return run


def _like_pattern(pattern: str) -> re.Pattern[str]:
    """Translate a LIKE pattern: ``%`` any run, ``_`` one character, ``\\%``/``\\_`` literal."""
    parts: list[str] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and pattern[index + 1 : index + 2] in ("%", "_"):
            parts.append(re.escape(pattern[index + 1]))
            index += 2
            continue
        parts.append(".*" if char == "%" else "." if char == "_" else re.escape(char))
        index += 1
    return re.compile("".join(parts), re.DOTALL)


def _like_matcher(pattern: str) -> Callable[[str], bool]:
    """A matcher for a LIKE pattern; the usual prefix and suffix forms skip the regex."""
    body = pattern.strip("%")
    if not any(char in body for char in "%_\\"):
        if pattern == body:
            return body.__eq__
        if pattern == body + "%":
            return lambda text: text.startswith(body)
        if pattern == "%" + body:
            return lambda text: text.endswith(body)
    regex = _like_pattern(pattern)
    return lambda text: regex.fullmatch(text) is not None


def _like(node: Like, subject: _Run) -> _Run:
    matches = _like_matcher(node.pattern)
    negated = node.negated

    def run(attributes: Attributes) -> Value:
        return matches(to_string(subject(attributes))) is not negated

    return run


def _in(node: In, subject: _Run, members: tuple[_Run, ...]) -> _Run:
    """Members are cast to the subject's type (spec §3.7, the rule for IN)."""
    negated = node.negated

    def run(attributes: Attributes) -> Value:
        value = subject(attributes)
        target = type(value)
        problem: str | None = None
        found = False
        for member in members:
            candidate = member(attributes)
            if type(candidate) is not target:
                candidate, member_problem = to_type(candidate, target)
                problem = problem or member_problem
            if candidate == value:
                found = True
                break
        if problem is not None:
            raise CastError(problem, found is not negated, node)
        return found is not negated

    return run


def _call(node: Call, arguments: tuple[_Run, ...]) -> _Run:
    function = resolve(node.name, len(arguments))
    if function is None:
        message = f"no function {node.name} takes {len(arguments)} argument(s)"

        def missing(attributes: Attributes) -> Value:
            raise MissingFunctionError(message, False, node)

        return missing
    return _invoke(node, function, arguments)


def _invoke(node: Call, function: Function, arguments: tuple[_Run, ...]) -> _Run:
    count = len(arguments)
    types = function.parameters + (function.variadic,) * (count - len(function.parameters))

    def run(attributes: Attributes) -> Value:
        values: list[Value] = []
        problem: str | None = None
        for argument, target in zip(arguments, types, strict=True):
            value = argument(attributes)
            if target is not None and type(value) is not target:
                value, cast_problem = to_type(value, target)
                problem = problem or cast_problem
            values.append(value)
        result = function.body(values)
        if isinstance(result, Failure):
            if problem is None:
                raise result.error(f"{node.name}: {result.message}", result.value, node)
            result = result.value
        if problem is not None:
            raise CastError(f"{node.name}: {problem}", result, node)
        return result

    return run

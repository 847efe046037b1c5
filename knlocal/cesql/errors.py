"""CESQL errors, rooted in one class (spec §3.3: the error types every engine supports)."""

from __future__ import annotations

from typing import ClassVar

#: A CESQL value: the language has exactly three primitive types (spec §3.1).
Value = bool | int | str


class CesqlError(Exception):
    """Root of every error this package raises."""

    #: The TCK's name for the error type (``tck/README.md``).
    kind: ClassVar[str] = "generic"


class ParseError(CesqlError):
    """The expression does not follow the grammar; raised when it is compiled."""

    kind = "parse"

    def __init__(self, expression: str, position: int, expected: str, found: str) -> None:
        super().__init__(
            f"invalid CESQL expression {expression!r} at position {position + 1}: "
            f"expected {expected}, found {found}"
        )
        #: 0-based offset of the offending character in the expression.
        self.position = position


class EvaluationError(CesqlError):
    """An error met while evaluating; it carries the value the expression still returns.

    Every operator and function is total (spec §3.3): with an error comes a value, the
    operator's own result when the error is its own (``NOT 10`` is ``true``), else the zero
    value of the expression's return type.
    """

    def __init__(self, message: str, value: Value, origin: object) -> None:
        super().__init__(message)
        #: The value the failing operator or function returns along with the error.
        self.value = value
        #: The syntax node whose own evaluation failed.
        self.origin = origin


class MathError(EvaluationError):
    """Division or modulo by zero, or ``ABS`` of the smallest integer."""

    kind = "math"


class CastError(EvaluationError):
    """An implicit or explicit cast that is not defined for the value."""

    kind = "cast"


class MissingAttributeError(EvaluationError):
    """The expression reads an attribute the event does not have."""

    kind = "missingAttribute"


class MissingFunctionError(EvaluationError):
    """No function of that name takes that many arguments."""

    kind = "missingFunction"


class FunctionEvaluationError(EvaluationError):
    """A built-in function got an argument outside its domain."""

    kind = "functionEvaluation"

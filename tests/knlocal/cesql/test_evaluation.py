"""What the TCK leaves open, decided as sdk-go's parser (from the official grammar) decides it."""

from __future__ import annotations

import pytest

from knlocal.cesql import (
    CastError,
    MissingAttributeError,
    ParseError,
    Value,
    compile_expression,
)
from knlocal.cesql.syntax import Binary, Unary, parse


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        # CESQLParser.g4: AND, OR and XOR share one level and associate to the right.
        ("TRUE OR FALSE AND FALSE", True),
        ("FALSE AND FALSE OR TRUE", False),
        ("10 - 2 - 3", 5),
        ("1 + 2 * 3", 7),
        ("-7 / 2", -3),
        ("-7 % 2", -1),
        ("7 % -2", 1),
        # Integers are 32-bit and wrap as sdk-go's int32 arithmetic does.
        ("2147483647 + 1", -2147483648),
        ("-2147483648", -2147483648),
        # Only the escaped delimiter is unescaped (sdk-go expression_visitor.go).
        ("'it''s'", "it''s"),
        ("'a' LIKE 'A'", False),
        ("'a%' LIKE 'a\\%'", True),
        ("'ab' LIKE 'a\\b'", False),
        ("'a\\b' LIKE 'a\\b'", True),
        # NOT binds to TRUE alone; NOT LIKE then applies to its result.
        ("NOT TRUE NOT LIKE 'f%'", False),
        ("-1 IN (1, -1)", True),
        ("3 IN (1, 2)", False),
        ("3 NOT IN (1, 2)", True),
        ("CONCAT_WS('-', 1, TRUE)", "1-true"),
        ("SUBSTRING('abc', -1, 5)", "c"),
        ("RIGHT('abc', 0)", ""),
    ],
)
def test_values(expression: str, expected: Value) -> None:
    result = compile_expression(expression).evaluate({})
    assert result.error is None
    assert (type(result.value), result.value) == (type(expected), expected)


def test_prefix_operators_bind_tighter_than_comparisons() -> None:
    """``NOT a = b`` is ``(NOT a) = b``; ``-a LIKE 'x'`` is ``(-a) LIKE 'x'``."""
    root = parse("NOT a = b")
    assert isinstance(root, Binary) and isinstance(root.left, Unary)


@pytest.mark.parametrize(
    ("expression", "position"),
    [
        ("type = ", 8),
        ("4-1", 2),
        ("a NOT b", 3),
        ("EXISTS 'a'", 8),
        ("a LIKE b", 8),
        ("f(1,)", 5),
        ("1 2", 3),
        ("'open", 1),
        ("2147483648", 1),
    ],
)
def test_parse_errors_name_the_position(expression: str, position: int) -> None:
    with pytest.raises(ParseError, match=f"at position {position}:") as raised:
        compile_expression(expression)
    assert raised.value.position == position - 1


def test_error_of_an_operand_returns_the_zero_value_of_the_root() -> None:
    result = compile_expression("CONCAT('a', missing)").evaluate({})
    assert (result.value, type(result.error)) == ("", MissingAttributeError)


def test_own_cast_error_keeps_the_computed_value() -> None:
    result = compile_expression("'abc' != 1").evaluate({})
    assert (result.value, type(result.error)) == (True, CastError)

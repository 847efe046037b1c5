"""CESQL v1 lexer and parser: text to a tree of frozen nodes.

The lexer follows the official ANTLR lexer (``CESQLLexer.g4``): keywords are
case-insensitive, the longest token wins and, at equal length, the first rule wins. So a
sign glued to digits is part of an integer literal, as there: ``4 - 1`` is a subtraction
but ``4-1`` is two integers in a row, a parse error (as in Knative, whose parser is
generated from that grammar). The parser is precedence climbing over the levels of
``CESQLParser.g4``, highest first: function call, ``NOT``, unary ``-``, ``LIKE``,
``EXISTS``, ``IN``, ``* / %``, ``+ -``, comparisons, then ``AND OR XOR`` (one level,
right-associative).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from knlocal.cesql.errors import ParseError, Value

__all__ = [
    "Binary",
    "Call",
    "Exists",
    "Identifier",
    "In",
    "Like",
    "Literal",
    "Node",
    "Unary",
    "parse",
]

_INT32_MIN: Final = -(2**31)
_INT32_MAX: Final = 2**31 - 1


# --- Syntax tree ----------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Literal:
    value: Value


@dataclass(frozen=True, eq=False)
class Identifier:
    """An attribute of the event, by its lower-case name."""

    name: str


@dataclass(frozen=True, eq=False)
class Exists:
    name: str


@dataclass(frozen=True, eq=False)
class Unary:
    """``NOT x`` or ``-x``."""

    operator: str
    operand: Node


@dataclass(frozen=True, eq=False)
class Binary:
    """An arithmetic, comparison or logic operator; ``operator`` is upper-case."""

    operator: str
    left: Node
    right: Node


@dataclass(frozen=True, eq=False)
class Like:
    subject: Node
    pattern: str
    negated: bool


@dataclass(frozen=True, eq=False)
class In:
    subject: Node
    members: tuple[Node, ...]
    negated: bool


@dataclass(frozen=True, eq=False)
class Call:
    """A function invocation; ``name`` is upper-case."""

    name: str
    arguments: tuple[Node, ...]


Node = Literal | Identifier | Exists | Unary | Binary | Like | In | Call


# --- Lexer ----------------------------------------------------------------------------------

_KEYWORDS: Final = frozenset({"AND", "OR", "XOR", "NOT", "LIKE", "EXISTS", "IN", "TRUE", "FALSE"})
_SPACE: Final = re.compile(r"[ \t\r\n]+")
_STRING: Final = re.compile(r"""'(?:\\.|''|[^'\\])*'|"(?:\\.|""|[^"\\])*\"""", re.DOTALL)
_INTEGER: Final = re.compile(r"[+-]?[0-9]+")
# IDENTIFIER_WITH_NUMBER and FUNCTION_IDENTIFIER_WITH_UNDERSCORE (IDENTIFIER is in both).
_ALNUM: Final = re.compile(r"[a-zA-Z0-9]+")
_FUNCTION_NAME: Final = re.compile(r"[a-zA-Z][a-zA-Z_]*")
_OPERATORS: Final = ("!=", "<>", ">=", "<=", "(", ")", ",", "*", "/", "%", "+", "-", "=", "<", ">")

# Token kinds besides the keywords and operators (which are their own kind).
_INT: Final = "integer"
_STR: Final = "string"
_NAME: Final = "name"  # letters only: an attribute or a function
_ATTRIBUTE: Final = "attribute name"  # letters and digits
_FUNCTION: Final = "function name"  # letters and underscores
_END: Final = "end of expression"


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    position: int


def _word_kind(text: str) -> str:
    if text.isdigit():
        return _INT
    if text.upper() in _KEYWORDS:
        return text.upper()
    if text.isalpha():
        return _NAME
    return _FUNCTION if "_" in text else _ATTRIBUTE


def _tokens(expression: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(expression):
        space = _SPACE.match(expression, position)
        if space:
            position = space.end()
            continue
        text, kind = _longest(expression, position)
        tokens.append(_Token(kind, text, position))
        position += len(text)
    tokens.append(_Token(_END, "", len(expression)))
    return tokens


def _longest(expression: str, position: int) -> tuple[str, str]:
    """The longest token at ``position``, and its kind (ANTLR's rule)."""
    string = _STRING.match(expression, position)
    if string:
        return string.group(), _STR
    words = [
        m.group()
        for m in (
            _INTEGER.match(expression, position),
            _ALNUM.match(expression, position),
            _FUNCTION_NAME.match(expression, position),
        )
        if m
    ]
    if words:
        # max() keeps the first of equal length: integer before the identifier rules.
        word = max(words, key=len)
        return word, _INT if word[0] in "+-" else _word_kind(word)
    for operator in _OPERATORS:
        if expression.startswith(operator, position):
            return operator, operator
    found = expression[position]
    raise ParseError(expression, position, "a token", repr(found))


# --- Parser ---------------------------------------------------------------------------------

# Precedence of each infix or postfix operator (ANTLR numbers alternatives the same way).
_LIKE_LEVEL: Final = 9
_IN_LEVEL: Final = 7
_BINARY_LEVELS: Final = {
    "*": 6,
    "/": 6,
    "%": 6,
    "+": 5,
    "-": 5,
    "=": 4,
    "!=": 4,
    "<>": 4,
    ">=": 4,
    "<=": 4,
    "<": 4,
    ">": 4,
    "AND": 3,
    "OR": 3,
    "XOR": 3,
}
_RIGHT_ASSOCIATIVE: Final = frozenset({"AND", "OR", "XOR"})
_NOT_LEVEL: Final = 11
_MINUS_LEVEL: Final = 10


class _Parser:
    def __init__(self, expression: str) -> None:
        self.expression = expression
        self.tokens = _tokens(expression)
        self.index = 0

    def peek(self, ahead: int = 0) -> _Token:
        return self.tokens[min(self.index + ahead, len(self.tokens) - 1)]

    def take(self, *kinds: str) -> _Token:
        token = self.peek()
        if token.kind not in kinds:
            raise self.error(" or ".join(kinds))
        self.index += 1
        return token

    def error(self, expected: str) -> ParseError:
        token = self.peek()
        found = token.kind if token.kind == _END else repr(token.text)
        return ParseError(self.expression, token.position, expected, found)

    def expression_at(self, level: int) -> Node:
        left = self.primary()
        while True:
            token = self.peek()
            negated = token.kind == "NOT"
            operator = self.peek(1).kind if negated else token.kind
            if operator in ("LIKE", "IN"):
                if level > (_LIKE_LEVEL if operator == "LIKE" else _IN_LEVEL):
                    return left
                self.index += 2 if negated else 1
                if operator == "LIKE":
                    left = Like(left, _unquote(self.take(_STR).text), negated)
                else:
                    left = In(left, self.members(), negated)
            elif negated:
                raise self.error("LIKE or IN after NOT")
            elif operator in _BINARY_LEVELS and level <= _BINARY_LEVELS[operator]:
                self.index += 1
                own = _BINARY_LEVELS[operator]
                right = self.expression_at(own if operator in _RIGHT_ASSOCIATIVE else own + 1)
                left = Binary(operator, left, right)
            else:
                return left

    def members(self) -> tuple[Node, ...]:
        self.take("(")
        members = [self.expression_at(0)]
        while self.peek().kind == ",":
            self.index += 1
            members.append(self.expression_at(0))
        self.take(")")
        return tuple(members)

    def primary(self) -> Node:
        token = self.peek()
        self.index += 1
        kind = token.kind
        if kind == "NOT":
            return Unary("NOT", self.expression_at(_NOT_LEVEL))
        if kind == "-":
            return Unary("-", self.expression_at(_MINUS_LEVEL))
        if kind == "EXISTS":
            return Exists(self.take(_NAME, _ATTRIBUTE).text.lower())
        if kind == "(":
            inner = self.expression_at(0)
            self.take(")")
            return inner
        if kind in (_NAME, _FUNCTION) and self.peek().kind == "(":
            return self.call(token.text.upper())
        if kind in (_NAME, _ATTRIBUTE):
            return Identifier(token.text.lower())
        if kind in ("TRUE", "FALSE"):
            return Literal(kind == "TRUE")
        if kind == _STR:
            return Literal(_unquote(token.text))
        if kind == _INT:
            return self.integer(token)
        self.index -= 1
        raise self.error("a value, an attribute, a function call, NOT, - or (")

    def call(self, name: str) -> Call:
        self.take("(")
        arguments: list[Node] = []
        if self.peek().kind != ")":
            arguments.append(self.expression_at(0))
            while self.peek().kind == ",":
                self.index += 1
                arguments.append(self.expression_at(0))
        self.take(")")
        return Call(name, tuple(arguments))

    def integer(self, token: _Token) -> Literal:
        value = int(token.text)
        # Spec §2.2: integer literals MUST be valid 32-bit signed integers.
        if not _INT32_MIN <= value <= _INT32_MAX:
            raise ParseError(self.expression, token.position, "a 32-bit signed integer", token.text)
        return Literal(value)


def _unquote(text: str) -> str:
    """A string literal's value: only the escaped delimiter is unescaped.

    As in sdk-go's parser (``expression_visitor.go``): ``\\'`` in ``'…'`` and ``\\"`` in
    ``"…"``; any other backslash stays, so LIKE can still see ``\\%`` and ``\\_``.
    """
    quote = text[0]
    return text[1:-1].replace("\\" + quote, quote)


def parse(expression: str) -> Node:
    """Parse a CESQL v1 expression.

    :param expression: the expression's text.
    :return: the root of its syntax tree.
    :raises ParseError: the text does not follow the grammar; the error names the position.
    """
    parser = _Parser(expression)
    root = parser.expression_at(0)
    if parser.peek().kind != _END:
        raise parser.error("an operator or the end of the expression")
    return root

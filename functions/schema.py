"""JSON Schema validation of events and request bodies: a compiled check first, jsonschema's
errors when it fails.

jsonschema walks a schema keyword by keyword for every instance (≈ 55 µs for a `user.created`
event here, four times that in a busy instance); fastjsonschema compiles the schema to Python
code once (≈ 10 µs). jsonschema stays the judge and the voice: an instance the compiled check
refuses is validated again by jsonschema, whose errors are the ones reported (and which accepts
it if the check was stricter, e.g. about a format jsonschema leaves unchecked). So the check must
never accept what jsonschema refuses. fastjsonschema implements drafts 4 to 7, not 2020-12; a
schema gets a compiled check only when every keyword in it means the same in draft 7 and in
2020-12 (`SAME_IN_DRAFT7`, and `$ref` without siblings, which draft 7 would ignore); formats are
checked by jsonschema's own format checker, when the schema's validator uses one; a `$ref` must
name one of the schema's `definitions`. Any other schema is validated by jsonschema alone.
"""

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import fastjsonschema
from jsonschema import Draft202012Validator, FormatChecker, ValidationError

#: Keywords whose meaning draft 7 and 2020-12 share (annotations included).
SAME_IN_DRAFT7 = frozenset(
    {
        "type",
        "enum",
        "const",
        "properties",
        "required",
        "additionalProperties",
        "minLength",
        "maxLength",
        "pattern",
        "format",
        "minimum",
        "maximum",
        "minProperties",
        "maxProperties",
        "definitions",
        "$ref",
        "title",
        "description",
        "examples",
    }
)
#: Keywords whose values are schemas by name (`properties`) or a schema (`additionalProperties`).
_SCHEMA_MAPS = frozenset({"properties", "definitions"})


class Schema:
    """One JSON Schema (2020-12), validated fast when it can be (see the module).

    :param schema: the schema, `definitions` included.
    :param check_formats: check `format` values, as jsonschema's `FormatChecker` does; without
        it, formats are annotations only (jsonschema's default).
    """

    def __init__(self, schema: dict[str, Any], *, check_formats: bool) -> None:
        Draft202012Validator.check_schema(schema)
        checker = FormatChecker() if check_formats else None
        self.validator = Draft202012Validator(schema, format_checker=checker)
        self._check: Callable[[Any], Any] | None = None
        if all(_same_in_draft7(part) for part in _subschemas(schema)):
            formats = {name: _format(checker, name) for name in _formats(schema)}
            # e.g. a $ref to a definition that is missing: jsonschema alone, which says so.
            with contextlib.suppress(fastjsonschema.JsonSchemaDefinitionException):
                self._check = fastjsonschema.compile(schema, formats=formats, use_default=False)

    @property
    def compiled(self) -> bool:
        """Whether valid instances are told by the compiled check."""
        return self._check is not None

    def errors(self, instance: Any) -> list[ValidationError]:
        """Every way `instance` breaks the schema, as jsonschema says them; none when valid."""
        if self._check is not None:
            try:
                self._check(instance)
                return []
            except fastjsonschema.JsonSchemaValueException:
                pass
        return list(self.validator.iter_errors(instance))


def _subschemas(schema: Any) -> Iterator[dict[str, Any]]:
    """`schema` and every schema within it."""
    if not isinstance(schema, dict):
        return
    yield schema
    for keyword, value in schema.items():
        if keyword in _SCHEMA_MAPS and isinstance(value, dict):
            for part in value.values():
                yield from _subschemas(part)
        elif keyword == "additionalProperties":
            yield from _subschemas(value)


def _same_in_draft7(schema: dict[str, Any]) -> bool:
    if "$ref" in schema:
        if set(schema) - {"$ref", "definitions"}:
            return False  # draft 7 ignores a $ref's siblings; 2020-12 applies them
        if not str(schema["$ref"]).startswith("#/definitions/"):
            return False  # out of the schema: fastjsonschema would fetch it when compiling
    compared = list(schema.get("enum", []))
    if "const" in schema:
        compared.append(schema["const"])
    if not all(isinstance(value, str) for value in compared):
        return False  # the compiled check compares with ==, for which True == 1; JSON does not
    return set(schema) <= SAME_IN_DRAFT7


def _formats(schema: dict[str, Any]) -> set[str]:
    return {part["format"] for part in _subschemas(schema) if "format" in part}


def _format(checker: FormatChecker | None, name: str) -> Callable[[Any], bool]:
    """The check of format `name`: jsonschema's, or none when formats are annotations."""
    if checker is None:
        return lambda _value: True
    return lambda value: checker.conforms(value, name)

"""JSON Schema validation: the compiled check accepts exactly what jsonschema accepts."""

import copy
import itertools
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from functions.catalog import load_catalog
from functions.operation_create import create_user_schema
from functions.schema import Schema
from tests.functions.test_catalog import EXAMPLES

#: Values put in every place of a valid instance: each JSON type, edges of our schemas' rules.
VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    1,
    1.0,
    1.5,
    "",
    " ",
    "\u3000",
    "x",
    "x" * 200,
    "x" * 201,
    "é" * 200,
    "not-a-uuid",
    str(uuid.uuid4()),
    str(uuid.uuid4()).upper(),
    "{" + str(uuid.uuid4()) + "}",
    str(uuid.uuid4()).replace("-", ""),
    "approved",
    "approval_pending",
    [],
    {},
    {"name": "x"},
]


def _variants(instance: Any) -> Iterator[Any]:
    """`instance`, and each one-place change of it: a value replaced, a key dropped or added."""
    yield instance
    if not isinstance(instance, dict):
        return
    for key in instance:
        dropped = {k: v for k, v in instance.items() if k != key}
        yield dropped
        for value in VALUES:
            yield {**instance, key: value}
        for inner in itertools.islice(_variants(instance[key]), 1, None):
            yield {**instance, key: inner}
    yield {**instance, "unknown": 1}


def _schemas() -> dict[str, tuple[Schema, list[Any]]]:
    """Each schema of ours and the instances it is tried with."""
    catalog = load_catalog()
    found = {
        name: (catalog.types[name].schema, [good, bad]) for name, (good, bad, _) in EXAMPLES.items()
    }
    found["CreateUserRequest"] = (create_user_schema(), [{"name": "Ada"}, {"name": "  "}])
    return found


@pytest.mark.parametrize("name", list(_schemas()))
def test_each_schema_of_ours_has_a_compiled_check(name: str) -> None:
    schema, _ = _schemas()[name]
    assert schema.compiled


@pytest.mark.parametrize("name", list(_schemas()))
def test_the_compiled_check_accepts_exactly_what_jsonschema_accepts(name: str) -> None:
    schema, examples = _schemas()[name]
    assert schema._check is not None
    tried = 0
    for instance in itertools.chain.from_iterable(_variants(e) for e in [*examples, *VALUES]):
        judged = copy.deepcopy(instance)
        expected = schema.validator.is_valid(instance)
        try:
            schema._check(judged)
            compiled = True
        except Exception:
            compiled = False
        assert compiled == expected, (
            f"{name}: compiled {compiled}, jsonschema {expected}: {instance!r}"
        )
        assert judged == instance  # nothing filled in (defaults) or changed
        assert (schema.errors(instance) == []) == expected
        tried += 1
    assert tried > 100


def test_errors_are_jsonschemas() -> None:
    schema = create_user_schema()
    errors = schema.errors({"name": "   "})
    assert [error.validator for error in errors] == ["pattern"]
    assert schema.errors({"name": "Ada"}) == []


@pytest.mark.parametrize(
    "raw, refused",
    [
        # 2020-12 applies a $ref's siblings; draft 7 would ignore `required`.
        (
            {
                "$ref": "#/definitions/A",
                "required": ["b"],
                "definitions": {"A": {"type": "object"}},
            },
            {"a": 1},
        ),
        # A keyword draft 7 does not know.
        ({"type": "array", "prefixItems": [{"type": "string"}]}, [1]),
        ({"type": "object", "dependentRequired": {"a": ["b"]}}, {"a": 1}),
        # enum compares JSON values: true is not 1 (Python's == says it is).
        ({"enum": [1, 2]}, True),
        ({"const": 1}, True),
    ],
)
def test_a_schema_not_meaning_the_same_in_draft7_is_judged_by_jsonschema_alone(
    raw: dict[str, Any], refused: Any
) -> None:
    schema = Schema(raw, check_formats=True)
    assert not schema.compiled
    assert schema.errors(refused)


@pytest.mark.parametrize(
    "raw",
    [
        {"$ref": "http://127.0.0.1:9/user.json"},  # fastjsonschema would fetch it to compile
        {"type": "object", "properties": {"a": {"$ref": "#/definitions/B"}}},  # to nothing
    ],
)
def test_a_ref_to_no_definition_of_the_schema_gets_no_compiled_check(raw: dict[str, Any]) -> None:
    assert not Schema(raw, check_formats=False).compiled


def test_formats_are_checked_only_when_asked_as_jsonschema_does() -> None:
    raw = {"type": "string", "format": "uuid"}
    checked, annotated = Schema(raw, check_formats=True), Schema(raw, check_formats=False)
    assert checked.compiled and annotated.compiled
    assert checked.errors("not-a-uuid") and not annotated.errors("not-a-uuid")
    assert not checked.errors(str(uuid.uuid4()))

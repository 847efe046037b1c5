"""The whole CloudEvents SQL TCK (``shared/data/cesql/tck``), one test per case.

Stricter than sdk-go's runner (``sql/v2/test/tck_test.go``), which checks neither the
error's type nor the value returned with an error: both are checked here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from knlocal.cesql import ParseError, Value, compile_expression

_REPO = Path(__file__).resolve().parents[3]
_IN_SHARED = Path("shared", "data", "cesql", "tck")
# shared/ is beside the repo (<repo>/../shared, as CI lays it out), or beside a directory
# that holds the repo (a git worktree's).
TCK = next(
    (d / _IN_SHARED for d in _REPO.parents if (d / _IN_SHARED).is_dir()),
    _REPO.parent / _IN_SHARED,
)

#: Cases in the TCK as copied into shared/ (SOURCE.md's commit); a silently empty load fails.
TCK_CASES = 275


class _Loader(yaml.SafeLoader):
    """YAML without timestamps: ``time`` stays the text an event carries."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}

# The TCK's "any valid event" for cases with only eventOverrides (sdk-go's test.FullEvent
# also sets optional attributes; none of them is read without an override).
_BASE_EVENT: dict[str, Value] = {
    "specversion": "1.0",
    "id": "full-event",
    "source": "http://example.com/source",
    "type": "com.example.FullEvent",
}


def _cases() -> list[Any]:
    if not TCK.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"the CESQL TCK is missing: expected it at {TCK}")
        pytest.skip(f"the CESQL TCK is not beside the repo: {TCK}", allow_module_level=True)
    cases = []
    for path in sorted(TCK.glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        suite = yaml.load(text, Loader=_Loader)
        for case, expression in zip(suite["tests"], _expressions(text), strict=True):
            # The expression as written: YAML would read `TRUE` as a boolean, `-10` as a number.
            case["expression"] = expression
            cases.append(pytest.param(case, id=f"{path.stem}: {case['name']}"))
    return cases


def _expressions(text: str) -> list[str]:
    """The text of each case's ``expression`` scalar, in order."""
    root = yaml.compose(text, Loader=_Loader)
    assert isinstance(root, yaml.MappingNode)
    tests = next(value for key, value in root.value if key.value == "tests")
    return [
        str(value.value)
        for case in tests.value
        for key, value in case.value
        if key.value == "expression"
    ]


CASES = _cases()


def _event(case: dict[str, Any]) -> dict[str, Value]:
    attributes = dict(case["event"]) if "event" in case else dict(_BASE_EVENT)
    attributes.update(case.get("eventOverrides") or {})
    return attributes


def test_every_tck_file_and_case_is_loaded() -> None:
    assert len(list(TCK.glob("*.yaml"))) == 18
    assert len(CASES) == TCK_CASES


@pytest.mark.parametrize("case", CASES)
def test_tck(case: dict[str, Any]) -> None:
    if case.get("error") == "parse":
        with pytest.raises(ParseError):
            compile_expression(case["expression"])
        return
    result = compile_expression(case["expression"]).evaluate(_event(case))
    expected = case["result"]
    # bool is an int in Python: compare the types too (TRUE is not 1).
    assert (type(result.value), result.value) == (type(expected), expected)
    if "error" in case:
        assert result.error is not None, f"expected a {case['error']} error"
        assert result.error.kind == case["error"]
    else:
        assert result.error is None

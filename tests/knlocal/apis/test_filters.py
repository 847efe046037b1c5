"""knlocal.apis.filters: a Trigger's filters decoded and validated as Knative's API server and
webhook do (knative-semantics.md §2.3, EVENTING `trigger_validation.go`)."""

from pathlib import Path
from typing import Any

import pytest

from knlocal.apis.filters import FilterElement, TriggerFilters, decode_filters, parse_filters
from knlocal.apis.loader import build
from knlocal.errors import ManifestError


def legacy(attributes: dict[str, str]) -> dict[str, Any]:
    """A Trigger spec with a legacy ``filter.attributes``."""
    return {"broker": "default", "filter": {"attributes": attributes}}


def dialects(*elements: dict[str, Any]) -> dict[str, Any]:
    """A Trigger spec with a ``filters`` list."""
    return {"broker": "default", "filters": list(elements)}


def test_the_tree_keeps_an_empty_dialect_apart_from_an_absent_one() -> None:
    """The Kafka broker builds a filter from `exact: {}` but not from no `exact` (§2.3)."""
    decoded = decode_filters(dialects({"exact": {}}, {"not": {}}, {"cesql": ""}))
    assert decoded == TriggerFilters(
        {}, (FilterElement(exact={}), FilterElement(negated=FilterElement()), FilterElement())
    )


def test_cesql_is_compiled_when_read() -> None:
    """A `cesql` expression is compiled once, at load (its syntax errors stop the load)."""
    [element] = decode_filters(dialects({"cesql": "type = 'x'"})).filters
    assert element.cesql is not None
    assert element.cesql.text == "type = 'x'"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"filters": {"exact": {"type": "t"}}}, r"spec\.filters: expected a list, found dict"),
        ({"filters": ["type=t"]}, r"spec\.filters\[0\]: expected a mapping, found str"),
        ({"filter": {"attributes": {"count": 3}}}, r"spec\.filter\.attributes: expected string"),
        (dialects({"exact": {"flag": True}}), r"spec\.filters\[0\]\.exact: expected string"),
        (dialects({"all": {"exact": {"type": "t"}}}), r"spec\.filters\[0\]\.all: expected a list"),
    ],
    ids=["filters-map", "element-not-mapping", "legacy-int-value", "exact-bool-value",
         "all-not-list"],
)  # fmt: skip
def test_s2_3_decode_rejects_wrong_shapes(spec: dict[str, Any], message: str) -> None:
    """Decoding a malformed spec raises a ManifestError naming the field."""
    with pytest.raises(ManifestError, match=message):
        decode_filters(spec)


# --- §2.3 webhook validation --------------------------------------------------------------------

VALID_SPECS: list[tuple[str, dict[str, Any]]] = [
    ("no-filter", {"broker": "default"}),
    ("legacy", legacy({"type": "t", "myext1": ""})),
    ("each-dialect", dialects({"exact": {"type": "t"}}, {"prefix": {"source": "/"}},
                              {"suffix": {"type": ".x"}})),
    ("nested", dialects(
        {"all": [{"any": [{"exact": {"type": "t"}}, {"not": {"exact": {"a": "b"}}}]}]}
    )),
    # The webhook accepts empty values (they are skipped at run time) and empty elements.
    ("empty-value", dialects({"exact": {"myext": ""}})),
    ("empty-not", dialects({"not": {}})),
    ("empty-any", dialects({"any": []})),
    # An empty dialect next to a set one does not count as a second dialect.
    ("empty-second-dialect", dialects({"exact": {"type": "t"}, "suffix": {}})),
    # knative/eventing#6477 (trigger_validation_test.go "valid exact/suffix filter containing
    # more than one attribute"): several attributes in one exact/prefix/suffix.
    ("exact-two-keys", dialects({"exact": {"type": "t", "source": "s"}})),
    ("prefix-two-keys", dialects({"prefix": {"type": "t", "source": "s"}})),
    ("suffix-two-keys", dialects({"suffix": {"type": "t", "source": "s"}})),
]  # fmt: skip


@pytest.mark.parametrize("spec", [row[1] for row in VALID_SPECS], ids=[r[0] for r in VALID_SPECS])
def test_s2_3_validation_accepts_valid_filters(spec: dict[str, Any]) -> None:
    """Manifests the Knative webhook accepts pass validation."""
    parse_filters(spec)


INVALID_SPECS: list[tuple[str, dict[str, Any], str]] = [
    ("legacy-uppercase-name", legacy({"Type": "t"}),
     r"spec\.filter\.attributes: invalid attribute name\(s\) \['Type'\]"),
    ("legacy-dash-name", legacy({"my-ext": "x"}), r"invalid attribute name\(s\) \['my-ext'\]"),
    ("legacy-leading-digit", legacy({"1ext": "x"}), r"invalid attribute name\(s\) \['1ext'\]"),
    ("legacy-empty-name", legacy({"": "x"}), r"invalid attribute name\(s\) \[''\]"),
    ("legacy-unknown-field", {"filter": {"attributes": {}, "exact": {}}},
     r"spec\.filter: unknown field\(s\) \['exact'\]"),
    ("legacy-not-mapping", {"filter": "type=t"}, r"spec\.filter: expected a mapping"),
    # The DOCS example combining exact and suffix in one element is invalid.
    ("two-dialects", dialects({"exact": {"type": "t"}, "suffix": {"source": "s"}}),
     r"spec\.filters\[0\]: multiple dialects found, filters can have only one dialect set "
     r"\(found exact, suffix\)"),
    ("not-and-any", dialects({"not": {}, "any": [{"exact": {"type": "t"}}]}),
     r"multiple dialects found, filters can have only one dialect set \(found any, not\)"),
    ("prefix-bad-name", dialects({"prefix": {"Type": "t"}}),
     r"spec\.filters\[0\]\.prefix: invalid attribute name"),
    ("suffix-empty-name", dialects({"suffix": {"": "t"}}),
     r"spec\.filters\[0\]\.suffix: invalid attribute name"),
    ("unknown-dialect", dialects({"exakt": {"type": "t"}}),
     r"unknown filter dialect\(s\) \['exakt'\]"),
    # The DOCS example writing filters as a map is invalid.
    ("filters-as-map", {"filters": {"exact": {"type": "t"}}}, r"spec\.filters: expected a list"),
    ("nested-all-path", dialects({"all": [{"exact": {"type": "t"}}, {"exact": {"Bad": "x"}}]}),
     r"spec\.filters\[0\]\.all\[1\]\.exact: invalid attribute name"),
    ("nested-not-path", dialects({"not": {"exact": {"a": "b"}, "prefix": {"c": "d"}}}),
     r"spec\.filters\[0\]\.not: multiple dialects found"),
    ("not-not-mapping", dialects({"not": ["x"]}), r"spec\.filters\[0\]\.not: expected a mapping"),
    ("non-string-value", dialects({"exact": {"count": 1}}),
     "expected string keys and string values"),
    ("cesql-not-string", dialects({"cesql": 1}), r"spec\.filters\[0\]\.cesql: expected a string"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("spec", "message"), [row[1:] for row in INVALID_SPECS], ids=[r[0] for r in INVALID_SPECS]
)
def test_s2_3_validation_rejects_like_the_webhook(spec: dict[str, Any], message: str) -> None:
    """Each webhook rule rejects with a message naming the field and the problem."""
    with pytest.raises(ManifestError, match=message):
        parse_filters(spec)


def test_s2_3_validation_reports_every_problem() -> None:
    """All problems of a spec are reported in one error, as the webhook aggregates them."""
    spec = {
        "filter": {"attributes": {"Bad": "x"}},
        "filters": [{"exact": {"a": "1", "B": "2"}}, {"exact": {"x": "1"}, "prefix": {"y": "2"}}],
    }
    with pytest.raises(ManifestError) as caught:
        parse_filters(spec)
    message = str(caught.value)
    assert "spec.filter.attributes: invalid attribute name(s) ['Bad']" in message
    assert "spec.filters[0].exact: invalid attribute name(s) ['B']" in message
    assert "spec.filters[1]: multiple dialects found" in message


# --- cesql is compiled when read ----------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (dialects({"cesql": "type = "}), r"spec\.filters\[0\]\.cesql: .* at position 8"),
        (
            dialects({"not": {"cesql": "type LIKE 1"}}),
            r"spec\.filters\[0\]\.not\.cesql: .*position 11",
        ),
        # The official lexer glues a sign to digits: `4-1` is two integers (CESQLLexer.g4).
        (dialects({"all": [{"cesql": "4-1 = 3"}]}), r"spec\.filters\[0\]\.all\[0\]\.cesql"),
        (dialects({"cesql": "2147483648 > 1"}), r"32-bit"),
    ],
    ids=["incomplete", "like-needs-a-string", "glued-sign", "integer-out-of-range"],
)
def test_s2_3_cesql_syntax_error_is_refused(spec: dict[str, Any], message: str) -> None:
    """A `cesql` that does not parse is refused when read, naming the field and position."""
    with pytest.raises(ManifestError, match=message):
        decode_filters(spec)


def test_s2_3_cesql_syntax_error_stops_manifest_load() -> None:
    """At start-up the error names the file, the Trigger and the position."""
    trigger = {
        "apiVersion": "eventing.knative.dev/v1",
        "kind": "Trigger",
        "metadata": {"name": "on-created"},
        "spec": {"broker": "default", "filters": [{"cesql": "type = 'a' AND"}]},
    }
    message = (
        r"triggers\.yaml: Trigger default/on-created: spec\.filters\[0\]\.cesql: .*position 15"
    )
    with pytest.raises(ManifestError, match=message):
        build([(Path("triggers.yaml"), trigger)])

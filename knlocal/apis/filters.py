"""A Trigger's filters: the legacy `spec.filter.attributes` and the `spec.filters` dialect tree.

Knative: `pkg/apis/eventing/v1/trigger_types.go` (`TriggerFilter`, `SubscriptionsAPIFilter`)
and `trigger_validation.go`. Reading has two steps, as in Knative: :func:`decode_filters` takes
the YAML into the typed tree, refusing what the API server's schema refuses (wrong shapes,
unknown fields, a `cesql` expression that does not parse); :func:`webhook_problems` then applies
the webhook's rules (attribute names, one dialect per element). :func:`parse_filters` does both,
as a Trigger in a manifest gets. How each broker class evaluates the tree is
:mod:`knlocal.eventing.filters`.

The tree keeps what a class's evaluation tells apart: a dialect map that is absent (``None``)
and one that is present but empty (``{}``) differ for the Kafka broker (knative-semantics.md
§2.3).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from knlocal.apis.meta import describe, mapping, string_map
from knlocal.errors import ManifestError
from knlocal.eventing.cesql import Expression, ParseError, compile_expression

__all__ = [
    "DIALECTS",
    "FilterElement",
    "TriggerFilters",
    "decode_filters",
    "parse_filters",
    "webhook_problems",
]

#: The dialects of `spec.filters`, in the order Knative's validation names them.
DIALECTS: Final = ("exact", "prefix", "suffix", "all", "any", "not", "cesql")

# knative-semantics.md §2.3: the webhook's rule for attribute names in both dialects.
_ATTRIBUTE_NAME: Final = re.compile(r"^[a-z][a-z0-9]*$")


@dataclass(frozen=True)
class FilterElement:
    """One `SubscriptionsAPIFilter`: the dialects it sets (validation allows one).

    `exact`, `prefix` and `suffix` are ``None`` when absent; `cesql` is ``None`` when absent or
    empty (an empty expression is no filter, `cesql_filter.go`).
    """

    exact: Mapping[str, str] | None = None
    prefix: Mapping[str, str] | None = None
    suffix: Mapping[str, str] | None = None
    all: tuple[FilterElement, ...] = ()
    any: tuple[FilterElement, ...] = ()
    #: `not`.
    negated: FilterElement | None = None
    cesql: Expression | None = None

    def dialects_set(self) -> list[str]:
        """The dialects that count as set for `ValidateOneOf`: non-empty, or `not` present."""
        values = (self.exact, self.prefix, self.suffix, self.all, self.any)
        found = [name for name, value in zip(DIALECTS, values, strict=False) if value]
        return found + ["not"] * (self.negated is not None) + ["cesql"] * (self.cesql is not None)


@dataclass(frozen=True)
class TriggerFilters:
    """`spec.filter.attributes` (empty when unset) and `spec.filters` (empty when unset).

    A non-empty `filters` overrides `attributes` (knative-semantics.md §2.3).
    """

    attributes: Mapping[str, str] = field(default_factory=dict)
    filters: tuple[FilterElement, ...] = ()


def parse_filters(spec: Mapping[str, Any]) -> TriggerFilters:
    """Read a Trigger spec's `filter` and `filters` as the API server and the webhook accept them.

    :raises ManifestError: listing every problem found, each with its field path.
    """
    filters = decode_filters(spec)
    problems = webhook_problems(filters)
    if problems:
        raise ManifestError("; ".join(problems))
    return filters


def decode_filters(spec: Mapping[str, Any]) -> TriggerFilters:
    """Read `filter` and `filters` into the typed tree, checking only their shapes.

    :raises ManifestError: listing every shape problem (a mapping or list expected, a string
        value expected, an unknown field or dialect, a `cesql` that does not parse).
    """
    problems: list[str] = []
    attributes: Mapping[str, str] = {}
    legacy = spec.get("filter")
    if legacy is not None:
        attributes = _collect(problems, _legacy, legacy) or {}
    elements: tuple[FilterElement, ...] = ()
    if spec.get("filters") is not None:
        elements = _collect(problems, _elements, spec["filters"], "spec.filters", problems) or ()
    if problems:
        raise ManifestError("; ".join(problems))
    return TriggerFilters(attributes, elements)


def webhook_problems(filters: TriggerFilters) -> list[str]:
    """The webhook's complaints about decoded filters (EVENTING `trigger_validation.go`).

    Attribute names match ``^[a-z][a-z0-9]*$``; each element of `filters` sets one dialect;
    nested `all`/`any`/`not` obey the same rules. Several attributes in one `exact`, `prefix`
    or `suffix` are allowed, all must match (knative/eventing#6477).
    """
    problems: list[str] = []
    _check_names(problems, filters.attributes, "spec.filter.attributes")
    for index, element in enumerate(filters.filters):
        _check_element(problems, element, f"spec.filters[{index}]")
    return problems


def _check_element(problems: list[str], element: FilterElement, path: str) -> None:
    present = element.dialects_set()
    if len(present) > 1:
        problems.append(
            f"{path}: multiple dialects found, filters can have only one dialect set "
            f"(found {', '.join(present)})"
        )
    for dialect, entries in (
        ("exact", element.exact),
        ("prefix", element.prefix),
        ("suffix", element.suffix),
    ):
        if entries is not None:
            _check_names(problems, entries, f"{path}.{dialect}")
    for dialect, members in (("all", element.all), ("any", element.any)):
        for index, member in enumerate(members):
            _check_element(problems, member, f"{path}.{dialect}[{index}]")
    if element.negated is not None:
        _check_element(problems, element.negated, f"{path}.not")


def _check_names(problems: list[str], entries: Mapping[str, str], path: str) -> None:
    bad = [name for name in entries if not _ATTRIBUTE_NAME.match(name)]
    if bad:
        problems.append(
            f"{path}: invalid attribute name(s) {bad}: attribute names must start with a "
            "letter and contain only lowercase letters and digits"
        )


def _collect(problems: list[str], read: Callable[..., Any], *args: Any) -> Any:
    """Run one reader, recording its error instead of stopping at it; ``None`` on error."""
    try:
        return read(*args)
    except ManifestError as error:
        problems.append(str(error))
        return None


def _legacy(value: Any) -> Mapping[str, str]:
    section = mapping(value, "spec.filter")
    unknown = sorted(str(key) for key in section if key != "attributes")
    if unknown:
        raise ManifestError(f"spec.filter: unknown field(s) {unknown}: expected only attributes")
    return string_map(section.get("attributes"), "spec.filter.attributes")


def _elements(value: Any, path: str, problems: list[str]) -> tuple[FilterElement, ...]:
    if not isinstance(value, list):
        raise ManifestError(f"{path}: expected a list, found {type(value).__name__}")
    decoded = (
        _collect(problems, _element, item, f"{path}[{index}]", problems)
        for index, item in enumerate(value)
    )
    return tuple(element for element in decoded if element is not None)


def _element(value: Any, path: str, problems: list[str]) -> FilterElement:
    if not isinstance(value, Mapping):
        raise ManifestError(f"{path}: expected a mapping, found {type(value).__name__}")
    section: Mapping[str, Any] = value
    unknown = sorted(str(key) for key in section if key not in DIALECTS)
    if unknown:
        problems.append(
            f"{path}: unknown filter dialect(s) {unknown}: expected one of {', '.join(DIALECTS)}"
        )
    maps: dict[str, Mapping[str, str] | None] = {}
    for dialect in ("exact", "prefix", "suffix"):
        raw = section.get(dialect)
        maps[dialect] = None
        if raw is not None:
            maps[dialect] = _collect(problems, string_map, raw, f"{path}.{dialect}")
    lists: dict[str, tuple[FilterElement, ...]] = {}
    for dialect in ("all", "any"):
        raw = section.get(dialect)
        lists[dialect] = ()
        if raw is not None:
            lists[dialect] = _collect(problems, _elements, raw, f"{path}.{dialect}", problems) or ()
    negated = None
    if section.get("not") is not None:
        negated = _collect(problems, _element, section["not"], f"{path}.not", problems)
    return FilterElement(
        exact=maps["exact"],
        prefix=maps["prefix"],
        suffix=maps["suffix"],
        all=lists["all"],
        any=lists["any"],
        negated=negated,
        cesql=_collect(problems, _cesql, section.get("cesql"), f"{path}.cesql"),
    )


def _cesql(value: Any, path: str) -> Expression | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ManifestError(f"{path}: expected a string, found {describe(value)}")
    try:
        return compile_expression(value)
    except ParseError as error:
        raise ManifestError(f"{path}: {error}") from None

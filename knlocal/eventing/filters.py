"""Trigger filters, evaluated the way each emulated broker class evaluates them.

A Trigger selects events with the legacy ``spec.filter.attributes`` map or with the
``spec.filters`` list of dialects (``exact``, ``prefix``, ``suffix``, ``all``, ``any``,
``not``, ``cesql``); a non-empty ``filters`` list overrides ``filter``
(knative-semantics.md §2.3). The two emulated classes disagree on details, and each
filter built here follows the class it is built for:

* ``MTChannelBasedBroker`` (Go, ``pkg/eventfilter``): results are PASS, FAIL or
  NO_FILTER; standard attributes are always present (``subject`` is ``""`` when unset,
  ``time`` is Go's zero time); a legacy value ``""`` requires a non-empty attribute;
  non-string extension values never equal a legacy filter value; a dialect with an empty
  key or value is skipped.
* ``Kafka`` (Java, ``data-plane/core/.../filter``): filters are predicates (PASS or
  FAIL); a missing attribute reads as ``""``; entries with an empty value are dropped, so
  ``{myext: ""}`` matches even when ``myext`` is absent; a dialect element with nothing
  set is a no-op that passes.

``cesql`` is CloudEvents SQL v1 (:mod:`knlocal.eventing.cesql`), compiled when the
filter is built or validated (a syntax error is a :class:`~knlocal.errors.ManifestError`
naming the position) and evaluated per event. Both classes fail an event when the
expression errors or does not yield ``true`` (EVENTING ``cesql_filter.go``, spec §1.2).

``attributes`` is an event's attribute map as ``CloudEvent.get_attributes()`` of the
cloudevents SDK v2 returns it: context attributes and extensions, with ``time`` as a
:class:`~datetime.datetime`.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from knlocal.errors import ManifestError
from knlocal.eventing.cesql import Expression, ParseError, compile_expression
from knlocal.eventing.classes import BrokerClass, DataPlane

__all__ = [
    "EventFilter",
    "FilterResult",
    "build_trigger_filter",
    "validate_trigger_filters",
]

# knative-semantics.md §2.3: the webhook's rule for attribute names in both dialects.
_ATTRIBUTE_NAME: Final = re.compile(r"^[a-z][a-z0-9]*$")

_DIALECTS: Final = ("exact", "prefix", "suffix", "all", "any", "not", "cesql")

# Go's time.Time{}.MarshalText(): what LookupAttribute returns for an event without time.
_GO_ZERO_TIME: Final = "0001-01-01T00:00:00Z"


class FilterResult(enum.Enum):
    """Outcome of a filter; only :attr:`FAIL` keeps an event from the subscriber."""

    PASS = "pass"
    FAIL = "fail"
    NO_FILTER = "no_filter"


class EventFilter(Protocol):
    """A Trigger's filter, ready to evaluate events."""

    def evaluate(self, attributes: Mapping[str, Any]) -> FilterResult:
        """Evaluate the filter against one event.

        :param attributes: the event's context attributes and extensions.
        :return: the filter's result.
        """
        ...


# --- Attribute lookup and rendering -------------------------------------------------------


def _utc(moment: datetime) -> datetime:
    # A naive datetime carries no offset; the SDK writes it without one and we read it as UTC.
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _timestamp(moment: datetime, fraction: str) -> str:
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
        f"T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}{fraction}Z"
    )


def _go_time_text(moment: datetime) -> str:
    """Render a time as Go's RFC3339Nano in UTC, as the MT broker compares it.

    sdk-go writes times in UTC at every HTTP hop, and ``MarshalText`` drops trailing zeros
    of the fraction (knative-semantics.md §2.3: ``time`` compared as RFC 3339 text).
    """
    utc = _utc(moment)
    fraction = f".{utc.microsecond:06d}".rstrip("0") if utc.microsecond else ""
    return _timestamp(utc, fraction)


def _java_time_text(moment: datetime) -> str:
    """Render a time as Java's ``DateTimeFormatter.ISO_INSTANT``, as the Kafka broker does.

    ISO_INSTANT prints the fraction in groups of three digits (``.500``, ``.000123``).
    """
    utc = _utc(moment)
    if utc.microsecond == 0:
        fraction = ""
    elif utc.microsecond % 1000 == 0:
        fraction = f".{utc.microsecond // 1000:03d}"
    else:
        fraction = f".{utc.microsecond:06d}"
    return _timestamp(utc, fraction)


def _go_sprint(value: Any) -> str:
    """Render a value as Go's ``fmt.Sprintf("%v", value)`` would (§2.3, ``exact`` dialect)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return _go_time_text(value)
    if isinstance(value, float) and value.is_integer():
        # Go prints float64(1) as "1", not "1.0".
        return str(int(value))
    return str(value)


def _java_to_string(value: Any) -> str:
    """Render a value as Java's ``Object.toString()`` would for a CloudEvent extension."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return _java_time_text(value)
    return str(value)


def _go_lookup(attributes: Mapping[str, Any], name: str) -> tuple[bool, Any]:
    """Look an attribute up as Go's ``attributes.LookupAttribute`` does.

    knative-semantics.md §2.3: standard attributes are always present (``""`` when unset);
    an extension is present only if the event has it.

    :return: whether the attribute is present, and its value.
    """
    match name:
        case "specversion" | "type" | "source" | "subject" | "id" | "datacontenttype":
            value = attributes.get(name)
            return True, "" if value is None else value
        case "dataschema" | "schemaurl":
            value = attributes.get("dataschema")
            return True, "" if value is None else value
        case "time":
            value = attributes.get("time")
            if value is None:
                return True, _GO_ZERO_TIME
            return True, _go_time_text(value) if isinstance(value, datetime) else value
        case "datamediatype":
            # sdk-go DataMediaType(): datacontenttype up to ';', trimmed.
            content_type = attributes.get("datacontenttype") or ""
            return True, str(content_type).split(";", 1)[0].strip()
        case "datacontentencoding":
            # Deprecated CloudEvents 0.3 attribute; always "" on a 1.0 event.
            return True, ""
        case _:
            value = attributes.get(name)
            return value is not None, value


_JAVA_STANDARD_ATTRIBUTES: Final = frozenset(
    {"specversion", "id", "type", "source", "datacontenttype", "subject"}
)


def _java_lookup(attributes: Mapping[str, Any], name: str) -> str:
    """Read an attribute as the Kafka broker's ``AttributesFilter`` extractors do.

    knative-semantics.md §2.3 (EKB ``AttributesFilter.java``): a missing attribute or
    extension reads as ``""``. (Java throws on a missing ``subject`` or
    ``datacontenttype``; reading ``""`` gives the same outcome: no match.)
    """
    if name in _JAVA_STANDARD_ATTRIBUTES:
        value = attributes.get(name)
    elif name in ("dataschema", "schemaurl"):
        value = attributes.get("dataschema")
    elif name == "time":
        value = attributes.get("time")
        if isinstance(value, datetime):
            return _java_time_text(value)
    else:
        value = attributes.get(name)
    return "" if value is None else _java_to_string(value)


def _equals(given: str, wanted: str) -> bool:
    return given == wanted


def _has_prefix(given: str, wanted: str) -> bool:
    return given.startswith(wanted)


def _has_suffix(given: str, wanted: str) -> bool:
    return given.endswith(wanted)


_MATCHERS: Final[Mapping[str, Callable[[str, str], bool]]] = {
    "exact": _equals,
    "prefix": _has_prefix,
    "suffix": _has_suffix,
}

_Entries = tuple[tuple[str, str], ...]


# --- Filters shared by both classes -------------------------------------------------------


@dataclass(frozen=True)
class _NoFilter:
    """The Trigger has no filter: every event is delivered."""

    def evaluate(self, attributes: Mapping[str, Any]) -> FilterResult:
        return FilterResult.NO_FILTER


_NO_FILTER: Final = _NoFilter()


# --- MTChannelBasedBroker (Go) ------------------------------------------------------------


@dataclass(frozen=True)
class _GoAttributesFilter:
    """Legacy ``filter.attributes`` of the MT broker (EVENTING ``attributes/filter.go``)."""

    entries: _Entries

    def evaluate(self, attributes: Mapping[str, Any]) -> FilterResult:
        for name, wanted in self.entries:
            present, value = _go_lookup(attributes, name)
            if not present:
                return FilterResult.FAIL
            if wanted == "":
                # knative-semantics.md §2.3: "" (TriggerAnyFilter) fails on an empty value.
                if isinstance(value, str) and value == "":
                    return FilterResult.FAIL
                continue
            # §2.3: Go compares string to interface{}: a non-string value never matches.
            if not (isinstance(value, str) and value == wanted):
                return FilterResult.FAIL
        return FilterResult.PASS


@dataclass(frozen=True)
class _GoMatchFilter:
    """``exact``/``prefix``/``suffix`` of the MT broker (EVENTING ``subscriptionsapi``)."""

    entries: _Entries
    match: Callable[[str, str], bool]

    def evaluate(self, attributes: Mapping[str, Any]) -> FilterResult:
        for name, wanted in self.entries:
            present, value = _go_lookup(attributes, name)
            # §2.3: a missing attribute fails; others compare as fmt.Sprintf("%v").
            if not present or not self.match(_go_sprint(value), wanted):
                return FilterResult.FAIL
        return FilterResult.PASS


@dataclass(frozen=True)
class _GoAllFilter:
    """``all`` and the top-level list: a conjunction in which NO_FILTER is neutral.

    Go's ``allFilter`` returns its last sub-result and reorders sub-filters at run time,
    so PASS versus NO_FILTER of a mixed list is not stable there; the conjunction is the
    documented meaning (knative-semantics.md §2.3).
    """

    filters: tuple[EventFilter, ...]

    def evaluate(self, attributes: Mapping[str, Any]) -> FilterResult:
        result = FilterResult.NO_FILTER
        for sub in self.filters:
            outcome = sub.evaluate(attributes)
            if outcome is FilterResult.FAIL:
                return FilterResult.FAIL
            if outcome is FilterResult.PASS:
                result = FilterResult.PASS
        return result


@dataclass(frozen=True)
class _GoAnyFilter:
    """``any``: a disjunction in which NO_FILTER is neutral; no sub-filter gives NO_FILTER."""

    filters: tuple[EventFilter, ...]

    def evaluate(self, attributes: Mapping[str, Any]) -> FilterResult:
        result = FilterResult.NO_FILTER
        for sub in self.filters:
            outcome = sub.evaluate(attributes)
            if outcome is FilterResult.PASS:
                return FilterResult.PASS
            if outcome is FilterResult.FAIL:
                result = FilterResult.FAIL
        return result


@dataclass(frozen=True)
class _GoNotFilter:
    """``not``: swaps PASS and FAIL; NO_FILTER (or a skipped operand) stays NO_FILTER."""

    filter: EventFilter | None

    def evaluate(self, attributes: Mapping[str, Any]) -> FilterResult:
        if self.filter is None:
            return FilterResult.NO_FILTER
        outcome = self.filter.evaluate(attributes)
        if outcome is FilterResult.PASS:
            return FilterResult.FAIL
        if outcome is FilterResult.FAIL:
            return FilterResult.PASS
        return FilterResult.NO_FILTER


def _build_go_element(element: Mapping[str, Any], path: str) -> EventFilter | None:
    """Build one dialect element as ``MaterializeSubscriptionsAPIFilter`` does.

    The first dialect set wins, in Go's order; ``None`` means the element is skipped.
    """
    for dialect in ("exact", "prefix", "suffix"):
        entries = _string_map(element.get(dialect), f"{path}.{dialect}")
        if entries:
            # §2.3: an empty key or value means the filter cannot be built: it is skipped.
            if any(name == "" or value == "" for name, value in entries.items()):
                return None
            return _GoMatchFilter(tuple(entries.items()), _MATCHERS[dialect])
    all_elements = _element_list(element.get("all"), f"{path}.all")
    if all_elements:
        return _GoAllFilter(_build_go_list(all_elements, f"{path}.all"))
    any_elements = _element_list(element.get("any"), f"{path}.any")
    if any_elements:
        return _GoAnyFilter(_build_go_list(any_elements, f"{path}.any"))
    negated = element.get("not")
    if negated is not None:
        return _GoNotFilter(_build_go_element(_mapping(negated, f"{path}.not"), f"{path}.not"))
    return _cesql_filter(element, path, _go_sprint)


def _build_go_list(elements: Sequence[Mapping[str, Any]], path: str) -> tuple[EventFilter, ...]:
    built = (_build_go_element(e, f"{path}[{i}]") for i, e in enumerate(elements))
    return tuple(f for f in built if f is not None)


# --- Kafka (Java) -------------------------------------------------------------------------


@dataclass(frozen=True)
class _KafkaNoop:
    """A dialect element with nothing set: ``Filter.noop()``, which passes every event."""

    def evaluate(self, attributes: Mapping[str, Any]) -> FilterResult:
        return FilterResult.PASS


_KAFKA_NOOP: Final = _KafkaNoop()


@dataclass(frozen=True)
class _KafkaMatchFilter:
    """Legacy attributes, ``exact``, ``prefix`` and ``suffix`` of the Kafka broker.

    Entries with an empty value were dropped when the filter was built (§2.3).
    """

    entries: _Entries
    match: Callable[[str, str], bool]

    def evaluate(self, attributes: Mapping[str, Any]) -> FilterResult:
        for name, wanted in self.entries:
            if not self.match(_java_lookup(attributes, name), wanted):
                return FilterResult.FAIL
        return FilterResult.PASS


def _kafka_match_filter(entries: Mapping[str, str], dialect: str) -> _KafkaMatchFilter:
    # knative-semantics.md §2.3: AttributesFilter's constructor drops empty values.
    kept = tuple((name, value) for name, value in entries.items() if value != "")
    return _KafkaMatchFilter(kept, _MATCHERS[dialect])


@dataclass(frozen=True)
class _KafkaAllFilter:
    """``all`` and the top-level list: every predicate holds (an empty list holds)."""

    filters: tuple[EventFilter, ...]

    def evaluate(self, attributes: Mapping[str, Any]) -> FilterResult:
        for sub in self.filters:
            if sub.evaluate(attributes) is FilterResult.FAIL:
                return FilterResult.FAIL
        return FilterResult.PASS


@dataclass(frozen=True)
class _KafkaAnyFilter:
    """``any``: some predicate holds."""

    filters: tuple[EventFilter, ...]

    def evaluate(self, attributes: Mapping[str, Any]) -> FilterResult:
        for sub in self.filters:
            if sub.evaluate(attributes) is FilterResult.PASS:
                return FilterResult.PASS
        return FilterResult.FAIL


@dataclass(frozen=True)
class _KafkaNotFilter:
    """``not``: negates the predicate; there is no NO_FILTER to preserve in Java."""

    filter: EventFilter

    def evaluate(self, attributes: Mapping[str, Any]) -> FilterResult:
        if self.filter.evaluate(attributes) is FilterResult.FAIL:
            return FilterResult.PASS
        return FilterResult.FAIL


def _build_kafka_element(element: Mapping[str, Any], path: str) -> EventFilter:
    """Build one dialect element as the Kafka control plane's ``FromSubscriptionFilter`` does.

    Its order differs from Go's: ``all``, ``any``, ``not``, then ``exact``, ``prefix``,
    ``suffix``; an element with nothing set becomes a no-op that passes.
    """
    all_elements = _element_list(element.get("all"), f"{path}.all")
    if all_elements:
        return _KafkaAllFilter(_build_kafka_list(all_elements, f"{path}.all"))
    any_elements = _element_list(element.get("any"), f"{path}.any")
    if any_elements:
        return _KafkaAnyFilter(_build_kafka_list(any_elements, f"{path}.any"))
    negated = element.get("not")
    if negated is not None:
        inner = _build_kafka_element(_mapping(negated, f"{path}.not"), f"{path}.not")
        return _KafkaNotFilter(inner)
    for dialect in ("exact", "prefix", "suffix"):
        value = element.get(dialect)
        if value is not None:
            return _kafka_match_filter(_string_map(value, f"{path}.{dialect}"), dialect)
    return _cesql_filter(element, path, _java_to_string) or _KAFKA_NOOP


def _build_kafka_list(elements: Sequence[Mapping[str, Any]], path: str) -> tuple[EventFilter, ...]:
    return tuple(_build_kafka_element(e, f"{path}[{i}]") for i, e in enumerate(elements))


# --- Manifest shapes ----------------------------------------------------------------------


def _mapping(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ManifestError(f"{path}: expected a mapping, found {type(value).__name__}")
    return value


def _string_map(value: Any, path: str) -> dict[str, str]:
    """Read a ``map[string]string`` field; ``None`` (absent) reads as empty."""
    if value is None:
        return {}
    entries = _mapping(value, path)
    for name, text in entries.items():
        if not isinstance(name, str) or not isinstance(text, str):
            raise ManifestError(
                f"{path}: expected string keys and string values, found {name!r}: {text!r}"
            )
    return dict(entries)


def _element_list(value: Any, path: str) -> list[Mapping[str, Any]]:
    """Read a list of dialect elements; ``None`` (absent) reads as empty."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ManifestError(f"{path}: expected a list, found {type(value).__name__}")
    return [_mapping(element, f"{path}[{i}]") for i, element in enumerate(value)]


@dataclass(frozen=True)
class _CesqlFilter:
    """``cesql``: PASS only if the expression yields ``true`` without an error.

    EVENTING ``subscriptionsapi/cesql_filter.go``: an evaluation error fails the event;
    CESQL spec §1.2: so does a value that is not a Boolean. Values are read as the text the
    broker's filter sees after binary-mode hops (``render``); an absent attribute is
    missing, so ``EXISTS subject`` is false on an event without one.
    """

    expression: Expression
    render: Callable[[Any], str]

    def evaluate(self, attributes: Mapping[str, Any]) -> FilterResult:
        values: dict[str, str] = {}
        for name in self.expression.attributes:
            value = attributes.get(name)
            if value is not None:
                values[name] = value if type(value) is str else self.render(value)
        result = self.expression.evaluate(values)
        if result.error is None and result.value is True:
            return FilterResult.PASS
        return FilterResult.FAIL


def _cesql_filter(
    element: Mapping[str, Any], path: str, render: Callable[[Any], str]
) -> EventFilter | None:
    """Compile an element's ``cesql``; ``None`` when it is absent or empty (no filter)."""
    expression = element.get("cesql")
    if expression is None or expression == "":
        return None
    if not isinstance(expression, str):
        raise ManifestError(f"{path}.cesql: expected a string, found {type(expression).__name__}")
    try:
        return _CesqlFilter(compile_expression(expression), render)
    except ParseError as error:
        raise ManifestError(f"{path}.cesql: {error}") from None


# --- Public API ---------------------------------------------------------------------------


def build_trigger_filter(spec: Mapping[str, Any], broker_class: BrokerClass) -> EventFilter:
    """Build the filter of a Trigger as the given broker class would evaluate it.

    A non-empty ``filters`` list overrides ``filter.attributes``; with neither the
    filter returns NO_FILTER (knative-semantics.md §2.3). The list is an implicit
    ``all``. This function checks only what it needs to build the filter (shapes and
    types); run :func:`validate_trigger_filters` first for the webhook's checks.

    :param spec: the Trigger's ``spec`` as loaded from YAML.
    :param broker_class: class of the Trigger's Broker (see :mod:`knlocal.eventing.classes`).
    :return: the filter.
    :raises ManifestError: a field has the wrong shape or a ``cesql`` expression does not parse.
    """
    kafka = broker_class.data_plane is DataPlane.JAVA
    elements = _element_list(spec.get("filters"), "spec.filters")
    if elements:
        if kafka:
            return _KafkaAllFilter(_build_kafka_list(elements, "spec.filters"))
        return _GoAllFilter(_build_go_list(elements, "spec.filters"))
    legacy = spec.get("filter")
    if legacy is None:
        return _NO_FILTER
    entries = _string_map(
        _mapping(legacy, "spec.filter").get("attributes"), "spec.filter.attributes"
    )
    if not entries:
        return _NO_FILTER
    if kafka:
        # §2.3: the Kafka dispatcher runs the legacy filter through ExactFilter.
        return _kafka_match_filter(entries, "exact")
    return _GoAttributesFilter(tuple(entries.items()))


def validate_trigger_filters(spec: Mapping[str, Any]) -> None:
    """Check a Trigger's ``filter`` and ``filters`` as the Knative webhook does.

    Checks (knative-semantics.md §2.3, EVENTING ``trigger_validation.go``): attribute
    names match ``^[a-z][a-z0-9]*$``; each element of ``filters`` sets one dialect;
    nested ``all``/``any``/``not`` obey the same rules. The API server's schema checks are
    added (mappings, lists, string values, no unknown dialect), and a ``cesql`` expression
    must parse. Every problem found is reported in one error.

    :param spec: the Trigger's ``spec`` as loaded from YAML.
    :raises ManifestError: the filters are invalid; the message lists every problem.
    """
    problems: list[str] = []
    if spec.get("filter") is not None:
        _collect(problems, _validate_legacy, spec["filter"])
    if spec.get("filters") is not None:
        _collect(problems, _validate_list, spec["filters"], "spec.filters", problems)
    if problems:
        raise ManifestError("; ".join(problems))


def _collect(problems: list[str], check: Callable[..., object], *args: Any) -> None:
    """Run one check, recording its error instead of stopping at it."""
    try:
        check(*args)
    except ManifestError as error:
        problems.append(str(error))


def _validate_legacy(legacy: Any) -> None:
    section = _mapping(legacy, "spec.filter")
    unknown = sorted(str(key) for key in section if key != "attributes")
    if unknown:
        raise ManifestError(f"spec.filter: unknown field(s) {unknown}: expected only attributes")
    entries = _string_map(section.get("attributes"), "spec.filter.attributes")
    _check_names(entries, "spec.filter.attributes")


def _check_names(entries: Mapping[str, str], path: str) -> None:
    bad = [name for name in entries if not _ATTRIBUTE_NAME.match(name)]
    if bad:
        raise ManifestError(
            f"{path}: invalid attribute name(s) {bad}: attribute names must start with a "
            "letter and contain only lowercase letters and digits"
        )


def _validate_list(value: Any, path: str, problems: list[str]) -> None:
    for index, element in enumerate(_element_list(value, path)):
        _validate_element(element, f"{path}[{index}]", problems)


def _validate_element(element: Mapping[str, Any], path: str, problems: list[str]) -> None:
    unknown = sorted(str(key) for key in element if key not in _DIALECTS)
    if unknown:
        problems.append(
            f"{path}: unknown filter dialect(s) {unknown}: expected one of {', '.join(_DIALECTS)}"
        )
    # knative-semantics.md §2.3 (ValidateOneOf): a dialect counts as set when non-empty.
    present = [d for d in _DIALECTS if _is_set(d, element.get(d))]
    if len(present) > 1:
        problems.append(
            f"{path}: multiple dialects found, filters can have only one dialect set "
            f"(found {', '.join(present)})"
        )
    for dialect in ("exact", "prefix", "suffix"):
        if element.get(dialect) is not None:
            _collect(problems, _validate_attribute_map, element[dialect], f"{path}.{dialect}")
    for dialect in ("all", "any"):
        if element.get(dialect) is not None:
            _collect(problems, _validate_list, element[dialect], f"{path}.{dialect}", problems)
    if element.get("not") is not None:
        _collect(problems, _validate_negated, element["not"], f"{path}.not", problems)
    _collect(problems, _cesql_filter, element, path, _go_sprint)


def _validate_negated(value: Any, path: str, problems: list[str]) -> None:
    _validate_element(_mapping(value, path), path, problems)


def _is_set(dialect: str, value: Any) -> bool:
    if dialect == "not":
        return value is not None
    if dialect == "cesql":
        return value is not None and value != ""
    return bool(value)


def _validate_attribute_map(value: Any, path: str) -> None:
    # Several attributes are allowed, all must match: knative/eventing#6477
    # (trigger_validation_test.go "valid exact/suffix filter containing more than one attribute").
    _check_names(_string_map(value, path), path)

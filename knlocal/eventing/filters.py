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

The filters come typed and validated from the manifest (:mod:`knlocal.apis.filters`);
``cesql`` is CloudEvents SQL v1 (:mod:`knlocal.eventing.cesql`), compiled there and evaluated
per event here. Both classes fail an event when the
expression errors or does not yield ``true`` (EVENTING ``cesql_filter.go``, spec §1.2).

``attributes`` is an event's attribute map as ``CloudEvent.get_attributes()`` of the
cloudevents SDK v2 returns it: context attributes and extensions, with ``time`` as a
:class:`~datetime.datetime`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from knlocal.apis.filters import FilterElement, TriggerFilters
from knlocal.eventing.attributes import go_lookup, go_sprint, java_lookup, java_to_string
from knlocal.eventing.cesql import Expression
from knlocal.eventing.classes import BrokerClass, DataPlane

__all__ = [
    "EventFilter",
    "FilterResult",
    "build_trigger_filter",
]


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
            present, value = go_lookup(attributes, name)
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
            present, value = go_lookup(attributes, name)
            # §2.3: a missing attribute fails; others compare as fmt.Sprintf("%v").
            if not present or not self.match(go_sprint(value), wanted):
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


def _build_go_element(element: FilterElement) -> EventFilter | None:
    """Build one dialect element as ``MaterializeSubscriptionsAPIFilter`` does.

    The first dialect set wins, in Go's order; ``None`` means the element is skipped.
    """
    for dialect, entries in (
        ("exact", element.exact),
        ("prefix", element.prefix),
        ("suffix", element.suffix),
    ):
        if entries:
            # §2.3: an empty key or value means the filter cannot be built: it is skipped.
            if any(name == "" or value == "" for name, value in entries.items()):
                return None
            return _GoMatchFilter(tuple(entries.items()), _MATCHERS[dialect])
    if element.all:
        return _GoAllFilter(_build_go_list(element.all))
    if element.any:
        return _GoAnyFilter(_build_go_list(element.any))
    if element.negated is not None:
        return _GoNotFilter(_build_go_element(element.negated))
    return _cesql_filter(element.cesql, go_sprint)


def _build_go_list(elements: Sequence[FilterElement]) -> tuple[EventFilter, ...]:
    built = (_build_go_element(e) for e in elements)
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
            if not self.match(java_lookup(attributes, name), wanted):
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


def _build_kafka_element(element: FilterElement) -> EventFilter:
    """Build one dialect element as the Kafka control plane's ``FromSubscriptionFilter`` does.

    Its order differs from Go's: ``all``, ``any``, ``not``, then ``exact``, ``prefix``,
    ``suffix`` (present, even empty); an element with nothing set becomes a no-op that passes.
    """
    if element.all:
        return _KafkaAllFilter(_build_kafka_list(element.all))
    if element.any:
        return _KafkaAnyFilter(_build_kafka_list(element.any))
    if element.negated is not None:
        return _KafkaNotFilter(_build_kafka_element(element.negated))
    for dialect, entries in (
        ("exact", element.exact),
        ("prefix", element.prefix),
        ("suffix", element.suffix),
    ):
        if entries is not None:
            return _kafka_match_filter(entries, dialect)
    return _cesql_filter(element.cesql, java_to_string) or _KAFKA_NOOP


def _build_kafka_list(elements: Sequence[FilterElement]) -> tuple[EventFilter, ...]:
    return tuple(_build_kafka_element(e) for e in elements)


# --- CESQL --------------------------------------------------------------------------------


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
    expression: Expression | None, render: Callable[[Any], str]
) -> EventFilter | None:
    """The filter of an element's ``cesql``; ``None`` when it is absent or empty (no filter)."""
    return None if expression is None else _CesqlFilter(expression, render)


# --- Public API ---------------------------------------------------------------------------


def build_trigger_filter(filters: TriggerFilters, broker_class: BrokerClass) -> EventFilter:
    """Build the filter of a Trigger as the given broker class would evaluate it.

    A non-empty ``filters`` list overrides ``filter.attributes``; with neither the
    filter returns NO_FILTER (knative-semantics.md §2.3). The list is an implicit ``all``.

    :param filters: the Trigger's filters, as :mod:`knlocal.apis.filters` read them.
    :param broker_class: class of the Trigger's Broker (see :mod:`knlocal.eventing.classes`).
    :return: the filter.
    """
    kafka = broker_class.data_plane is DataPlane.JAVA
    if filters.filters:
        if kafka:
            return _KafkaAllFilter(_build_kafka_list(filters.filters))
        return _GoAllFilter(_build_go_list(filters.filters))
    if not filters.attributes:
        return _NO_FILTER
    if kafka:
        # §2.3: the Kafka dispatcher runs the legacy filter through ExactFilter.
        return _kafka_match_filter(filters.attributes, "exact")
    return _GoAttributesFilter(tuple(filters.attributes.items()))

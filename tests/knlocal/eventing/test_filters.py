"""Trigger filters evaluated per broker class, row by row against knative-semantics.md §2.3.

The rows are decoded without the webhook's checks (:func:`knlocal.apis.filters.decode_filters`),
so that what only a class's evaluation decides (e.g. an empty key) is reachable; the webhook's
checks are tests/knlocal/apis/test_filters.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from cloudevents.core.v1.event import CloudEvent

from knlocal.apis.filters import decode_filters
from knlocal.eventing.classes import KAFKA_BROKER, MT_CHANNEL_BASED_BROKER, BrokerClass
from knlocal.eventing.filters import EventFilter, FilterResult, build_trigger_filter

MT = MT_CHANNEL_BASED_BROKER
KAFKA = KAFKA_BROKER
PASS = FilterResult.PASS
FAIL = FilterResult.FAIL
NO_FILTER = FilterResult.NO_FILTER

#: A fixed instant with a half second: Go renders .5, Java's ISO_INSTANT renders .500.
HALF_SECOND = datetime(2024, 1, 2, 3, 4, 5, 500000, tzinfo=UTC)


def event(**extra: Any) -> dict[str, Any]:
    """Build an event with the SDK and return its attributes (type t, source /s, id 1)."""
    attributes: dict[str, Any] = {"type": "t", "source": "/s", "id": "1", **extra}
    return dict(CloudEvent(attributes, None).get_attributes())


def event_without_time(**extra: Any) -> dict[str, Any]:
    """An event's attributes without ``time`` (the SDK stamps one; Knative does not)."""
    attributes = event(**extra)
    del attributes["time"]
    return attributes


def legacy(attributes: dict[str, str]) -> dict[str, Any]:
    """A Trigger spec with a legacy ``filter.attributes``."""
    return {"broker": "default", "filter": {"attributes": attributes}}


def dialects(*elements: dict[str, Any]) -> dict[str, Any]:
    """A Trigger spec with a ``filters`` list."""
    return {"broker": "default", "filters": list(elements)}


def built(spec: dict[str, Any], broker_class: BrokerClass) -> EventFilter:
    """The filter `broker_class` evaluates for a Trigger `spec`."""
    return build_trigger_filter(decode_filters(spec), broker_class)


# --- §2.3 legacy filter.attributes ------------------------------------------------------------

# (filter.attributes, event attributes, expected MT, expected Kafka)
LEGACY_ROWS: list[tuple[str, dict[str, str], dict[str, Any], FilterResult, FilterResult]] = [
    ("type-equal", {"type": "t"}, event(), PASS, PASS),
    ("type-different", {"type": "x"}, event(), FAIL, FAIL),
    ("match-is-case-sensitive", {"type": "T"}, event(), FAIL, FAIL),
    ("every-key-must-match", {"type": "t", "source": "/x"}, event(), FAIL, FAIL),
    ("every-key-matches", {"type": "t", "source": "/s"}, event(), PASS, PASS),
    ("specversion", {"specversion": "1.0"}, event(), PASS, PASS),
    ("extension-equal", {"myext": "x"}, event(myext="x"), PASS, PASS),
    ("extension-absent-with-value", {"myext": "x"}, event(), FAIL, FAIL),
    # MT: the key must exist; Kafka drops entries whose value is "".
    ("extension-absent-with-empty-value", {"myext": ""}, event(), FAIL, PASS),
    ("empty-value-matches-any-nonempty", {"myext": ""}, event(myext="x"), PASS, PASS),
    # MT: "" requires a non-empty value; Kafka dropped the entry.
    ("empty-value-vs-empty-extension", {"myext": ""}, event(myext=""), FAIL, PASS),
    # MT: subject is always present, "" when unset, so "" fails; Kafka dropped the entry.
    ("unset-subject-with-empty-value", {"subject": ""}, event(), FAIL, PASS),
    ("set-subject-with-empty-value", {"subject": ""}, event(subject="s"), PASS, PASS),
    ("unset-subject-with-value", {"subject": "s"}, event(), FAIL, FAIL),
    ("unset-dataschema-with-empty-value", {"dataschema": ""}, event(), FAIL, PASS),
    ("schemaurl-aliases-dataschema", {"schemaurl": "https://x/s"}, event(dataschema="https://x/s"),
     PASS, PASS),
    # MT: Go's != between a string and a bool/int never holds; Kafka compares toString().
    ("bool-extension", {"flag": "true"}, event(flag=True), FAIL, PASS),
    ("int-extension", {"count": "3"}, event(count=3), FAIL, PASS),
    ("bool-extension-with-empty-value", {"flag": ""}, event(flag=True), PASS, PASS),
    # time: Go RFC3339Nano drops trailing zeros (.5Z); Java ISO_INSTANT keeps 3 digits (.500Z).
    ("time-go-text", {"time": "2024-01-02T03:04:05.5Z"}, event(time=HALF_SECOND), PASS, FAIL),
    ("time-java-text", {"time": "2024-01-02T03:04:05.500Z"}, event(time=HALF_SECOND), FAIL, PASS),
    # 05:04:05+02:00 is 03:04:05Z; both compare the UTC text.
    ("time-offset-compared-in-utc", {"time": "2024-01-02T03:04:05Z"},
     event(time=datetime(2024, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2)))), PASS, PASS),
    # MT: an unset time is Go's zero time, a non-empty text; Kafka reads "".
    ("unset-time-with-empty-value", {"time": ""}, event_without_time(), PASS, PASS),
    ("unset-time-is-go-zero-time", {"time": "0001-01-01T00:00:00Z"}, event_without_time(),
     PASS, FAIL),
    # datamediatype is a Go-only alias: datacontenttype before ";".
    ("datamediatype-go-only", {"datamediatype": "application/json"},
     event(datacontenttype="application/json; charset=utf-8"), PASS, FAIL),
]  # fmt: skip


@pytest.mark.parametrize(
    ("filter_attributes", "attributes", "expected_mt", "expected_kafka"),
    [row[1:] for row in LEGACY_ROWS],
    ids=[row[0] for row in LEGACY_ROWS],
)
def test_s2_3_legacy_filter_attributes_per_class(
    filter_attributes: dict[str, str],
    attributes: dict[str, Any],
    expected_mt: FilterResult,
    expected_kafka: FilterResult,
) -> None:
    """Each row of the legacy filter rules holds for MT (Go) and Kafka (Java)."""
    spec = legacy(filter_attributes)
    assert built(spec, MT).evaluate(attributes) is expected_mt
    assert built(spec, KAFKA).evaluate(attributes) is expected_kafka


@pytest.mark.parametrize("broker_class", [MT, KAFKA])
@pytest.mark.parametrize(
    "spec",
    [{"broker": "default"}, {"filter": None}, {"filter": {}}, legacy({}), dialects()],
    ids=["no-filter", "filter-null", "filter-without-attributes", "empty-attributes",
         "empty-filters"],
)  # fmt: skip
def test_s2_3_no_filter_passes_everything(spec: dict[str, Any], broker_class: BrokerClass) -> None:
    """A Trigger without any filter condition yields NO_FILTER, which does not block."""
    assert built(spec, broker_class).evaluate(event()) is NO_FILTER


@pytest.mark.parametrize("broker_class", [MT, KAFKA])
@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        # filter would fail (type x), filters passes (type t): filters wins.
        ({"filter": {"attributes": {"type": "x"}}, "filters": [{"exact": {"type": "t"}}]}, PASS),
        # filter would pass, filters fails: filters wins.
        ({"filter": {"attributes": {"type": "t"}}, "filters": [{"exact": {"type": "x"}}]}, FAIL),
        # An empty filters list does not override: filter applies.
        ({"filter": {"attributes": {"type": "x"}}, "filters": []}, FAIL),
    ],
    ids=["filters-pass-overrides-filter", "filters-fail-overrides-filter",
         "empty-filters-falls-back-to-filter"],
)  # fmt: skip
def test_s2_3_filters_override_legacy_filter(
    spec: dict[str, Any], expected: FilterResult, broker_class: BrokerClass
) -> None:
    """A non-empty ``filters`` list overrides ``filter.attributes``."""
    assert built(spec, broker_class).evaluate(event()) is expected


# --- §2.3 filters dialects ----------------------------------------------------------------------

# (filters elements, event attributes, expected MT, expected Kafka)
DIALECT_ROWS: list[tuple[str, list[dict[str, Any]], dict[str, Any], FilterResult, FilterResult]] = [
    # exact
    ("exact-equal", [{"exact": {"type": "t"}}], event(), PASS, PASS),
    ("exact-different", [{"exact": {"type": "x"}}], event(), FAIL, FAIL),
    ("exact-missing-extension", [{"exact": {"myext": "x"}}], event(), FAIL, FAIL),
    # Go fmt.Sprintf("%v"): true/false and plain integers, never Python's True.
    ("exact-bool-true", [{"exact": {"flag": "true"}}], event(flag=True), PASS, PASS),
    ("exact-bool-false", [{"exact": {"flag": "false"}}], event(flag=False), PASS, PASS),
    ("exact-bool-python-spelling", [{"exact": {"flag": "True"}}], event(flag=True), FAIL, FAIL),
    ("exact-int", [{"exact": {"count": "42"}}], event(count=42), PASS, PASS),
    ("exact-time-go-text", [{"exact": {"time": "2024-01-02T03:04:05.5Z"}}],
     event(time=HALF_SECOND), PASS, FAIL),
    # MT: an empty value means the filter cannot be built and is skipped (NO_FILTER);
    # Kafka drops the entry and the empty filter passes.
    ("exact-empty-value-skipped", [{"exact": {"myext": ""}}], event(), NO_FILTER, PASS),
    # prefix
    ("prefix-match", [{"prefix": {"type": "com."}}], event(type="com.example.created"), PASS, PASS),
    ("prefix-mismatch", [{"prefix": {"type": "org."}}], event(type="com.example.created"),
     FAIL, FAIL),
    ("prefix-missing-extension", [{"prefix": {"myext": "a"}}], event(), FAIL, FAIL),
    ("prefix-bool-rendered-go-style", [{"prefix": {"flag": "tr"}}], event(flag=True), PASS, PASS),
    ("prefix-empty-value-skipped", [{"prefix": {"type": ""}}], event(), NO_FILTER, PASS),
    # suffix
    ("suffix-match", [{"suffix": {"type": ".created"}}], event(type="com.example.created"),
     PASS, PASS),
    ("suffix-mismatch", [{"suffix": {"type": ".deleted"}}], event(type="com.example.created"),
     FAIL, FAIL),
    ("suffix-missing-extension", [{"suffix": {"myext": "a"}}], event(), FAIL, FAIL),
    # An empty key (only reachable without validation): Go skips it; Java reads "" for it.
    ("suffix-empty-key", [{"suffix": {"": "x"}}], event(), NO_FILTER, FAIL),
    # knative/eventing#6477: several attributes in one dialect must all match.
    ("exact-two-attributes-match", [{"exact": {"type": "t", "source": "/s"}}], event(),
     PASS, PASS),
    ("exact-two-attributes-one-differs", [{"exact": {"type": "t", "source": "/x"}}], event(),
     FAIL, FAIL),
    ("prefix-two-attributes-one-differs", [{"prefix": {"type": "t", "source": "/x"}}], event(),
     FAIL, FAIL),
    ("suffix-two-attributes-match", [{"suffix": {"type": "t", "source": "s"}}], event(),
     PASS, PASS),
    # all
    ("all-pass", [{"all": [{"exact": {"type": "t"}}, {"prefix": {"source": "/"}}]}], event(),
     PASS, PASS),
    ("all-one-fails", [{"all": [{"exact": {"type": "t"}}, {"exact": {"source": "/x"}}]}], event(),
     FAIL, FAIL),
    ("all-skipped-member-neutral", [{"all": [{"exact": {"type": "t"}}, {"exact": {"myext": ""}}]}],
     event(), PASS, PASS),
    # any
    ("any-one-passes", [{"any": [{"exact": {"type": "x"}}, {"exact": {"type": "t"}}]}], event(),
     PASS, PASS),
    ("any-none-passes", [{"any": [{"exact": {"type": "x"}}, {"exact": {"type": "y"}}]}], event(),
     FAIL, FAIL),
    # MT: any over no built filter is NO_FILTER; Kafka: the dropped-entries filter passes.
    ("any-only-skipped-members", [{"any": [{"exact": {"myext": ""}}]}], event(), NO_FILTER, PASS),
    # MT: NO_FILTER is neutral in any: NO_FILTER or FAIL = FAIL.
    ("any-nofilter-or-fail", [{"any": [{"not": {}}, {"exact": {"type": "x"}}]}], event(),
     FAIL, FAIL),
    # An empty any list sets no dialect: MT skips the element; Kafka makes it a passing no-op.
    ("any-empty-list", [{"any": []}], event(), NO_FILTER, PASS),
    # not
    ("not-of-fail", [{"not": {"exact": {"type": "x"}}}], event(), PASS, PASS),
    ("not-of-pass", [{"not": {"exact": {"type": "t"}}}], event(), FAIL, FAIL),
    ("not-not", [{"not": {"not": {"exact": {"type": "t"}}}}], event(), PASS, PASS),
    # MT: not keeps NO_FILTER; Kafka negates a predicate that holds.
    ("not-of-skipped-filter", [{"not": {"exact": {"myext": ""}}}], event(), NO_FILTER, FAIL),
    ("not-of-empty-element", [{"not": {}}], event(), NO_FILTER, FAIL),
    ("not-of-any-without-filters", [{"not": {"any": [{"exact": {"myext": ""}}]}}], event(),
     NO_FILTER, FAIL),
    # list = implicit all; NO_FILTER members are neutral in MT, FAIL blocks in Kafka.
    ("list-all-pass", [{"exact": {"type": "t"}}, {"suffix": {"source": "s"}}], event(),
     PASS, PASS),
    ("list-one-fails", [{"exact": {"type": "t"}}, {"exact": {"source": "/x"}}], event(),
     FAIL, FAIL),
    ("list-nofilter-and-pass", [{"not": {"exact": {"myext": ""}}}, {"exact": {"type": "t"}}],
     event(), PASS, FAIL),
    ("list-only-nofilter", [{"not": {}}, {"any": []}], event(), NO_FILTER, FAIL),
    # An element with nothing set: skipped in MT, a passing no-op in Kafka.
    ("list-empty-element", [{}], event(), NO_FILTER, PASS),
]  # fmt: skip


@pytest.mark.parametrize(
    ("elements", "attributes", "expected_mt", "expected_kafka"),
    [row[1:] for row in DIALECT_ROWS],
    ids=[row[0] for row in DIALECT_ROWS],
)
def test_s2_3_filters_dialects_per_class(
    elements: list[dict[str, Any]],
    attributes: dict[str, Any],
    expected_mt: FilterResult,
    expected_kafka: FilterResult,
) -> None:
    """Each dialect rule holds for MT (Go, with NO_FILTER) and Kafka (Java predicates)."""
    spec = dialects(*elements)
    assert built(spec, MT).evaluate(attributes) is expected_mt
    assert built(spec, KAFKA).evaluate(attributes) is expected_kafka

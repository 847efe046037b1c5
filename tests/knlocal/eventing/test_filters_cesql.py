"""``cesql`` Trigger filters (knative-semantics.md §2.3, EVENTING ``cesql_filter.go``).

The language itself is checked by the CESQL TCK (``tests/knlocal/eventing/cesql``);
these tests check the dialect: evaluated per event, inside ``all``, ``any`` and ``not``, and
an expression that errors never matches. Compiling at load is tests/knlocal/apis/test_filters.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from cloudevents.core.v1.event import CloudEvent

from knlocal.apis.filters import parse_filters
from knlocal.eventing.classes import KAFKA_BROKER, MT_CHANNEL_BASED_BROKER, BrokerClass
from knlocal.eventing.filters import FilterResult, build_trigger_filter

PASS = FilterResult.PASS
FAIL = FilterResult.FAIL
NO_FILTER = FilterResult.NO_FILTER
BOTH = pytest.mark.parametrize("broker_class", [MT_CHANNEL_BASED_BROKER, KAFKA_BROKER])


def event(**extra: Any) -> dict[str, Any]:
    """An event's attributes as the SDK gives them (type t, source /s, id 1)."""
    attributes: dict[str, Any] = {"type": "t", "source": "/s", "id": "1", **extra}
    return dict(CloudEvent(attributes, None).get_attributes())


def dialects(*elements: dict[str, Any]) -> dict[str, Any]:
    return {"broker": "default", "filters": list(elements)}


TYPICAL = "type = 't' AND source LIKE '/%'"

# (id, filters, attributes, expected on both classes)
ROWS: list[tuple[str, list[dict[str, Any]], dict[str, Any], FilterResult]] = [
    ("true", [{"cesql": TYPICAL}], event(), PASS),
    ("false", [{"cesql": TYPICAL}], event(type="x"), FAIL),
    ("keywords-any-case", [{"cesql": "TYPE = 't' and EXISTS Source"}], event(), PASS),
    # Spec §1.2 and cesql_filter.go: any error fails the event, whatever the value.
    ("missing-attribute-errors", [{"cesql": "myext = 'a'"}], event(), FAIL),
    ("error-under-not-still-fails", [{"cesql": "NOT (myext = 'a')"}], event(), FAIL),
    ("exists-missing-is-no-error", [{"cesql": "NOT EXISTS myext"}], event(), PASS),
    ("math-error", [{"cesql": "1 / 0 = 0"}], event(), FAIL),
    ("cast-error", [{"cesql": "NOT 10"}], event(), FAIL),
    ("unknown-function", [{"cesql": "NOPE(type)"}], event(), FAIL),
    # Spec §1.2: a value that is not a Boolean does not pass.
    ("string-result", [{"cesql": "type"}], event(), FAIL),
    ("integer-result", [{"cesql": "1"}], event(), FAIL),
    # Extensions cross binary HTTP hops as text; CESQL casts them back (spec §3.7).
    ("integer-extension", [{"cesql": "amount > 4 AND amount = 5"}], event(amount=5), PASS),
    ("boolean-extension", [{"cesql": "flag = TRUE"}], event(flag=True), PASS),
    ("absent-subject-is-missing", [{"cesql": "EXISTS subject"}], event(), FAIL),
    ("subject", [{"cesql": "subject LIKE 'us_r-%'"}], event(subject="user-7"), PASS),
    (
        "inside-all",
        [{"all": [{"exact": {"type": "t"}}, {"cesql": "id IN ('1', '2')"}]}],
        event(),
        PASS,
    ),
    (
        "inside-all-fails",
        [{"all": [{"exact": {"type": "t"}}, {"cesql": "id = '2'"}]}],
        event(),
        FAIL,
    ),
    (
        "inside-any",
        [{"any": [{"exact": {"type": "x"}}, {"cesql": "LENGTH(id) = 1"}]}],
        event(),
        PASS,
    ),
    (
        "inside-any-fails",
        [{"any": [{"exact": {"type": "x"}}, {"cesql": "id = '2'"}]}],
        event(),
        FAIL,
    ),
    ("inside-not", [{"not": {"cesql": "type = 'x'"}}], event(), PASS),
    ("inside-not-fails", [{"not": {"cesql": TYPICAL}}], event(), FAIL),
    ("with-exact", [{"exact": {"source": "/s"}}, {"cesql": "UPPER(type) = 'T'"}], event(), PASS),
]


@BOTH
@pytest.mark.parametrize(
    ("filters", "attributes", "expected"), [r[1:] for r in ROWS], ids=[r[0] for r in ROWS]
)
def test_s2_3_cesql_dialect(
    filters: list[dict[str, Any]],
    attributes: dict[str, Any],
    expected: FilterResult,
    broker_class: BrokerClass,
) -> None:
    filters_read = parse_filters(dialects(*filters))
    assert build_trigger_filter(filters_read, broker_class).evaluate(attributes) is expected


def test_s2_3_empty_cesql_is_no_filter_on_mt() -> None:
    """cesql_filter.go: an empty expression is NoFilter (the element is skipped)."""
    assert (
        build_trigger_filter(
            parse_filters(dialects({"cesql": ""})), MT_CHANNEL_BASED_BROKER
        ).evaluate(event())
        is NO_FILTER
    )

"""Go value syntax, as Knative parses the ConfigMap and the annotations (strconv, time)."""

import pytest

from knlocal.errors import ConfigError
from knlocal.serving.autoscaler.goparse import (
    is_whole_seconds,
    parse_bool,
    parse_duration,
    parse_float,
    parse_int32,
    round_half_away,
)


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [
        ("60s", 60.0),
        ("1m30s", 90.0),
        ("1.5h", 5400.0),
        ("500ms", 0.5),
        ("1500us", 0.0015),
        ("1µs", 1e-6),
        ("0", 0.0),  # a bare 0 needs no unit
        ("+5s", 5.0),
        ("-1s", -1.0),
        ("1h0m0s", 3600.0),
    ],
)
def test_durations_are_read_like_time_parse_duration(raw: str, seconds: float) -> None:
    assert parse_duration("key", raw) == pytest.approx(seconds)


@pytest.mark.parametrize("raw", ["", "60", "1d", "s", "1m30", "1.5.0s", "--1s"])
def test_what_time_parse_duration_refuses_is_refused(raw: str) -> None:
    with pytest.raises(ConfigError, match="key: invalid value"):
        parse_duration("key", raw)


@pytest.mark.parametrize(("raw", "value"), [("1e3", 1000.0), ("-0.5", -0.5), (".5", 0.5)])
def test_decimal_numbers(raw: str, value: float) -> None:
    assert parse_float("key", raw) == value


@pytest.mark.parametrize("raw", ["NaN", "inf", "0x1p-2", "1e400", "five", ""])
def test_non_finite_hexadecimal_and_text_numbers_are_refused(raw: str) -> None:
    # Simplification 6: Go would accept NaN, Inf and hexadecimal floats.
    with pytest.raises(ConfigError, match="expected"):
        parse_float("key", raw)


@pytest.mark.parametrize(("raw", "value"), [("2147483647", 2**31 - 1), ("-2147483648", -(2**31))])
def test_int32_bounds_are_inclusive(raw: str, value: int) -> None:
    assert parse_int32("key", raw) == value


@pytest.mark.parametrize("raw", ["2147483648", "-2147483649", "1.0", "0x10", ""])
def test_what_parse_int_32_refuses_is_refused(raw: str) -> None:
    with pytest.raises(ConfigError, match="expected"):
        parse_int32("key", raw)


@pytest.mark.parametrize(
    ("raw", "value"), [("t", True), ("TRUE", True), ("1", True), ("F", False), ("0", False)]
)
def test_booleans_are_read_like_strconv_parse_bool(raw: str, value: bool) -> None:
    assert parse_bool("key", raw) is value


@pytest.mark.parametrize("raw", ["yes", "on", "tRUE", ""])
def test_other_boolean_spellings_are_refused(raw: str) -> None:
    with pytest.raises(ConfigError, match="expected"):
        parse_bool("key", raw)


@pytest.mark.parametrize(
    ("value", "rounded"), [(6.5, 7.0), (0.5, 1.0), (-6.5, -7.0), (6.4, 6.0), (0.06, 0.0)]
)
def test_halves_round_away_from_zero_like_duration_round(value: float, rounded: float) -> None:
    assert round_half_away(value) == rounded


def test_whole_seconds() -> None:
    assert is_whole_seconds(60.0)
    assert is_whole_seconds(61.5 * 2)
    assert not is_whole_seconds(61.5)

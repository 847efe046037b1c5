"""Values written the way Go parses them: ``strconv`` numbers and booleans, ``time.Duration``.

Knative reads both the ``config-autoscaler`` ConfigMap (``knative.dev/pkg/configmap``) and the
autoscaling annotations with Go's parsers, so what is valid here is what Go accepts.

Simplification 6 (number syntax): Go's ``strconv.ParseFloat`` also accepts hexadecimal floats,
``Inf`` and ``NaN``; those are rejected here (a NaN target or rate would pass Knative's range
checks and then make every comparison false).
"""

import math
import re

from knlocal.errors import ConfigError

INT32_MAX = 2**31 - 1
INT32_MIN = -(2**31)

# Go strconv.ParseBool.
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})
_FLOAT_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_INT_RE = re.compile(r"[+-]?\d+")
# Go time.ParseDuration: one or more <decimal number><unit>, optional sign, or a bare "0".
_DURATION_PART_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def invalid(key: str, value: str, expected: str) -> ConfigError:
    """Build the error for a setting with an invalid value.

    :param key: the ConfigMap key or annotation that holds the value.
    :param value: the value found, as written.
    :param expected: what a valid value looks like.
    :return: the error to raise.
    """
    return ConfigError(f"{key}: invalid value {value!r}, expected {expected}")


def parse_float(key: str, raw: str) -> float:
    """Parse a decimal number the way Go's ``strconv.ParseFloat`` does (finite values only).

    :param key: the setting's name, for the error message.
    :param raw: the text to parse.
    :return: the number.
    :raises ConfigError: if ``raw`` is not a decimal number.
    """
    text = raw.strip()
    if not _FLOAT_RE.fullmatch(text):
        raise invalid(key, raw, "a decimal number")
    value = float(text)
    if not math.isfinite(value):
        raise invalid(key, raw, "a finite decimal number")
    return value


def parse_int32(key: str, raw: str) -> int:
    """Parse a base-10 32-bit integer the way Go's ``strconv.ParseInt(s, 10, 32)`` does.

    :param key: the setting's name, for the error message.
    :param raw: the text to parse.
    :return: the integer.
    :raises ConfigError: if ``raw`` is not an integer or is outside the int32 range.
    """
    text = raw.strip()
    if not _INT_RE.fullmatch(text):
        raise invalid(key, raw, "an integer")
    value = int(text)
    if not INT32_MIN <= value <= INT32_MAX:
        raise invalid(key, raw, f"an integer in [{INT32_MIN}, {INT32_MAX}]")
    return value


def parse_bool(key: str, raw: str) -> bool:
    """Parse a boolean the way Go's ``strconv.ParseBool`` does.

    :param key: the setting's name, for the error message.
    :param raw: the text to parse.
    :return: the boolean.
    :raises ConfigError: if ``raw`` is not one of Go's boolean spellings.
    """
    text = raw.strip()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise invalid(key, raw, 'a boolean ("true" or "false")')


def parse_duration(key: str, raw: str) -> float:
    """Parse a Go duration string (``"60s"``, ``"1m30s"``, ``"500ms"``) into seconds.

    :param key: the setting's name, for the error message.
    :param raw: the text to parse.
    :return: the duration in seconds (may be negative, as in Go).
    :raises ConfigError: if ``raw`` is not a Go duration.
    """
    text = raw.strip()
    sign = 1.0
    if text[:1] in ("+", "-"):
        sign = -1.0 if text[0] == "-" else 1.0
        text = text[1:]
    if text == "0":
        return 0.0
    position = 0
    total = 0.0
    while position < len(text):
        match = _DURATION_PART_RE.match(text, position)
        if match is None:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        position = match.end()
    if position == 0 or position != len(text):
        raise invalid(key, raw, 'a duration such as "60s", "1m30s" or "500ms"')
    return sign * total


def format_duration(seconds: float) -> str:
    """Render seconds for an error message, in Go's spirit (``60s``, ``0.5s``).

    :param seconds: the duration.
    :return: a short human-readable form.
    """
    return f"{seconds:g}s"


def is_whole_seconds(seconds: float) -> bool:
    """Tell whether a duration has at most second precision (Go: ``d.Round(time.Second) == d``).

    :param seconds: the duration.
    :return: true if ``seconds`` is a whole number of seconds.
    """
    return math.isclose(seconds, round(seconds), rel_tol=0.0, abs_tol=1e-9)


def round_half_away(value: float) -> float:
    """Round to the nearest integer, halves away from zero, like Go's ``Duration.Round``.

    Python's :func:`round` rounds halves to even (6.5 -> 6) where Go gives 7.

    :param value: the value to round.
    :return: the rounded value.
    """
    return math.copysign(math.floor(abs(value) + 0.5), value)

"""An event's attributes as each broker class's filters read them (knative-semantics.md §2.3).

The MT broker (Go) looks attributes up as sdk-go's ``LookupAttribute`` and renders values as
``fmt.Sprintf("%v")``; the Kafka broker (Java) reads a missing attribute as ``""`` and renders
values as ``toString()``. Times are compared as text: Go's RFC3339Nano, Java's ISO_INSTANT.
"""

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

# Go's time.Time{}.MarshalText(): what LookupAttribute returns for an event without time.
_GO_ZERO_TIME: Final = "0001-01-01T00:00:00Z"


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


def go_sprint(value: Any) -> str:
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


def java_to_string(value: Any) -> str:
    """Render a value as Java's ``Object.toString()`` would for a CloudEvent extension."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return _java_time_text(value)
    return str(value)


def go_lookup(attributes: Mapping[str, Any], name: str) -> tuple[bool, Any]:
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


def java_lookup(attributes: Mapping[str, Any], name: str) -> str:
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
    return "" if value is None else java_to_string(value)

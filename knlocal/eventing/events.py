"""The one module of `knlocal` that imports the CloudEvents SDK (2.x, `cloudevents.core`)."""

import re
from collections.abc import Mapping
from typing import Any

from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings import http as ce_http
from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.exceptions import BaseCloudEventException
from cloudevents.core.formats.json import JSONFormat

from knlocal import jsonbody
from knlocal.errors import LocalRuntimeError

__all__ = [
    "BaseCloudEvent",
    "IncompleteEvent",
    "InvalidEvent",
    "as_binary_hop",
    "decode_http",
    "decode_kafka",
    "encode_binary",
    "encode_kafka",
    "encode_structured",
    "is_cloudevent",
    "replace_attributes",
]

_FORMAT = JSONFormat()
#: Largest event the broker ingress accepts, in bytes (its body limit).
MAX_EVENT_BYTES = 4 * 1024 * 1024


class InvalidEvent(LocalRuntimeError, ValueError):
    """A request or record is not a valid CloudEvent."""


class IncompleteEvent(InvalidEvent):
    """A well-formed CloudEvent that lacks a required attribute.

    sdk-go's `binding.ToEvent` decodes it; only `event.Validate()` refuses it (§2.2).
    """


# Context attributes of CloudEvents 1.0 and 0.3; every other attribute is an extension.
_CONTEXT_ATTRIBUTES = frozenset(
    {"specversion", "id", "source", "type", "datacontenttype", "dataschema", "subject", "time"}
    | {"schemaurl", "datacontentencoding"}
)
_INT32_MIN = -(2**31)
_INT32_MAX = 2**31 - 1


def is_cloudevent(headers: Mapping[str, str]) -> bool:
    """Whether headers announce a CloudEvent: binary (`ce-*`) or structured content type."""
    for key, value in headers.items():
        lowered = key.lower()
        if lowered.startswith("ce-"):
            return True
        if lowered == "content-type" and value.startswith("application/cloudevents+json"):
            return True
    return False


def decode_http(headers: Mapping[str, str], body: bytes) -> BaseCloudEvent:
    """Decode a binary- or structured-mode HTTP CloudEvent.

    :raises InvalidEvent: saying what is missing or malformed.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    if not is_cloudevent(lowered):
        raise InvalidEvent(
            "expected a CloudEvent: binary mode (ce-specversion, ce-id, ce-source, ce-type"
            " headers) or structured mode (Content-Type: application/cloudevents+json)"
        )
    try:
        if any(k.startswith("ce-") for k in lowered):
            _check_depth(lowered.get("content-type"), body)
        _check_required(lowered, body)
        return ce_http.from_http(ce_http.HTTPMessage(headers=lowered, body=body), _FORMAT)
    except InvalidEvent:
        raise
    except BaseCloudEventException as exc:
        raise InvalidEvent(f"not a valid CloudEvent: {exc}") from exc
    except (KeyError, TypeError, ValueError, AttributeError, RecursionError) as exc:
        # RecursionError: JSON nested too deep for the parser; still the sender's fault (§2.2).
        raise InvalidEvent(f"not a valid CloudEvent: {exc!r}") from exc


def _loads(body: bytes) -> Any:
    """A structured event's JSON, bounded (the SDK's own decoder would recurse without limit)."""
    try:
        return jsonbody.loads(body, max_bytes=MAX_EVENT_BYTES, what="structured CloudEvent body")
    except jsonbody.JsonBodyError as exc:
        raise InvalidEvent(exc.message) from exc


def _check_depth(content_type: str | None, body: bytes) -> None:
    """Refuse binary JSON data too large or deep, before the SDK decodes it without a bound.

    Data that is not JSON at all stays the SDK's to handle: it keeps such data as a string.
    """
    if body and re.match(_FORMAT.JSON_CONTENT_TYPE_PATTERN, content_type or "application/json"):
        try:
            jsonbody.loads(body, max_bytes=MAX_EVENT_BYTES, what="CloudEvent data")
        except jsonbody.JsonBodyError as exc:
            if not exc.syntax:
                raise InvalidEvent(exc.message) from exc


def _check_required(headers: Mapping[str, str], body: bytes) -> None:
    """§2.2: refuse an event without id, source, type or specversion (Knative's Validate()).

    The SDK's decoder fills a missing `id` (a random UUID) and `specversion` in; a random id would
    defeat deduplication by source + id, and a reply without one must fail the delivery (§2.6).
    """
    if any(k.startswith("ce-") for k in headers):
        present = {k[3:] for k, v in headers.items() if k.startswith("ce-") and v}
    else:
        parsed = _loads(body)
        if not isinstance(parsed, dict):
            raise InvalidEvent(
                f"structured CloudEvent body must be a JSON object; found {type(parsed).__name__}"
            )
        present = {k for k, v in parsed.items() if v not in (None, "")}
    missing = [a for a in ("id", "source", "type", "specversion") if a not in present]
    if missing:
        raise IncompleteEvent(
            f"not a valid CloudEvent: missing required attribute(s) {', '.join(missing)}"
        )


def encode_binary(event: BaseCloudEvent) -> tuple[dict[str, str], bytes]:
    """Encode an event in HTTP binary content mode: `ce-*` headers, data as the body."""
    message = ce_http.to_binary(event, _FORMAT)
    return message.headers, message.body


def encode_structured(event: BaseCloudEvent) -> tuple[dict[str, str], bytes]:
    """Encode an event in HTTP structured content mode (`application/cloudevents+json`)."""
    message = ce_http.to_structured(event, _FORMAT)
    return message.headers, message.body


def _go_header_text(name: str, value: Any) -> str:
    """An extension value as sdk-go's `types.Format` writes it into a binary-mode header.

    Booleans are `true`/`false`; numbers become int32 (a float is truncated, as `Validate`
    converts it); strings stay. Anything else cannot be written: Knative fails the hop.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float) and not isinstance(value, bool):
        if _INT32_MIN <= value <= _INT32_MAX:  # False for NaN too
            return str(int(value))
        raise InvalidEvent(f"extension {name}: expected an integer in int32 range, found {value!r}")
    raise InvalidEvent(
        f"extension {name}: expected a string, boolean or integer value, found"
        f" {type(value).__name__} {value!r}"
    )


def as_binary_hop(event: BaseCloudEvent) -> BaseCloudEvent:
    """The event as it is after a binary-mode HTTP hop between sdk-go components.

    Every extension value becomes the string sdk-go writes in its `ce-` header, so that
    a structured event's `"amount": 5, "flag": true` reads `"5"` and `"true"` afterwards
    (knative-semantics.md §2.3, corrections: ingress → channel → broker-filter are binary hops).

    :raises InvalidEvent: an extension value has no CloudEvents type (e.g. a JSON object).
    """
    extensions = {
        name: value
        for name, value in event.get_attributes().items()
        if name not in _CONTEXT_ATTRIBUTES and not isinstance(value, str)
    }
    if not extensions:
        return event
    # A JSON null is an absent attribute (CloudEvents JSON format §3.1).
    absent = tuple(name for name, value in extensions.items() if value is None)
    changed = {
        name: _go_header_text(name, value)
        for name, value in extensions.items()
        if value is not None
    }
    return replace_attributes(event, changed, remove=absent)


def encode_kafka(event: BaseCloudEvent) -> tuple[list[tuple[str, bytes]], bytes | None, bytes]:
    """Encode an event as a Kafka record in binary content mode, as Knative's Kafka broker does.

    :return: the headers (`ce_*`, `content-type`), the key (the `partitionkey` extension, §3.1)
        and the value.
    """
    message = ce_kafka.to_binary(event, _FORMAT)
    key = message.key.encode() if isinstance(message.key, str) else message.key
    # The SDK writes a boolean extension as Python's `True`; Knative's Java receiver, as every
    # CloudEvents SDK, writes `true` (CloudEvents spec, type system: Boolean "true" / "false").
    booleans = {
        f"ce_{name}": b"true" if value else b"false"
        for name, value in event.get_attributes().items()
        if isinstance(value, bool)
    }
    headers = [(name, booleans.get(name, value)) for name, value in message.headers.items()]
    return headers, key, message.value


def decode_kafka(
    headers: list[tuple[str, bytes]], key: bytes | None, value: bytes | None
) -> BaseCloudEvent:
    """Decode a Kafka record (binary or structured content mode).

    :raises InvalidEvent: the record is not a CloudEvent.
    """
    try:
        message = ce_kafka.KafkaMessage(headers=dict(headers), key=key, value=value or b"")
        return ce_kafka.from_kafka(message, _FORMAT)
    except (BaseCloudEventException, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidEvent(f"Kafka record is not a valid CloudEvent: {exc!r}") from exc


def replace_attributes(
    event: BaseCloudEvent, set_: Mapping[str, Any] | None = None, remove: tuple[str, ...] = ()
) -> BaseCloudEvent:
    """Return a copy of `event` with attributes set or removed; `data` is untouched (§2.1).

    The copy has the event's own class, so a CloudEvents 0.3 event stays one (§2.2).

    :raises InvalidEvent: the SDK refuses the new attributes.
    """
    attributes = {k: v for k, v in event.get_attributes().items() if k not in remove}
    attributes.update(set_ or {})
    try:
        return type(event)(attributes, event.get_data())
    except BaseCloudEventException as exc:
        raise InvalidEvent(f"not a valid CloudEvent: {exc}") from exc

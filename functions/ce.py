"""The one module of `functions` that imports the CloudEvents SDK (2.x, the `cloudevents.core` API).

Keeping the SDK behind these few helpers means a change of SDK major version touches one file.
"""

import re
import uuid
from collections.abc import Mapping
from typing import Any

from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings import http as ce_http
from cloudevents.core.exceptions import BaseCloudEventException
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from functions import jsonbody, tracing
from functions.errors import InvalidEvent

__all__ = [
    "BaseCloudEvent",
    "CloudEvent",
    "decode_http",
    "encode_binary",
    "encode_structured",
    "new_event",
]

_FORMAT = JSONFormat()
#: Namespace of the deterministic event ids: the same input event always yields the same reply id,
#: so a duplicate delivery produces a reply a consumer can deduplicate by `source` + `id`.
_REPLY_ID_NAMESPACE = uuid.UUID("6f1c3a52-6f5e-4d7a-9a36-2f4f5f1d2b10")
#: The attributes every CloudEvent must carry (CloudEvents 1.0 "REQUIRED").
_REQUIRED_ATTRIBUTES = ("id", "source", "type", "specversion")


def new_event(
    event_type: str,
    source: str,
    data: Mapping[str, Any],
    *,
    operation_id: str,
    caused_by: BaseCloudEvent | None = None,
) -> CloudEvent:
    """Build an event of the flow, with the `operationid` and `partitionkey` extensions.

    :param event_type: a type from the event catalog.
    :param source: the producing service's source URI reference.
    :param data: the event's JSON data.
    :param operation_id: the operation the event belongs to.
    :param caused_by: the event this one replies to; when given, the id is derived from it, so that
        handling a duplicate of `caused_by` yields an identical reply.
    :return: a CloudEvent with JSON data.
    """
    if caused_by is not None:
        event_id = str(uuid.uuid5(_REPLY_ID_NAMESPACE, f"{caused_by.get_id()}/{event_type}"))
    else:
        event_id = str(uuid.uuid4())
    return CloudEvent(
        {
            "id": event_id,
            "source": source,
            "type": event_type,
            "datacontenttype": "application/json",
            "operationid": operation_id,
            "partitionkey": operation_id,
            # The CloudEvents Distributed Tracing extension: the trace of the request served now.
            **tracing.event_extensions(),
        },
        dict(data),
    )


def decode_http(headers: Mapping[str, str], body: bytes) -> BaseCloudEvent:
    """Decode a binary- or structured-mode HTTP CloudEvent.

    :param headers: the request headers (any case).
    :param body: the request body.
    :return: the event.
    :raises InvalidEvent: with a message saying what is missing or malformed.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    binary = any(k.startswith("ce-") for k in lowered)
    content_type = lowered.get("content-type", "")
    if not binary and not content_type.startswith("application/cloudevents+json"):
        raise InvalidEvent(
            "expected a CloudEvent: binary mode (ce-specversion, ce-id, ce-source, ce-type headers)"
            " or structured mode (Content-Type: application/cloudevents+json); found neither"
            + (f" (Content-Type: {content_type})" if content_type else "")
        )
    try:
        if binary:
            _check_depth(lowered.get("content-type"), body)
        _check_required(lowered, body, binary=binary)
        return ce_http.from_http(ce_http.HTTPMessage(headers=lowered, body=body), _FORMAT)
    except UnicodeDecodeError as exc:
        raise InvalidEvent(f"CloudEvent body is not UTF-8: {exc}") from exc
    except BaseCloudEventException as exc:
        raise InvalidEvent(f"not a valid CloudEvent: {exc}") from exc
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidEvent(f"not a valid CloudEvent: {exc!r}") from exc


def _loads(body: bytes) -> Any:
    """A structured event's JSON, bounded (the SDK's own decoder would recurse without limit)."""
    try:
        return jsonbody.loads(body, what="structured CloudEvent body")
    except jsonbody.JsonBodyError as exc:
        raise InvalidEvent(exc.message) from exc


def _check_depth(content_type: str | None, body: bytes) -> None:
    """Refuse binary JSON data too large or deep, before the SDK decodes it without a bound.

    Data that is not JSON at all stays the SDK's to handle: it keeps such data as a string.
    """
    if body and re.match(_FORMAT.JSON_CONTENT_TYPE_PATTERN, content_type or "application/json"):
        try:
            jsonbody.loads(body, what="CloudEvent data")
        except jsonbody.JsonBodyError as exc:
            if not exc.syntax:
                raise InvalidEvent(exc.message) from exc


def _check_required(headers: Mapping[str, str], body: bytes, *, binary: bool) -> None:
    """Refuse an event that lacks a required attribute.

    The SDK's constructor fills a missing `id` (a random UUID) and `specversion` in, a producer's
    convenience; a receiver must refuse such an event instead, or a duplicate delivery would get a
    new id and a different reply id.
    """
    if binary:
        present = {k[3:] for k, v in headers.items() if k.startswith("ce-") and v}
    else:
        parsed = _loads(body)
        if not isinstance(parsed, dict):
            raise InvalidEvent(
                f"structured CloudEvent body must be a JSON object; found {type(parsed).__name__}"
            )
        present = {k for k, v in parsed.items() if v not in (None, "")}
    missing = [name for name in _REQUIRED_ATTRIBUTES if name not in present]
    if missing:
        headers_hint = f" (headers {', '.join(f'ce-{m}' for m in missing)})" if binary else ""
        raise InvalidEvent(
            f"not a valid CloudEvent: missing required attribute(s) {', '.join(missing)}"
            + headers_hint
        )


def encode_binary(event: BaseCloudEvent) -> tuple[dict[str, str], bytes]:
    """Encode an event in binary content mode.

    :return: the headers (`ce-*` and `content-type`) and the body.
    """
    message = ce_http.to_binary(event, _FORMAT)
    return message.headers, message.body


def encode_structured(event: BaseCloudEvent) -> tuple[dict[str, str], bytes]:
    """Encode an event in structured content mode (`application/cloudevents+json`).

    :return: the headers and the body.
    """
    message = ce_http.to_structured(event, _FORMAT)
    return message.headers, message.body

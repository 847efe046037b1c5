"""The extensions an event carries to the dead-letter sink, per broker class (§2.8).

Pure: no I/O, no clock, no state.
"""

import base64
import re
from collections.abc import Mapping
from typing import Final

from knlocal.eventing.classes import BrokerClass, DataPlane

__all__ = [
    "KNATIVE_ERROR_CODE",
    "KNATIVE_ERROR_DATA",
    "KNATIVE_ERROR_DATA_MAX",
    "KNATIVE_ERROR_DEST",
    "dead_letter_extensions",
]

#: Extension naming the destination that failed (knative-semantics.md §2.8).
KNATIVE_ERROR_DEST: Final = "knativeerrordest"
#: Extension holding the last HTTP status (§2.8).
KNATIVE_ERROR_CODE: Final = "knativeerrorcode"
#: Extension holding the base64 of the last response body (§2.8).
KNATIVE_ERROR_DATA: Final = "knativeerrordata"
#: Cap on ``knativeerrordata``: characters of base64 (MT) or bytes of body (Kafka) (§2.8).
KNATIVE_ERROR_DATA_MAX: Final = 1024

# Header prefix the Kafka broker turns into extensions of a dead-lettered event (§2.8).
_KAFKA_ERROR_HEADER_PREFIX: Final = "kne-"

# CloudEvents extension names: lowercase letters and digits (the Java SDK enforces this).
_EXTENSION_NAME: Final = re.compile(r"^[a-z0-9]+$")
# Names a header-derived extension must not take: context attributes and "data".
_RESERVED_NAMES: Final = frozenset(
    {"specversion", "id", "source", "type", "subject", "time", "datacontenttype", "dataschema"}
    | {"data"}
)


def dead_letter_extensions(
    *,
    destination: str,
    status: int | None,
    body: bytes,
    headers: Mapping[str, str],
    broker_class: BrokerClass,
) -> dict[str, str]:
    """Return the extensions to add to an event sent to the dead-letter sink (§2.8).

    * MT (Go): ``knativeerrordest``, ``knativeerrorcode`` (``500`` when no response
      arrived) and ``knativeerrordata``: the base64 of the body, cut to 1024 characters.
      With no response, the body is Go's ``dispatch error: <text>``. Headers are unused.
    * Kafka (Java): ``knativeerrordest`` only when no response arrived; otherwise also
      ``knativeerrorcode``, every response header named ``kne-<name>`` as extension
      ``<name>`` (lower-cased), then ``knativeerrordata``: the base64 of the body's first
      1024 bytes. Header-derived names that are not valid extension names (Java refuses
      them) or that are reserved (a context attribute, ``data``) are left out.

    :param destination: URL of the destination that failed (the subscriber).
    :param status: last HTTP status, or ``None`` when no response arrived.
    :param body: last response body; when ``status`` is ``None``, the transport error's
        text (e.g. ``b"connection refused"``).
    :param headers: last response headers.
    :param broker_class: class of the Broker.
    :return: extension name to value; values are strings, as they travel in headers.
    """
    if broker_class.data_plane is DataPlane.GO:
        if status is None:
            status, body = 500, b"dispatch error: " + body
        encoded = base64.b64encode(body).decode("ascii")
        return {
            KNATIVE_ERROR_DEST: destination,
            KNATIVE_ERROR_CODE: str(status),
            KNATIVE_ERROR_DATA: encoded[:KNATIVE_ERROR_DATA_MAX],
        }

    extensions = {KNATIVE_ERROR_DEST: destination}
    if status is None:
        return extensions
    extensions[KNATIVE_ERROR_CODE] = str(status)
    for header, value in headers.items():
        if header.lower().startswith(_KAFKA_ERROR_HEADER_PREFIX):
            name = header[len(_KAFKA_ERROR_HEADER_PREFIX) :].lower()
            if _EXTENSION_NAME.match(name) and name not in _RESERVED_NAMES:
                extensions[name] = value
    data = body[:KNATIVE_ERROR_DATA_MAX]
    extensions[KNATIVE_ERROR_DATA] = base64.b64encode(data).decode("ascii")
    return extensions

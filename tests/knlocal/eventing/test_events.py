"""Encoding events for the Kafka backend (knlocal/eventing/events.py)."""

import json

from knlocal.eventing.events import decode_http, decode_kafka, encode_kafka

STRUCTURED = {"content-type": "application/cloudevents+json"}


def test_kafka_record_headers_write_booleans_as_the_cloudevents_type_system_does() -> None:
    """§3.1: binary records; a Boolean is `true`/`false` (Java's receiver writes the same)."""
    body = {
        "specversion": "1.0",
        "id": "1",
        "source": "/s",
        "type": "t",
        "flag": True,
        "off": False,
    }
    headers, _, _ = encode_kafka(decode_http(STRUCTURED, json.dumps(body).encode()))
    assert ("ce_flag", b"true") in headers
    assert ("ce_off", b"false") in headers
    event = decode_kafka(headers, None, b"")
    assert event.get_attributes()["flag"] == "true"

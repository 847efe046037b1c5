"""Dead-letter extensions per broker class, against knative-semantics.md §2.8.

Every expected value is worked out by hand from §2.8; the arithmetic is in the comments.
"""

from __future__ import annotations

from typing import Any

import pytest

from knlocal.eventing.classes import KAFKA_BROKER, MT_CHANNEL_BASED_BROKER
from knlocal.eventing.deadletter import dead_letter_extensions

MT = MT_CHANNEL_BASED_BROKER
KAFKA = KAFKA_BROKER

SUBSCRIBER = "http://user-created.default.svc.cluster.local/"


# --- §2.8 dead-letter extensions ----------------------------------------------------------------

# 767 = 3·255 + 2 bytes of "a": 255 groups "YWFh" then "YWE=" → 1024 characters exactly.
A767 = b"a" * 767
# 768 = 3·256 bytes: 256·"YWFh" = 1024 characters.
A768 = b"a" * 768
# 1024 = 3·341 + 1 bytes: 341·"YWFh" + "YQ==" = 1368 characters.
A1024 = b"a" * 1024

DLS_ROWS: list[tuple[str, str, int | None, bytes, dict[str, str], dict[str, str]]] = [
    # MT: dest, code as text, base64 of the body ("boom" → "Ym9vbQ=="); headers unused.
    ("mt-503", MT, 503, b"boom", {"kne-reason": "quota"},
     {"knativeerrordest": SUBSCRIBER, "knativeerrorcode": "503", "knativeerrordata": "Ym9vbQ=="}),
    ("mt-404-empty-body", MT, 404, b"", {},
     {"knativeerrordest": SUBSCRIBER, "knativeerrorcode": "404", "knativeerrordata": ""}),
    # MT no response: code 500, body "dispatch error: refused":
    # "dis"→ZGlz "pat"→cGF0 "ch "→Y2gg "err"→ZXJy "or:"→b3I6 " re"→IHJl "fus"→ZnVz "ed"→ZWQ=
    ("mt-transport-error", MT, None, b"refused", {},
     {"knativeerrordest": SUBSCRIBER, "knativeerrorcode": "500",
      "knativeerrordata": "ZGlzcGF0Y2ggZXJyb3I6IHJlZnVzZWQ="}),
    # MT truncates the base64 text to 1024 characters.
    ("mt-767-bytes-fit", MT, 500, A767, {},
     {"knativeerrordest": SUBSCRIBER, "knativeerrorcode": "500",
      "knativeerrordata": "YWFh" * 255 + "YWE="}),
    ("mt-768-bytes-fit", MT, 500, A768, {},
     {"knativeerrordest": SUBSCRIBER, "knativeerrorcode": "500",
      "knativeerrordata": "YWFh" * 256}),
    ("mt-1024-bytes-cut-to-1024-chars", MT, 500, A1024, {},
     {"knativeerrordest": SUBSCRIBER, "knativeerrorcode": "500",
      "knativeerrordata": "YWFh" * 256}),
    # Kafka: base64 of the first 1024 bytes, so up to 1368 characters.
    ("kafka-1024-bytes", KAFKA, 500, A1024, {},
     {"knativeerrordest": SUBSCRIBER, "knativeerrorcode": "500",
      "knativeerrordata": "YWFh" * 341 + "YQ=="}),
    ("kafka-2000-bytes-cut-to-1024", KAFKA, 500, b"a" * 2000, {},
     {"knativeerrordest": SUBSCRIBER, "knativeerrorcode": "500",
      "knativeerrordata": "YWFh" * 341 + "YQ=="}),
    ("kafka-768-bytes", KAFKA, 502, A768, {},
     {"knativeerrordest": SUBSCRIBER, "knativeerrorcode": "502",
      "knativeerrordata": "YWFh" * 256}),
    ("kafka-empty-body", KAFKA, 404, b"", {},
     {"knativeerrordest": SUBSCRIBER, "knativeerrorcode": "404", "knativeerrordata": ""}),
    # Kafka: no response (timeout) ⇒ only the destination.
    ("kafka-transport-error", KAFKA, None, b"timeout", {"kne-reason": "x"},
     {"knativeerrordest": SUBSCRIBER}),
    # Kafka: kne-* headers become extensions, prefix stripped (any case), name lower-cased;
    # invalid or reserved names are left out; other headers are ignored.
    ("kafka-kne-headers", KAFKA, 429, b"boom",
     {"Kne-Reason": "quota", "KNE-RETRYIN": "5", "x-other": "no", "kne-": "empty",
      "kne-bad-name": "x", "kne-type": "evil", "kne-data": "evil"},
     {"knativeerrordest": SUBSCRIBER, "knativeerrorcode": "429", "reason": "quota",
      "retryin": "5", "knativeerrordata": "Ym9vbQ=="}),
    # Java puts dest and code, then headers (which may overwrite them), then data.
    ("kafka-kne-header-order", KAFKA, 500, b"boom",
     {"kne-knativeerrordest": "http://elsewhere/", "kne-knativeerrordata": "lost"},
     {"knativeerrordest": "http://elsewhere/", "knativeerrorcode": "500",
      "knativeerrordata": "Ym9vbQ=="}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("broker_class", "status", "body", "headers", "expected"),
    [row[1:] for row in DLS_ROWS],
    ids=[row[0] for row in DLS_ROWS],
)
def test_s2_8_dead_letter_extensions_per_class(
    broker_class: str,
    status: int | None,
    body: bytes,
    headers: dict[str, str],
    expected: dict[str, str],
) -> None:
    """The error extensions follow the Go or Java dispatcher exactly."""
    extensions = dead_letter_extensions(
        destination=SUBSCRIBER, status=status, body=body, headers=headers, broker_class=broker_class
    )
    assert extensions == expected


def test_s2_8_truncated_lengths() -> None:
    """MT caps the text at 1024 characters; Kafka caps the body at 1024 bytes (1368 chars)."""
    common: dict[str, Any] = {"destination": SUBSCRIBER, "status": 500, "headers": {}}
    mt = dead_letter_extensions(body=b"\xff" * 5000, broker_class=MT, **common)
    kafka = dead_letter_extensions(body=b"\xff" * 5000, broker_class=KAFKA, **common)
    assert len(mt["knativeerrordata"]) == 1024
    assert len(kafka["knativeerrordata"]) == 1368  # 4·⌈1024/3⌉ = 4·342

"""functions/jsonbody.py: JSON bodies bounded in size and depth, with messages that say which."""

import pytest

from functions.errors import InvalidRequest
from functions.jsonbody import MAX_DEPTH, JsonBodyError, loads


def test_decodes_a_body_within_the_bounds() -> None:
    assert loads(b'{"name": ["a", {"b": 1}]}') == {"name": ["a", {"b": 1}]}


@pytest.mark.parametrize("levels", [MAX_DEPTH + 1, 900, 5000])
def test_too_deep_is_refused_never_a_recursion_error(levels: int) -> None:
    with pytest.raises(JsonBodyError, match=f"nested deeper than {MAX_DEPTH} levels") as caught:
        loads(b"[" * levels + b"]" * levels)
    assert not caught.value.syntax
    assert caught.value.status == 400


def test_exactly_max_depth_is_accepted() -> None:
    assert loads(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH) is not None


def test_too_large_is_refused_before_decoding() -> None:
    with pytest.raises(JsonBodyError, match="CloudEvent data larger than 10 bytes; found 11"):
        loads(b'"123456789"', max_bytes=10, what="CloudEvent data")


@pytest.mark.parametrize("body", [b"{", b"\xff", b""])
def test_not_json_is_a_syntax_error_and_an_invalid_request(body: bytes) -> None:
    with pytest.raises(InvalidRequest, match="body is not valid JSON") as caught:
        loads(body)
    assert isinstance(caught.value, JsonBodyError)
    assert caught.value.syntax

"""knlocal/jsonbody.py: the runtime's JSON bodies, bounded in size and depth."""

import pytest

from knlocal.errors import LocalRuntimeError
from knlocal.jsonbody import MAX_DEPTH, JsonBodyError, loads


def test_decodes_a_body_within_the_bounds() -> None:
    assert loads(b'{"a": [1, 2]}', max_bytes=100) == {"a": [1, 2]}


@pytest.mark.parametrize("levels", [MAX_DEPTH + 1, 5000])
def test_too_deep_is_refused_never_a_recursion_error(levels: int) -> None:
    body = b'{"d":' * levels + b"1" + b"}" * levels
    with pytest.raises(JsonBodyError, match=f"nested deeper than {MAX_DEPTH} levels") as caught:
        loads(body, max_bytes=len(body))
    assert isinstance(caught.value, LocalRuntimeError)
    assert not caught.value.syntax


def test_too_large_is_refused() -> None:
    with pytest.raises(JsonBodyError, match="body larger than 2 bytes; found 3"):
        loads(b"123", max_bytes=2)


def test_not_json_is_a_syntax_error() -> None:
    with pytest.raises(JsonBodyError, match="body is not valid JSON") as caught:
        loads(b"{", max_bytes=10)
    assert caught.value.syntax

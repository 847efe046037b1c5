"""Issue 11: every edge of the running runtime answers bad input with a clear 4xx JSON error.

One runtime (tests/knlocal/harness.py) with a short read timeout serves the module: the public
ingress (and through it the function instances), the broker ingress and the admin endpoint, as a
hostile client reaches them over real loopback sockets.
"""

import http.client
import json
import socket
import sqlite3
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from jsonschema import Draft202012Validator

from tests.knlocal.harness import ROOT, WAIT_SECONDS, Runtime, start_runtime

pytestmark = pytest.mark.e2e

#: The runtime's READ_TIMEOUT_SECONDS here: short, so that the slow-client tests are quick.
READ_TIMEOUT = 2
#: `{"name": [[[…]]]}`, 5000 levels: about 10 KB, far below every size limit.
DEEP = b'{"name":' + b"[" * 5000 + b"]" * 5000 + b"}"
CE_HEADERS = {
    "ce-specversion": "1.0",
    "ce-id": "deep-1",
    "ce-source": "/tests/bad-input",
    "ce-type": "dev.knuser.tests.deep",
    "Content-Type": "application/json",
}


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    with start_runtime(
        tmp_path_factory.mktemp("bad-input-data"), READ_TIMEOUT_SECONDS=str(READ_TIMEOUT)
    ) as rt:
        yield rt


def _call(
    base: str,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One request with `path` sent exactly as given (http.client does not normalise it)."""
    url = urlsplit(base)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=WAIT_SECONDS)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def _json_error(status: int, headers: dict[str, str], body: bytes, expected: int) -> str:
    """Assert a JSON error `{"error": "…"}` with status `expected`; return its message."""
    assert status == expected, body
    assert headers.get("Content-Type", "").startswith("application/json"), (headers, body)
    message = json.loads(body)["error"]
    assert isinstance(message, str)
    assert message
    return message


def _operations(rt: Runtime) -> int:
    path = rt.data_dir / "operations.sqlite3"
    if not path.exists():
        return 0
    with sqlite3.connect(path) as db:
        count: int = db.execute("SELECT COUNT(*) FROM records").fetchone()[0]
        return count


def test_deeply_nested_body_to_post_users_is_400(runtime: Runtime) -> None:
    before = _operations(runtime)
    status, headers, body = _call(
        runtime.ingress, "POST", "/users", DEEP, {"Content-Type": "application/json"}
    )
    assert "nested deeper than" in _json_error(status, headers, body, 400)
    assert _operations(runtime) == before


@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_deeply_nested_event_to_broker_ingress_is_400(runtime: Runtime, mode: str) -> None:
    """knative-semantics.md §2.2: an event the broker cannot decode is 400, never 500."""
    if mode == "binary":
        headers, body = CE_HEADERS, DEEP
    else:
        attributes = {k[3:]: v for k, v in CE_HEADERS.items() if k.startswith("ce-")}
        headers = {"Content-Type": "application/cloudevents+json"}
        body = json.dumps(attributes)[:-1].encode() + b',"data":' + DEEP + b"}"
    status, response_headers, response = _call(
        runtime.broker, "POST", urlsplit(runtime.broker).path, body, headers
    )
    assert "nested deeper than" in _json_error(status, response_headers, response, 400)


def test_client_400_at_broker_ingress_is_one_warning_line(runtime: Runtime) -> None:
    marker = f"marker-{uuid.uuid4()}"
    headers = {**CE_HEADERS, "ce-id": marker}
    status, response_headers, body = _call(
        runtime.broker, "POST", urlsplit(runtime.broker).path, DEEP, headers
    )
    _json_error(status, response_headers, body, 400)
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline and not any("refused" in line for line in runtime.output):
        time.sleep(0.05)
    refused = [line for line in runtime.output if "refused an event" in line]
    assert refused, runtime.output
    assert all("WARNING" in line for line in refused), refused
    assert not any("Traceback" in line for line in runtime.output), runtime.output


@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_deeply_nested_event_straight_to_a_function_is_400(runtime: Runtime, mode: str) -> None:
    """The ingress routes a cluster-local Host straight to that Service (no broker in between)."""
    if mode == "binary":
        headers, body = dict(CE_HEADERS), DEEP
    else:
        attributes = {k[3:]: v for k, v in CE_HEADERS.items() if k.startswith("ce-")}
        headers = {"Content-Type": "application/cloudevents+json"}
        body = json.dumps(attributes)[:-1].encode() + b',"data":' + DEEP + b"}"
    headers["Host"] = "user-create.default.svc.cluster.local"
    status, response_headers, response = _call(runtime.ingress, "POST", "/", body, headers)
    assert "nested deeper than" in _json_error(status, response_headers, response, 400)


def test_path_with_a_newline_is_a_json_404(runtime: Runtime) -> None:
    status, headers, body = _call(runtime.ingress, "GET", "/operations/%C3%B6%0A%25%C2%BAc")
    _json_error(status, headers, body, 404)


def test_dot_segments_are_removed_before_routing(runtime: Runtime) -> None:
    """Routed on the normalised path, as Istio's gateway does: `/health/readiness` is no route."""
    status, headers, body = _call(runtime.ingress, "GET", "/operations/../health/readiness")
    _json_error(status, headers, body, 404)
    status, headers, body = _call(runtime.ingress, "GET", "/operations/%2e%2e/health/readiness")
    _json_error(status, headers, body, 404)


def test_twenty_megabyte_body_is_a_json_413(runtime: Runtime) -> None:
    before = _operations(runtime)
    status, headers, body = _call(
        runtime.ingress,
        "POST",
        "/users",
        b"x" * (20 * 1024 * 1024),
        {"Content-Type": "application/json"},
    )
    _json_error(status, headers, body, 413)
    assert _operations(runtime) == before


def test_body_over_the_function_limit_is_a_json_413(runtime: Runtime) -> None:
    """Under the ingress's limit but over operation-create's (64 KiB, MAX_BODY_BYTES)."""
    name = "x" * (100 * 1024)
    status, headers, body = _call(
        runtime.ingress,
        "POST",
        "/users",
        json.dumps({"name": name}).encode(),
        {"Content-Type": "application/json"},
    )
    _json_error(status, headers, body, 413)


@pytest.mark.parametrize(
    ("listener", "method", "path", "expected"),
    [
        ("ingress", "DELETE", "/users", 405),
        ("ingress", "GET", "/nowhere", 404),
        ("broker", "GET", "/default/default", 405),
        ("broker", "POST", "/default/nope", 404),
        ("admin", "GET", "/nowhere", 404),
        ("admin", "POST", "/status", 405),
    ],
)
def test_framework_errors_are_json_on_every_listener(
    runtime: Runtime, listener: str, method: str, path: str, expected: int
) -> None:
    base = {"ingress": runtime.ingress, "broker": runtime.broker, "admin": runtime.admin}[listener]
    status, headers, body = _call(base, method, path, b"{}" if method == "POST" else None)
    _json_error(status, headers, body, expected)
    if expected == 405:
        assert headers.get("Allow"), headers


def test_oversized_event_to_broker_ingress_is_a_json_413(runtime: Runtime) -> None:
    status, headers, body = _call(
        runtime.broker, "POST", urlsplit(runtime.broker).path, b"x" * (5 * 1024 * 1024), CE_HEADERS
    )
    _json_error(status, headers, body, 413)


def test_blank_name_means_what_the_openapi_says(runtime: Runtime) -> None:
    """Blank is white space by `str.isspace()`: U+0085 is blank, U+FEFF (not white space) is not.

    The OpenAPI's pattern and the running service agree on both.
    """
    spec = yaml.safe_load((ROOT / "functions" / "openapi.yaml").read_text(encoding="utf-8"))
    schema = Draft202012Validator(spec["components"]["schemas"]["CreateUserRequest"])
    for name, accepted in (("\u0085", False), (" \u3000\t", False), ("\ufeff", True)):
        assert schema.is_valid({"name": name}) is accepted
        status, headers, body = _call(
            runtime.ingress,
            "POST",
            "/users",
            json.dumps({"name": name}).encode(),
            {"Content-Type": "application/json"},
        )
        if accepted:
            assert status == 202, body
        else:
            _json_error(status, headers, body, 400)


def _slow_client(address: tuple[str, int], data: bytes) -> socket.socket:
    client = socket.create_connection(address, timeout=WAIT_SECONDS)
    client.sendall(data)
    return client


def _closed_after(client: socket.socket) -> float:
    """Seconds until the server closes `client`."""
    started = time.monotonic()
    while client.recv(65536):
        pass
    return time.monotonic() - started


def test_unfinished_headers_are_closed_after_the_read_timeout(runtime: Runtime) -> None:
    url = urlsplit(runtime.ingress)
    with _slow_client(
        (url.hostname or "", url.port or 0), b"GET /users HTTP/1.1\r\nHost: x\r\n"
    ) as c:
        waited = _closed_after(c)
    assert READ_TIMEOUT - 0.5 <= waited <= READ_TIMEOUT + 3


def test_unfinished_body_gets_a_json_408_after_the_read_timeout(runtime: Runtime) -> None:
    """The 408 comes after the read timeout (aiohttp then lingers ≤ 10 s before it closes)."""
    url = urlsplit(runtime.ingress)
    head = (
        b"POST /users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\n\r\n{"
    )
    with _slow_client((url.hostname or "", url.port or 0), head) as c:
        started = time.monotonic()
        response = http.client.HTTPResponse(c)
        response.begin()
        waited = time.monotonic() - started
        body = response.read()
    assert READ_TIMEOUT - 0.5 <= waited <= READ_TIMEOUT + 3
    assert response.status == 408
    assert response.getheader("Content-Type", "").startswith("application/json")
    assert json.loads(body)["error"]


def test_many_slow_clients_do_not_starve_normal_ones(runtime: Runtime) -> None:
    """300 clients stuck in their headers or body; normal requests are answered meanwhile."""
    url = urlsplit(runtime.ingress)
    address = (url.hostname or "", url.port or 0)
    stuck = [
        _slow_client(address, b"GET /operations/x HTTP/1.1\r\nHost: x\r\n")
        if i % 2
        else _slow_client(
            address,
            b"POST /users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 50\r\n\r\n{",
        )
        for i in range(300)
    ]
    try:
        for _ in range(20):
            started = time.monotonic()
            status, _, body = _call(runtime.ingress, "GET", f"/operations/{uuid.uuid4()}")
            assert status == 404, body
            assert time.monotonic() - started < 1.0
    finally:
        for client in stuck:
            client.close()


def _status(rt: Runtime) -> dict[str, Any]:
    status, _, body = _call(rt.admin, "GET", "/status")
    assert status == 200
    result: dict[str, Any] = json.loads(body)
    return result

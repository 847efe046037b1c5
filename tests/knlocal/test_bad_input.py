"""Issue 11: every edge of the running runtime answers bad input with a clear 4xx JSON error.

One runtime (knlocal/process.py) with a short read timeout serves the module: the public
ingress (and through it the function instances), the broker ingress and the admin endpoint, as a
hostile client reaches them over real loopback sockets.
"""

import http.client
import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from schemathesis import checks as st_checks

from knlocal.process import DEFAULT_SWITCHES, free_port
from knuser_tools.runtime import PROJECT, KnuserRuntime

pytestmark = pytest.mark.e2e

#: Bound on every wait, so a broken runtime fails the test instead of hanging it.
WAIT_SECONDS = 30.0
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
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KnuserRuntime]:
    env = {**DEFAULT_SWITCHES, "READ_TIMEOUT_SECONDS": str(READ_TIMEOUT)}
    with KnuserRuntime(tmp_path_factory.mktemp("bad-input-data"), env) as rt:
        yield rt


@pytest.fixture(scope="module")
def function(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """user-create as its image runs it (gunicorn with the image's settings), on a free port.

    user-create is cluster-local (knative/services/user-create.yaml): the public ingress does not
    reach it, so the test calls the instance itself, as an in-cluster caller would.
    """
    port = free_port()
    env = {
        **os.environ,
        "FUNCTION": "user-create",
        "K_SERVICE": "user-create",
        "DATA_DIR": str(tmp_path_factory.mktemp("user-create")),
        "K_SINK": "http://127.0.0.1:9/unused",
        "PORT": str(port),
    }
    command = [sys.executable, "-m", "gunicorn", "-c", "python:functions.gunicorn_conf"]
    process = subprocess.Popen(
        [*command, "--bind", f"127.0.0.1:{port}", "functions.wsgi:create_app()"],
        cwd=PROJECT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        try:
            _call(url, "GET", "/health/readiness")
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError("user-create did not start under gunicorn") from None
            time.sleep(0.1)
    yield url
    process.terminate()
    process.wait(timeout=30)


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


def _operations(rt: KnuserRuntime) -> int:
    path = rt.data_dir / "operations.sqlite3"
    if not path.exists():
        return 0
    with sqlite3.connect(path) as db:
        count: int = db.execute("SELECT COUNT(*) FROM records").fetchone()[0]
        return count


def test_deeply_nested_body_to_post_users_is_400(runtime: KnuserRuntime) -> None:
    before = _operations(runtime)
    status, headers, body = _call(
        runtime.ingress, "POST", "/users", DEEP, {"Content-Type": "application/json"}
    )
    assert "nested deeper than" in _json_error(status, headers, body, 400)
    assert _operations(runtime) == before


@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_deeply_nested_event_to_broker_ingress_is_400(runtime: KnuserRuntime, mode: str) -> None:
    """knative-semantics.md §2.2: an event the broker cannot decode is 400, never 500."""
    if mode == "binary":
        headers, body = CE_HEADERS, DEEP
    else:
        attributes = {k[3:]: v for k, v in CE_HEADERS.items() if k.startswith("ce-")}
        headers = {"Content-Type": "application/cloudevents+json"}
        body = json.dumps(attributes)[:-1].encode() + b',"data":' + DEEP + b"}"
    status, response_headers, response = _call(
        runtime.default_broker, "POST", urlsplit(runtime.default_broker).path, body, headers
    )
    assert "nested deeper than" in _json_error(status, response_headers, response, 400)


def _post_users(runtime: KnuserRuntime, body: bytes) -> tuple[int, dict[str, str], bytes]:
    """`POST /users` with `body` as JSON at the public ingress."""
    return _call(runtime.ingress, "POST", "/users", body, {"Content-Type": "application/json"})


def _logged(runtime: KnuserRuntime, containing: str) -> tuple[list[str], str]:
    """Wait (bounded) for log lines of the runtime containing `containing`; those, and the log."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        log = runtime.log_text()
        found = [line for line in log.splitlines() if containing in line]
        if found or time.monotonic() > deadline:
            return found, log
        time.sleep(0.05)


def test_client_400_at_broker_ingress_is_one_warning_line(runtime: KnuserRuntime) -> None:
    marker = f"marker-{uuid.uuid4()}"
    headers = {**CE_HEADERS, "ce-id": marker}
    status, response_headers, body = _call(
        runtime.default_broker, "POST", urlsplit(runtime.default_broker).path, DEEP, headers
    )
    _json_error(status, response_headers, body, 400)
    refused, log = _logged(runtime, "refused an event")
    assert refused, log
    assert all("WARNING" in line for line in refused), refused
    assert "Traceback" not in log, log


def test_malformed_request_at_broker_ingress_is_one_warning_line(runtime: KnuserRuntime) -> None:
    """A request the HTTP parser refuses: 400, logged as a client's mistake, not the runtime's."""
    url = urlsplit(runtime.default_broker)
    request = f"POST {url.path} HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n".encode()
    with _slow_client((url.hostname or "", url.port or 0), request) as client:
        response = http.client.HTTPResponse(client)
        response.begin()
        assert response.status == 400
    logged, log = _logged(runtime, "Error handling request")
    assert logged, log
    assert all("WARNING" in line and "400" in line for line in logged), logged
    assert "Traceback" not in log, log


@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_deeply_nested_event_straight_to_a_function_is_400(function: str, mode: str) -> None:
    """A function instance, as an in-cluster caller reaches it (no broker in between)."""
    if mode == "binary":
        headers, body = dict(CE_HEADERS), DEEP
    else:
        attributes = {k[3:]: v for k, v in CE_HEADERS.items() if k.startswith("ce-")}
        headers = {"Content-Type": "application/cloudevents+json"}
        body = json.dumps(attributes)[:-1].encode() + b',"data":' + DEEP + b"}"
    status, response_headers, response = _call(function, "POST", "/", body, headers)
    assert "nested deeper than" in _json_error(status, response_headers, response, 400)


def test_path_with_a_newline_is_a_json_404(runtime: KnuserRuntime) -> None:
    status, headers, body = _call(runtime.ingress, "GET", "/operations/%C3%B6%0A%25%C2%BAc")
    _json_error(status, headers, body, 404)


def test_dot_segments_are_removed_before_routing(runtime: KnuserRuntime) -> None:
    """Routed on the normalised path, as Istio's gateway does: `/health/readiness` is no route."""
    status, headers, body = _call(runtime.ingress, "GET", "/operations/../health/readiness")
    _json_error(status, headers, body, 404)
    status, headers, body = _call(runtime.ingress, "GET", "/operations/%2e%2e/health/readiness")
    _json_error(status, headers, body, 404)


def test_twenty_megabyte_body_is_a_json_413(runtime: KnuserRuntime) -> None:
    before = _operations(runtime)
    status, headers, body = _post_users(runtime, b"x" * (20 * 1024 * 1024))
    _json_error(status, headers, body, 413)
    assert _operations(runtime) == before


def test_body_over_the_function_limit_is_a_json_413(runtime: KnuserRuntime) -> None:
    """Under the ingress's limit but over operation-create's (64 KiB, MAX_BODY_BYTES)."""
    name = "x" * (100 * 1024)
    status, headers, body = _post_users(runtime, json.dumps({"name": name}).encode())
    _json_error(status, headers, body, 413)


@pytest.mark.parametrize(
    ("listener", "method", "path", "expected"),
    [
        ("ingress", "DELETE", "/users", 405),
        ("ingress", "GET", "/nowhere", 404),
        ("broker", "GET", "/default/default", 405),
        # §2.2 (corrections): a non-event is refused before the broker lookup, so 400, not 404.
        ("broker", "POST", "/default/nope", 400),
        ("admin", "GET", "/nowhere", 404),
        ("admin", "POST", "/status", 405),
        # Straight to a function instance (its own web framework's errors).
        ("user-create", "GET", "/nowhere", 404),
        ("user-create", "GET", "/", 405),
    ],
)
def test_framework_errors_are_json_on_every_listener(
    runtime: KnuserRuntime, function: str, listener: str, method: str, path: str, expected: int
) -> None:
    base = {"broker": runtime.default_broker, "admin": runtime.admin, "user-create": function}.get(
        listener, runtime.ingress
    )
    body = b"{}" if method == "POST" else None
    status, headers, body = _call(base, method, path, body, {})
    _json_error(status, headers, body, expected)
    if expected == 405:
        assert headers.get("Allow"), headers


def test_oversized_event_to_broker_ingress_is_a_json_413(runtime: KnuserRuntime) -> None:
    status, headers, body = _call(
        runtime.default_broker,
        "POST",
        urlsplit(runtime.default_broker).path,
        b"x" * (5 * 1024 * 1024),
        CE_HEADERS,
    )
    _json_error(status, headers, body, 413)


def test_blank_name_means_what_the_openapi_says(runtime: KnuserRuntime) -> None:
    """Blank is white space by `str.isspace()`: U+0085 is blank, U+FEFF (not white space) is not.

    The OpenAPI's pattern and the running service agree on both.
    """
    spec = yaml.safe_load((PROJECT / "functions" / "openapi.yaml").read_text(encoding="utf-8"))
    schema = Draft202012Validator(spec["components"]["schemas"]["CreateUserRequest"])
    for name, accepted in (("\u0085", False), (" \u3000\t", False), ("\ufeff", True)):
        assert schema.is_valid({"name": name}) is accepted
        status, headers, body = _post_users(runtime, json.dumps({"name": name}).encode())
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


def test_unfinished_headers_are_closed_after_the_read_timeout(runtime: KnuserRuntime) -> None:
    url = urlsplit(runtime.ingress)
    with _slow_client(
        (url.hostname or "", url.port or 0), b"GET /users HTTP/1.1\r\nHost: x\r\n"
    ) as c:
        waited = _closed_after(c)
    assert READ_TIMEOUT - 0.5 <= waited <= READ_TIMEOUT + 3


def test_unfinished_body_gets_a_json_408_after_the_read_timeout(runtime: KnuserRuntime) -> None:
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


def test_many_slow_clients_do_not_starve_normal_ones(runtime: KnuserRuntime) -> None:
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


def _status(rt: KnuserRuntime) -> dict[str, Any]:
    status, _, body = _call(rt.admin, "GET", "/status")
    assert status == 200
    result: dict[str, Any] = json.loads(body)
    return result


# --- fuzz: the OpenAPI against the running ingress ------------------------------------------------

SCHEMA = schemathesis.openapi.from_path(PROJECT / "functions" / "openapi.yaml")
#: What the fuzz asserts of every response, and nothing else: the issue's four checks.
CHECKS = [
    st_checks.not_a_server_error,
    st_checks.status_code_conformance,
    st_checks.content_type_conformance,
    st_checks.response_schema_conformance,
]
#: Bounded and deterministic, so that CI runs the same cases every time, in ≈ 30 s in all.
FUZZ = settings(
    max_examples=60,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
#: Cases each fuzz ran, by test (the issue's closing note reports them).
FUZZ_CASES: dict[str, int] = {}


@SCHEMA.parametrize()
@FUZZ
def test_openapi_fuzz_every_operation(case: schemathesis.Case, runtime: KnuserRuntime) -> None:
    """Every operation, generated inputs: no 5xx; status, content type and body as documented."""
    FUZZ_CASES[case.operation.label] = FUZZ_CASES.get(case.operation.label, 0) + 1
    case.call_and_validate(base_url=runtime.ingress, checks=CHECKS)


def test_openapi_fuzz_following_the_location_link(runtime: KnuserRuntime) -> None:
    """Sequences POST /users → GET its operation (the `GetOperation` link of the 202)."""

    class Workflow(SCHEMA.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            FUZZ_CASES["stateful"] = FUZZ_CASES.get("stateful", 0) + 1
            return {"base_url": runtime.ingress}

        def validate_response(self, response: Any, case: schemathesis.Case, **kwargs: Any) -> None:
            if case.operation.label.startswith("GET") and response.status_code == 200:
                FUZZ_CASES["stateful: operation read by the link"] = (
                    FUZZ_CASES.get("stateful: operation read by the link", 0) + 1
                )
            case.validate_response(response, checks=CHECKS)

    Workflow.run(settings=settings(FUZZ, max_examples=20, stateful_step_count=4))
    assert FUZZ_CASES["stateful: operation read by the link"] > 0


# --- fuzz: generated CloudEvents against the broker ingress --------------------------------------

#: Nothing subscribes to these types, so an accepted event is stored and filtered out, no more.
_names = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=12)
_values = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=30)
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_names, inner, max_size=3),
    max_leaves=10,
)


@st.composite
def _valid_attributes(draw: st.DrawFn) -> dict[str, str]:
    attributes = {
        "specversion": "1.0",
        "id": draw(_names),
        "source": "/fuzz/" + draw(_names),
        "type": "dev.knuser.fuzz." + draw(_names),
    }
    extensions = draw(st.dictionaries(_names, _values, max_size=3))
    # A generated name may collide with a context attribute: those stay as drawn above.
    return {**extensions, **attributes}


@st.composite
def _invalid_attributes(draw: st.DrawFn) -> dict[str, str]:
    attributes = draw(_valid_attributes())
    how = draw(st.sampled_from(["drop", "empty", "specversion"]))
    name = draw(st.sampled_from(["specversion", "id", "source", "type"]))
    if how == "drop":
        del attributes[name]
    elif how == "empty":
        attributes[name] = ""
    else:
        # Not 0.3: the runtime may accept CloudEvents 0.3 (knative-semantics.md §2.2).
        attributes["specversion"] = draw(st.sampled_from(["2.0", "1", "x", "1.0.0"]))
    return attributes


@st.composite
def _event_request(draw: st.DrawFn) -> tuple[bool, dict[str, str], bytes]:
    """(valid, headers, body) of one request, binary or structured, valid or not."""
    valid = draw(st.booleans())
    attributes = draw(_valid_attributes() if valid else _invalid_attributes())
    data = draw(_json)
    if draw(st.booleans()):
        headers = {f"ce-{k}": v for k, v in attributes.items()}
        headers["Content-Type"] = "application/json"
        body = json.dumps(data).encode()
        if not valid and draw(st.booleans()):
            body = DEEP
    else:
        headers = {"Content-Type": "application/cloudevents+json"}
        body = json.dumps({**attributes, "data": data}).encode()
        if not valid and draw(st.booleans()):
            body = draw(st.sampled_from([b"{", b"[]", b'"event"', body[:-1], DEEP]))
    return valid, headers, body


def _received(rt: KnuserRuntime) -> dict[str, int]:
    return {name: t["received"] for name, t in _status(rt)["triggers"].items()}


def test_broker_ingress_fuzz_generated_cloudevents(runtime: KnuserRuntime) -> None:
    """Valid events are 202 and stored once; invalid ones are 400 and stored nowhere (§2.2)."""
    before = _received(runtime)
    accepted = 0
    path = urlsplit(runtime.default_broker).path

    @given(_event_request())
    @settings(FUZZ, max_examples=150)
    def post(request: tuple[bool, dict[str, str], bytes]) -> None:
        nonlocal accepted
        valid, headers, body = request
        FUZZ_CASES["broker ingress"] = FUZZ_CASES.get("broker ingress", 0) + 1
        status, response_headers, response = _call(
            runtime.default_broker, "POST", path, body, headers
        )
        if valid:
            assert status == 202, response
            accepted += 1
        else:
            _json_error(status, response_headers, response, 400)

    post()
    # Every trigger's consumer group sees each stored event once: the accepted ones, no more.
    expected = {name: count + accepted for name, count in before.items()}
    deadline = time.monotonic() + WAIT_SECONDS
    while _received(runtime) != expected and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    assert _received(runtime) == expected

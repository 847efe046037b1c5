"""End to end: the local runtime started as `make run` starts it, used as a user would.

One runtime (in-memory broker, SQLite, local profile) serves the module, on free loopback ports
with its own data folder (knlocal/process.py). The Ctrl-C test stops a runtime of its own, so the
tests pass alone and in any order.
"""

import json
import os
import signal
import socket
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from referencing import Registry, Resource

from functions.catalog import USER_CREATION_REQUESTED
from functions.ce import encode_binary, new_event
from knlocal.process import DEFAULT_SWITCHES
from knuser_tools.runtime import PROJECT, KnuserRuntime

pytestmark = pytest.mark.e2e

#: Bound on every wait, so a broken runtime fails the test instead of hanging it.
WAIT_SECONDS = 30.0


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KnuserRuntime]:
    """`knlocal run` (what `make run` execs), ready once its admin API answers."""
    with KnuserRuntime(tmp_path_factory.mktemp("e2e-data"), DEFAULT_SWITCHES) as rt:
        yield rt


def _request(
    url: str, method: str = "GET", body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=WAIT_SECONDS) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def _create_user(rt: KnuserRuntime, name: Any, **headers: str) -> tuple[int, dict[str, str], Any]:
    status, response_headers, body = _request(
        f"{rt.ingress}/users",
        "POST",
        json.dumps({"name": name}).encode(),
        {"Content-Type": "application/json", **headers},
    )
    return status, response_headers, json.loads(body)


def _wait_finished(rt: KnuserRuntime, operation_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        status, _, body = _request(f"{rt.ingress}/operations/{operation_id}")
        assert status == 200, body
        operation: dict[str, Any] = json.loads(body)
        if operation["status"] != "pending":
            return operation
        time.sleep(0.02)
    pytest.fail(f"operation {operation_id} still pending after {WAIT_SECONDS} s")


def _status(rt: KnuserRuntime) -> dict[str, Any]:
    _, _, body = _request(f"{rt.admin}/status")
    snapshot: dict[str, Any] = json.loads(body)
    return snapshot


def _count(rt: KnuserRuntime, service: str) -> int:
    path = rt.data_dir / f"{service}.sqlite3"
    if not path.exists():
        return 0
    with sqlite3.connect(path) as db:
        count: int = db.execute("SELECT COUNT(*) FROM records").fetchone()[0]
        return count


def test_create_user_completes(runtime: KnuserRuntime) -> None:
    """POST /users answers 202 with the pending operation; the operation ends completed."""
    status, headers, operation = _create_user(runtime, "Ada Lovelace")
    assert status == 202
    assert operation["status"] == "pending"
    assert headers["Location"] == f"/operations/{operation['id']}"
    finished = _wait_finished(runtime, operation["id"])
    assert finished["status"] == "completed"
    assert finished["result"]["user"]["name"] == "Ada Lovelace"
    assert finished["result"]["user"]["status"] == "approved"
    assert finished["error"] is None


def test_rejected_name_ends_failed_with_reason(runtime: KnuserRuntime) -> None:
    """A name the approval rules reject ends the operation failed, with a readable reason."""
    status, _, operation = _create_user(runtime, "root")
    assert status == 202
    finished = _wait_finished(runtime, operation["id"])
    assert finished["status"] == "failed"
    assert finished["result"] is None
    assert finished["error"]["reason"] == "user rejected: the name 'root' is reserved"


@pytest.mark.parametrize(
    ("body", "content_type", "expected_status", "message_part"),
    [
        (b'{"name": "Ada"', "application/json", 400, "not valid JSON"),
        (b"{}", "application/json", 400, "'name' is a required property"),
        (b'{"name": ""}', "application/json", 400, "name"),
        (b'{"name": "   "}', "application/json", 400, "blank"),
        (b'{"name": 42}', "application/json", 400, "not of type 'string'"),
        (b'{"name": "Ada", "admin": true}', "application/json", 400, "'admin' was unexpected"),
        (b'{"name": "Ada"}', "text/plain", 415, "application/json"),
        (b'{"name": "' + b"a" * 70_000 + b'"}', "application/json", 413, "larger than"),
    ],
    ids=["malformed", "missing", "empty", "blank", "number", "extra", "media-type", "oversized"],
)
def test_bad_input_gets_json_4xx_and_stores_nothing(
    runtime: KnuserRuntime, body: bytes, content_type: str, expected_status: int, message_part: str
) -> None:
    """Bad requests get a 4xx JSON error saying what was wrong; no operation is stored."""
    before = _count(runtime, "operations")
    status, headers, raw = _request(
        f"{runtime.ingress}/users", "POST", body, {"Content-Type": content_type}
    )
    assert status == expected_status
    assert headers["Content-Type"].startswith("application/json")
    assert message_part in json.loads(raw)["error"]
    assert _count(runtime, "operations") == before


@pytest.mark.parametrize(
    ("method", "path", "expected_status"),
    [("GET", "/nothing-here", 404), ("DELETE", "/users", 405), ("GET", "/users", 405)],
    ids=["unknown-route", "delete-users", "get-users"],
)
def test_unknown_route_and_method(
    runtime: KnuserRuntime, method: str, path: str, expected_status: int
) -> None:
    """The ingress answers unknown routes 404 and wrong methods 405, as JSON."""
    status, _, raw = _request(f"{runtime.ingress}{path}", method)
    assert status == expected_status
    assert "error" in json.loads(raw)


def test_unknown_operation_is_404(runtime: KnuserRuntime) -> None:
    """Reading an operation that does not exist answers 404 with a JSON error."""
    status, _, raw = _request(f"{runtime.ingress}/operations/{uuid.uuid4()}")
    assert status == 404
    assert "no operation" in json.loads(raw)["error"]


def test_admin_fires_a_ping_source_now_and_answers_with_its_sinks_reply(
    runtime: KnuserRuntime,
) -> None:
    """`POST /pingsources/default/operation-sweep`: the sweep's counts come back; a body
    replaces the PingSource's data, and operation-create refuses data it cannot read."""
    status, _, raw = _request(f"{runtime.admin}/pingsources/default/operation-sweep", "POST")
    assert status == 200, raw
    assert {"pending", "republished", "failed"} <= set(json.loads(raw)), raw
    status, _, raw = _request(
        f"{runtime.admin}/pingsources/default/operation-sweep", "POST", b'{"nope": 1}'
    )
    assert status == 400, raw
    status, _, raw = _request(f"{runtime.admin}/pingsources/default/nope", "POST")
    assert status == 404 and "no PingSource" in json.loads(raw)["error"]


@pytest.mark.parametrize("service", ["user-create", "user-approve", "operation-create"])
def test_cluster_local_services_are_not_on_the_public_ingress(
    runtime: KnuserRuntime, service: str
) -> None:
    """A forged event sent to the ingress with a cluster-local Service's Host is refused and
    stores nothing: the Services are `networking.knative.dev/visibility: cluster-local`, and a
    cluster's ingress has no route to those (Knative's Route gets only the cluster-local host)."""
    users = _count(runtime, "users")
    operation_id = str(uuid.uuid4())
    event = new_event(
        USER_CREATION_REQUESTED,
        "/users-service",
        {"operationId": operation_id, "name": "Mallory"},
        operation_id=operation_id,
    )
    headers, body = encode_binary(event)
    host = {"Host": f"{service}.default.svc.cluster.local"}
    status, _, raw = _request(runtime.ingress + "/", "POST", body, headers | host)
    assert status == 404
    assert "no route" in json.loads(raw)["error"]
    # Had it reached user-create, the user would be stored by now (a delivery takes ms).
    time.sleep(0.5)
    assert _count(runtime, "users") == users
    status, _, _ = _request(f"{runtime.ingress}/operations/{operation_id}")
    assert status == 404


_VALID_BINARY = {
    "ce-specversion": "1.0",
    "ce-id": "e-1",
    "ce-source": "/test",
    "ce-type": "dev.example.test",
    "Content-Type": "application/json",
}


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "expected_status"),
    [
        ("POST", "/default/default", {"Content-Type": "application/json"}, b"{}", 400),
        # ingress_handler.go validates the event before it looks the broker up (corrections
        # to §2.2): an invalid event to an unknown broker is 400, a valid one 404.
        ("POST", "/default/nobroker", {"Content-Type": "application/json"}, b"{}", 400),
        ("POST", "/default/nobroker", _VALID_BINARY, b"{}", 404),
        ("GET", "/default/default", {}, None, 405),
    ],
    ids=["not-a-cloudevent", "invalid-event-to-unknown-broker", "unknown-broker", "get"],
)
def test_s2_2_broker_ingress_contract(
    runtime: KnuserRuntime,
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes | None,
    expected_status: int,
) -> None:
    """The broker ingress answers like Knative's (knative-semantics.md §2.2)."""
    status, _, _ = _request(runtime.broker + path, method, body, headers)
    assert status == expected_status


def test_duplicate_delivery_changes_nothing(runtime: KnuserRuntime) -> None:
    """The same creation request delivered twice more creates no second user, changes nothing."""
    _, _, operation = _create_user(runtime, "Grace Hopper", **{"Idempotency-Key": "grace-1"})
    first = _wait_finished(runtime, operation["id"])
    users = _count(runtime, "users")
    event = new_event(
        USER_CREATION_REQUESTED,
        "/users-service",
        {"operationId": operation["id"], "name": "Grace Hopper"},
        operation_id=operation["id"],
    )
    headers, body = encode_binary(event)
    for _ in range(2):
        status, _, _ = _request(runtime.default_broker, "POST", body, headers)
        assert status == 202
    # The replayed flow runs to its end; give it the time of a few deliveries.
    time.sleep(1.0)
    again_status, _, again = _create_user(runtime, "Grace Hopper", **{"Idempotency-Key": "grace-1"})
    assert again_status == 202
    assert again["id"] == operation["id"]
    assert _wait_finished(runtime, operation["id"]) == first
    assert _count(runtime, "users") == users


def test_openapi_document_matches_the_running_ingress(runtime: KnuserRuntime) -> None:
    """The OpenAPI document is valid and the ingress's responses match its schemas."""
    spec = yaml.safe_load((PROJECT / "functions" / "openapi.yaml").read_text())
    validate(spec)
    registry: Registry[Any] = Registry().with_resource("openapi", Resource.opaque(spec))

    def check(schema_name: str, instance: Any) -> None:
        schema = {"$ref": f"openapi#/components/schemas/{schema_name}"}
        Draft202012Validator(schema, registry=registry).validate(instance)

    status, _, created = _create_user(runtime, "Katherine Johnson")
    assert status == 202
    check("Operation", created)
    check("Operation", _wait_finished(runtime, created["id"]))
    status, _, bad = _create_user(runtime, "")
    assert status == 400
    check("Error", bad)
    status, _, raw = _request(f"{runtime.ingress}/operations/{uuid.uuid4()}")
    assert status == 404
    check("Error", json.loads(raw))
    # Every path and method of the document is served by the ingress.
    for path, methods in spec["paths"].items():
        for method in methods:
            url = runtime.ingress + path.replace("{operationId}", created["id"])
            body = json.dumps({"name": "Mary Jackson"}).encode() if method == "post" else None
            headers = {"Content-Type": "application/json"} if body else {}
            status, _, _ = _request(url, method.upper(), body, headers)
            assert str(status) in spec["paths"][path][method]["responses"]


def _processes_with_data_dir(data_dir: Path) -> list[int]:
    """Pids of processes started for this runtime: their environment names its DATA_DIR."""
    marker = f"DATA_DIR={data_dir}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker in environ.split(b"\0"):
            pids.append(int(entry.name))
    return pids


def _listening_addresses(pids: list[int]) -> set[str]:
    """The local addresses of listening TCP sockets held by `pids`."""
    inodes = set()
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    addresses = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A = LISTEN
                addresses.add(fields[1].split(":")[0])
    return addresses


def test_services_scale_from_zero_and_back_to_zero(runtime: KnuserRuntime) -> None:
    """Services start on demand, stop after the idle period, and serve the next request again."""
    _, _, operation = _create_user(runtime, "Dorothy Vaughan")
    assert _wait_finished(runtime, operation["id"])["status"] == "completed"
    assert _status(runtime)["services"]["user-approve"]["cold_starts"] >= 1
    # Nothing listens beyond loopback: the runtime and every instance bind 127.0.0.1.
    assert runtime.process is not None
    pids = [runtime.process.pid, *_processes_with_data_dir(runtime.data_dir)]
    addresses = _listening_addresses(pids)
    assert addresses, "found no listening socket at all"
    # /proc/net/tcp shows 127.0.0.1 as 0100007F; tcp6's v4-mapped loopback ends with it too.
    assert all(a.endswith("0100007F") for a in addresses), addresses
    # The local profile's stable window (6 s) and grace period (2 s) bound the idle time.
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        services = _status(runtime)["services"]
        if all(s["ready"] == 0 and s["starting"] == 0 for s in services.values()):
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"services still running after {WAIT_SECONDS} s: {services}")
    instances = [p for p in _processes_with_data_dir(runtime.data_dir) if p != runtime.process.pid]
    # Only the warm template process may remain; no function instance.
    commands = [Path(f"/proc/{p}/cmdline").read_bytes() for p in instances]
    assert all(b"knlocal.serving.zygote" in c for c in commands), commands
    cold_before = _status(runtime)["services"]["user-approve"]["cold_starts"]
    _, _, operation = _create_user(runtime, "Mary Jackson")
    assert _wait_finished(runtime, operation["id"])["status"] == "completed"
    assert _status(runtime)["services"]["user-approve"]["cold_starts"] == cold_before + 1


def test_ctrl_c_stops_everything(tmp_path: Path) -> None:
    """SIGINT stops the runtime cleanly, instances running: exit 0, no process left, every port
    free."""
    runtime = KnuserRuntime(tmp_path / "data", DEFAULT_SWITCHES)
    runtime.start()
    _, _, operation = _create_user(runtime, "Ada Lovelace")
    assert _wait_finished(runtime, operation["id"])["status"] == "completed"
    assert runtime.process is not None
    runtime.process.send_signal(signal.SIGINT)
    try:
        code = runtime.process.wait(timeout=WAIT_SECONDS)
    except subprocess.TimeoutExpired:
        runtime.process.kill()
        pytest.fail("runtime did not stop within the bound after SIGINT")
    assert code == 0
    deadline = time.monotonic() + 5.0
    while _processes_with_data_dir(runtime.data_dir) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _processes_with_data_dir(runtime.data_dir) == []
    for port in runtime.ports:
        with socket.socket() as s:
            # SO_REUSEADDR passes over TIME_WAIT leftovers of client connections, but bind still
            # fails while any socket listens on the port.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))

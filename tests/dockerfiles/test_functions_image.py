"""The function image (Dockerfiles/functions.Dockerfile), built and run for real with podman.

The image must already exist: `.ci/run` builds it (`bash tools/podman.sh ci`) before the tests, a
developer runs the same command or `make image`. The container runs user-approve, as its
Knative Service does, with the host's network so the test reaches it on a free loopback port;
gunicorn is told to bind 127.0.0.1 there, so nothing listens on the machine's other interfaces.
"""

import ast
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from knlocal.process import free_port
from tests.servers import require_server

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfiles" / "functions.Dockerfile"
IMAGE = os.environ.get("IMAGE", "dev.local/knuser-functions:0.1.0")
#: tools/podman.sh's settings (no default ulimits, runc), needed on the development machines.
PODMAN_ENV = {**os.environ, "CONTAINERS_CONF": str(ROOT / "tools" / "containers.conf")}
#: Bound on every wait, so a broken image fails the test instead of hanging it.
WAIT_SECONDS = 30.0
HOW = "build it with `bash tools/podman.sh ci` (installs podman as root) or `make image`"


def _podman(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", *args],
        env=PODMAN_ENV,
        capture_output=True,
        text=True,
        timeout=60,
        check=check,
    )


def _require_image() -> None:
    try:
        exists = _podman("image", "exists", IMAGE, check=False).returncode == 0
    except FileNotFoundError:
        exists = False
    require_server(f"the image {IMAGE} (podman)", exists, HOW)


@dataclass
class Container:
    """A running container of the image and the loopback URL it answers on."""

    name: str
    url: str


def _start(function: str) -> Container:
    port = free_port()
    name = f"knuser-test-{uuid.uuid4().hex[:8]}"
    _podman(
        "run",
        "--detach",
        "--name",
        name,
        "--network=host",
        "--env",
        f"FUNCTION={function}",
        "--env",
        f"PORT={port}",
        # The image binds 0.0.0.0:$PORT, as a pod must; on the host's network that would be every
        # interface of this machine, so the test narrows it to loopback.
        "--env",
        f"GUNICORN_CMD_ARGS=--bind 127.0.0.1:{port}",
        IMAGE,
    )
    container = Container(name, f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        try:
            with urllib.request.urlopen(f"{container.url}/health/readiness", timeout=2):
                return container
        except (urllib.error.URLError, OSError) as exc:
            if time.monotonic() > deadline:
                logs = _podman("logs", name, check=False)
                _podman("rm", "--force", name, check=False)
                raise AssertionError(
                    f"{name} not ready after {WAIT_SECONDS} s ({exc});"
                    f" its log:\n{logs.stdout}{logs.stderr}"
                ) from exc
            time.sleep(0.2)


@pytest.fixture(scope="module")
def approve() -> Iterator[Container]:
    """One user-approve container for the request tests."""
    _require_image()
    container = _start("user-approve")
    yield container
    _podman("rm", "--force", "--time", "0", container.name, check=False)


def _post(url: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def _user_created(name: str) -> tuple[dict[str, str], bytes, str]:
    """A binary-mode `user.created` CloudEvent as the broker delivers it, written by hand."""
    operation_id, user_id = str(uuid.uuid4()), str(uuid.uuid4())
    headers = {
        "ce-specversion": "1.0",
        "ce-type": "dev.knuser.user.created.v1",
        "ce-source": "/users-service",
        "ce-id": str(uuid.uuid4()),
        "ce-operationid": operation_id,
        "content-type": "application/json",
        "prefer": "reply",
    }
    data = {
        "operationId": operation_id,
        "user": {"id": user_id, "name": name, "status": "approval_pending", "reason": None},
    }
    return headers, json.dumps(data).encode(), user_id


@pytest.mark.podman
def test_readiness_answers(approve: Container) -> None:
    with urllib.request.urlopen(f"{approve.url}/health/readiness", timeout=5) as response:
        assert response.status == 200
        assert json.load(response) == {"status": "ok", "function": "user-approve"}


@pytest.mark.podman
@pytest.mark.parametrize(("name", "approved"), [("Ada Lovelace", True), ("root", False)])
def test_cloudevent_gets_the_decision_as_a_binary_reply(
    approve: Container, name: str, approved: bool
) -> None:
    headers, body, user_id = _user_created(name)
    status, reply_headers, reply = _post(f"{approve.url}/", headers, body)
    assert status == 200, reply
    lower = {k.lower(): v for k, v in reply_headers.items()}
    # Binary mode: the attributes are ce-* headers, the body is the data alone.
    assert lower["ce-specversion"] == "1.0"
    assert lower["ce-type"] == "dev.knuser.user.approval.decided.v1"
    assert lower["ce-operationid"] == headers["ce-operationid"]
    assert lower["content-type"].startswith("application/json")
    data = json.loads(reply)
    assert data["userId"] == user_id
    assert data["operationId"] == headers["ce-operationid"]
    assert data["approved"] is approved
    assert (data["reason"] is None) is approved


@pytest.mark.podman
def test_non_cloudevent_gets_400_with_a_json_error(approve: Container) -> None:
    status, headers, body = _post(
        f"{approve.url}/", {"content-type": "application/json"}, b'{"name": "Ada"}'
    )
    assert status == 400
    assert headers["Content-Type"].startswith("application/json")
    error = json.loads(body)["error"]
    assert isinstance(error, str) and error


@pytest.mark.podman
def test_runs_as_non_root_with_gunicorn_as_pid_1(approve: Container) -> None:
    status = _podman("exec", approve.name, "cat", "/proc/1/status").stdout
    uids = re.search(r"^Uid:\s+(\d+)\s+(\d+)", status, re.MULTILINE)
    assert uids, status
    assert uids.group(1) != "0" and uids.group(2) != "0", "gunicorn runs as root"
    # PID 1 must be gunicorn itself (no shell in between) or SIGTERM would not reach it.
    cmdline = _podman("exec", approve.name, "cat", "/proc/1/cmdline").stdout.split("\0")
    assert any(part.endswith("/gunicorn") for part in cmdline), cmdline
    logs = _podman("logs", approve.name).stderr
    assert f"Listening at: {approve.url} " in logs, logs


@pytest.mark.podman
def test_port_env_is_honoured_without_any_override() -> None:
    """With only `PORT` set, as Knative sets it, gunicorn listens there on every interface.

    The container gets a network namespace of its own (no network but loopback), so binding every
    interface exposes nothing; the probe runs inside it.
    """
    _require_image()
    name = f"knuser-test-{uuid.uuid4().hex[:8]}"
    _podman(
        "run",
        "--detach",
        "--name",
        name,
        "--network=none",
        "--env",
        "FUNCTION=user-approve",
        "--env",
        "PORT=9137",
        IMAGE,
    )
    probe = (
        "import time, urllib.request\n"
        "for _ in range(150):\n"
        "    try:\n"
        "        print(urllib.request.urlopen('http://127.0.0.1:9137/health/readiness').status)\n"
        "        break\n"
        "    except OSError:\n"
        "        time.sleep(0.2)\n"
    )
    try:
        result = _podman("exec", name, "python3", "-c", probe)
        assert result.stdout.strip() == "200", result
        assert "Listening at: http://0.0.0.0:9137 " in _podman("logs", name).stderr
    finally:
        _podman("rm", "--force", "--time", "0", name, check=False)


@pytest.mark.podman
def test_sigterm_stops_promptly_with_exit_code_0() -> None:
    """`podman stop` sends SIGTERM, as Knative does on scale-down, and SIGKILL after 10 s."""
    _require_image()
    container = _start("user-approve")
    try:
        headers, body, _ = _user_created("Grace Hopper")
        assert _post(f"{container.url}/", headers, body)[0] == 200
        started = time.monotonic()
        _podman("stop", "--time", "10", container.name)
        elapsed = time.monotonic() - started
        exit_code = _podman("inspect", "--format", "{{.State.ExitCode}}", container.name)
        # 137 would mean SIGKILL after the 10 s: SIGTERM was ignored.
        assert exit_code.stdout.strip() == "0"
        assert elapsed < 10
    finally:
        _podman("rm", "--force", "--time", "0", container.name, check=False)


def test_function_deps_cover_every_import_of_functions() -> None:
    """The image installs only FUNCTION_DEPS (and what they need): enough for the packages it
    copies (functions/, leantrace/).

    Checked against this venv's installed distributions, which pyproject.toml pins the same way.
    """
    dockerfile = DOCKERFILE.read_text()
    match = re.search(r'^ARG FUNCTION_DEPS="([^"]+)"', dockerfile, re.MULTILINE)
    assert match, f"no ARG FUNCTION_DEPS in {DOCKERFILE}"
    installed = _closure(match.group(1).split())
    copied = set(re.findall(r"^COPY (\w+) \./\1$", dockerfile, re.MULTILINE))
    assert {"functions", "leantrace"} <= copied, copied
    modules: set[str] = set()
    for path in (p for package in copied for p in (ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                modules.add(node.module.split(".")[0])
    third_party = modules - set(sys.stdlib_module_names) - copied
    by_module = metadata.packages_distributions()
    uncovered = {
        module: by_module.get(module, ["?"])
        for module in sorted(third_party)
        if not {_normal(d) for d in by_module.get(module, [])} & installed
    }
    assert not uncovered, (
        f"{sorted(copied)} import {uncovered} (module: distributions), which the image does not"
        " install: add the distribution to ARG FUNCTION_DEPS in Dockerfiles/functions.Dockerfile"
    )


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _closure(names: list[str]) -> set[str]:
    """The distributions `pip install NAMES` installs: the names and their runtime requirements."""
    seen: set[str] = set()
    todo = [_normal(n) for n in names]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for line in metadata.requires(name) or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(_normal(requirement.name))
    return seen

"""The local runtime started as `make run` starts it, for the end-to-end tests.

The runtime runs with the in-memory broker, SQLite and the local profile, on free loopback ports,
with its own data folder.
"""

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: Bound on every wait, so a broken runtime fails the test instead of hanging it.
WAIT_SECONDS = 30.0


@dataclass
class Runtime:
    """A running `knlocal run` and where to reach it."""

    process: subprocess.Popen[str]
    data_dir: Path
    ingress: str
    broker: str
    admin: str
    ports: tuple[int, ...]
    #: The runtime's output (stdout and stderr) after its ready line, one entry a line.
    output: list[str] = field(default_factory=list)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def start_runtime(data_dir: Path, **env: str) -> Iterator[Runtime]:
    """Start `knlocal run` and wait until it says it is ready; kill it on exit if still running.

    :param env: settings over the defaults above, e.g. `READ_TIMEOUT_SECONDS="2"`.
    """
    ports = (_free_port(), _free_port(), _free_port())
    process_env = {
        **os.environ,
        "INGRESS_PORT": str(ports[0]),
        "BROKER_PORT": str(ports[1]),
        "ADMIN_PORT": str(ports[2]),
        "DATA_DIR": str(data_dir),
        "BROKER": "inmemory",
        "STORE": "sqlite",
        "PROFILE": "local",
        **env,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "knlocal.cli", "run"],
        cwd=ROOT,
        env=process_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    banner = []
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        banner.append(line)
        if line.startswith("knlocal: ready") or not line:
            break
    if not banner or not banner[-1].startswith("knlocal: ready"):
        process.kill()
        pytest.fail("runtime did not start:\n" + "".join(banner) + process.stdout.read())
    rt = Runtime(
        process,
        data_dir,
        ingress=f"http://127.0.0.1:{ports[0]}",
        broker=f"http://127.0.0.1:{ports[1]}/default/default",
        admin=f"http://127.0.0.1:{ports[2]}",
        ports=ports,
    )
    # Drained all along: a full pipe would block the runtime at its next log line.
    reader = threading.Thread(target=_drain, args=(process.stdout, rt.output), daemon=True)
    reader.start()
    try:
        yield rt
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        reader.join(WAIT_SECONDS)
        process.stdout.close()


def _drain(stream: IO[str], lines: list[str]) -> None:
    for line in stream:
        lines.append(line)

"""`knlocal run` as a child process: the one way tests, benchmarks and tools start a runtime.

The runtime runs on free loopback ports with its own data folder; its output goes to
`<data_dir>/runtime.log` (a file, not a pipe: a pipe nobody reads blocks the runtime once full).
It is ready when its admin API answers `GET /status`: the runtime serves its admin port last,
after the brokers, the dispatchers and the ingresses (runtime.py), so an answer means all of
them are up. Nothing here knows the application the runtime serves.
"""

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from knlocal.errors import RuntimeStartError
from knlocal.settings import Settings

#: Bound on a start: a runtime on a busy 2-core machine, with a cold JVM-backed broker behind it.
START_SECONDS = 120.0
#: Bound on a stop after Ctrl-C (SIGINT), before SIGKILL.
STOP_SECONDS = 30.0
#: Bound on one request to the runtime.
REQUEST_SECONDS = 30.0
#: The switches of `make run` with nothing set (knlocal/settings.py's defaults), as environment
#: variables: what a caller passes to be independent of the environment it runs in.
DEFAULT_SWITCHES = {
    "BROKER": Settings.broker,
    "STORE": Settings.store,
    "PROFILE": Settings.profile,
}


#: Where the kernel picks the source ports of outgoing connections (and `bind(0)`'s ports).
EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
#: The lowest port :func:`free_port` hands out.
LOWEST_PORT = 10000


def free_port() -> int:
    """A loopback port nothing is bound to now, below the kernel's ephemeral range.

    Below it, because a port is bound some time after it is chosen (a runtime's start, or its
    restart after a kill): an ephemeral port may meanwhile become the source port of any
    outgoing connection on the machine ("address already in use"); one below the range is
    only ever taken by an explicit bind.
    """
    try:
        low = int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 0
    for _ in range(100 if low > LOWEST_PORT + 100 else 0):
        port = random.randrange(LOWEST_PORT, low)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as probe:  # no range to stay below: the kernel's choice
        probe.bind(("127.0.0.1", 0))
        chosen: int = probe.getsockname()[1]
        return chosen


def descendants(pid: int) -> list[int]:
    """The process's children, grandchildren…, read from /proc (gone ones are skipped)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            found += [int(child), *descendants(int(child))]
    return found


class RuntimeProcess:
    """`knlocal run` as a child process on free loopback ports with its own data folder.

    Ports are chosen once: a restart (:meth:`start` after :meth:`kill`) serves on the same ones.
    Usable as a context manager: started on entry, stopped on exit.

    :param data_dir: the runtime's DATA_DIR (SQLite files, function logs) and `runtime.log`.
    :param env: settings over the process environment, e.g. `{"BROKER": "kafka"}`.
    :param args: more arguments of `knlocal run`, e.g. `["--faults", "plan.yaml"]`.
    :param cwd: where it runs: its manifests and the application's pyproject.toml are there
        (default: the current directory).
    :param start_timeout: seconds a start may take.
    """

    def __init__(
        self,
        data_dir: Path,
        env: Mapping[str, str] | None = None,
        *,
        args: Sequence[str] = (),
        cwd: Path | None = None,
        start_timeout: float = START_SECONDS,
    ) -> None:
        self.data_dir = data_dir
        self.ports = (free_port(), free_port(), free_port())
        self.env = {
            **os.environ,
            "INGRESS_PORT": str(self.ports[0]),
            "BROKER_PORT": str(self.ports[1]),
            "ADMIN_PORT": str(self.ports[2]),
            "DATA_DIR": str(data_dir),
            **(env or {}),
        }
        self.args = list(args)
        self.cwd = cwd
        self.start_timeout = start_timeout
        #: The public ingress.
        self.ingress = f"http://127.0.0.1:{self.ports[0]}"
        #: The broker ingress; a Broker is at `<broker>/<namespace>/<name>`.
        self.broker = f"http://127.0.0.1:{self.ports[1]}"
        #: The admin API: `/status`, `/metrics`, `/pingsources/<namespace>/<name>`.
        self.admin = f"http://127.0.0.1:{self.ports[2]}"
        self.log = data_dir / "runtime.log"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> "RuntimeProcess":
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """Whether the process was started and has not exited."""
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """Start it (again) and return once its admin API answers `/status`.

        :raises RuntimeStartError: it exited or was not ready in time; with its output.
        """
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "knlocal.cli", "run", *self.args],
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + self.start_timeout
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeStartError(
                    f"the runtime did not get ready within {self.start_timeout:.0f} s"
                    f" (exit code {self.process.returncode}); its output:\n{self.log_text()}"
                )
            time.sleep(0.05)

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.admin}/status", timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def stop(self, timeout: float = STOP_SECONDS) -> int | None:
        """Ctrl-C it (SIGINT) and wait; SIGKILL it if it has not stopped within `timeout`.

        :return: its exit code, or None if it was not running.
        """
        if self.process is None or self.process.poll() is not None:
            return None
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.process.returncode

    def kill(self) -> None:
        """`kill -9` the runtime and every process it started, as a machine crash would, and
        wait until they are gone."""
        if self.process is None:
            return
        victims = [self.process.pid, *descendants(self.process.pid)]
        for victim in victims:
            try:
                os.kill(victim, signal.SIGKILL)
            except ProcessLookupError:
                continue
        self.process.wait(timeout=STOP_SECONDS)
        deadline = time.monotonic() + STOP_SECONDS
        while any(Path(f"/proc/{v}").exists() for v in victims) and time.monotonic() < deadline:
            time.sleep(0.05)

    def log_text(self) -> str:
        """What the runtime has written so far (every start's output, appended)."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def request(self, url: str, method: str = "GET", body: Any = None) -> tuple[int, Any]:
        """Send a JSON request; return the status and the decoded JSON answer."""
        data = None if body is None else json.dumps(body).encode()
        headers = {} if body is None else {"Content-Type": "application/json"}
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=REQUEST_SECONDS) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def status(self) -> Any:
        """The admin API's `/status` snapshot."""
        return self.request(f"{self.admin}/status")[1]

    def fire_ping_source(self, namespace: str, name: str, data: Any = None) -> tuple[int, Any]:
        """Fire a PingSource now through the admin API; `data` replaces its data if given.

        :return: the status and JSON answer of its sink's reply.
        """
        url = f"{self.admin}/pingsources/{namespace}/{name}"
        if data is None:
            return self.request(url, "POST")
        return self.request(url, "POST", data)

"""Kafka for tests and benchmarks: the shared broker, a private one, and a runtime on Kafka.

- :func:`require_kafka`: the shared Kafka that `make kafka` runs (KAFKA_BOOTSTRAP_SERVERS,
  default 127.0.0.1:9092); skips the test when it is down, fails it when `CI=true`.
- :class:`PrivateKafka`: a Kafka of one test's own, on free ports with its own data folder,
  started and stopped by the project's tools/kafka.sh, for tests that kill it.
- :class:`RuntimeProcess`: `knlocal run` (what `make run` execs) as a subprocess on free loopback
  ports with its own data folder; its `sweep()` re-drives stalled operations on demand.
- :func:`drop`: deletes the topics and consumer groups a test created on the shared Kafka.
"""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from knlocal.settings import Settings
from tests.conftest import require_server

ROOT = Path(__file__).resolve().parents[4]
#: Bound on starting a Kafka or a runtime (a cold JVM on a busy 2-core machine).
START_SECONDS = 120.0


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def reachable(servers: str) -> bool:
    """Whether the first bootstrap server accepts TCP connections."""
    host, _, port = servers.split(",")[0].rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except OSError:
        return False
    return True


def require_kafka() -> Settings:
    """The runtime's settings, with the shared Kafka up; else skip (fail when `CI=true`)."""
    settings = Settings.from_env()
    servers = settings.kafka_bootstrap_servers
    require_server(f"Kafka at {servers}", reachable(servers), "run `make kafka`")
    return settings


def drop(servers: str, topics: Iterable[str] = (), groups: Iterable[str] = ()) -> None:
    """Delete topics and consumer groups (what a test created); missing ones are ignored."""
    admin = KafkaAdminClient(bootstrap_servers=servers, client_id="tests-cleanup")
    try:
        with contextlib.suppress(KafkaError):
            if groups := list(groups):
                admin.delete_groups(groups)
        with contextlib.suppress(KafkaError):
            if topics := list(topics):
                admin.delete_topics(topics, raise_errors=False)
    finally:
        admin.close()


class PrivateKafka:
    """A Kafka of one test's own: `tools/kafka.sh` on free ports, data in `data_dir`.

    :param data_dir: an empty folder for its log and metadata.
    """

    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        self.env = {
            **os.environ,
            "KAFKA_PORT": str(self.port),
            "KAFKA_CONTROLLER_PORT": str(free_port()),
            "KAFKA_DATA_DIR": str(data_dir),
            "KAFKA_START_TIMEOUT": str(int(START_SECONDS)),
        }
        self.pid_file = ROOT / ".run" / f"kafka-{self.port}.pid"

    @property
    def servers(self) -> str:
        """Its bootstrap address."""
        return f"127.0.0.1:{self.port}"

    def _script(self, command: str) -> None:
        result = subprocess.run(
            ["bash", "tools/kafka.sh", command],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=START_SECONDS + 60,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"tools/kafka.sh {command} on port {self.port} failed:\n"
                f"{result.stdout}{result.stderr}"
            )

    def start(self) -> None:
        """Start it (again) and return once it serves requests."""
        self._script("start")

    def kill(self) -> None:
        """`kill -9` it, as a crash would, and wait until it is gone."""
        pid = int(self.pid_file.read_text().strip())
        # The pid file is ours, but check the process is still that Kafka before killing it.
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        assert b"kafka.Kafka" in cmdline, f"pid {pid} is not our Kafka: {cmdline!r}"
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop it (SIGTERM, then SIGKILL) if it runs, and remove its files from .run/."""
        self._script("stop")
        for path in (ROOT / ".run").glob(f"kafka-{self.port}[.-]*"):
            if path.is_file():  # its pid, lock, log and properties; the data is in data_dir
                path.unlink()


class RuntimeProcess:
    """`knlocal run` as a subprocess on free loopback ports with its own data folder.

    :param data_dir: SQLite files and logs; the runtime's output goes to `data_dir/runtime.log`.
    :param env: settings on top of the environment (e.g. BROKER, KAFKA_BOOTSTRAP_SERVERS).
    """

    def __init__(self, data_dir: Path, env: Mapping[str, str]) -> None:
        self.data_dir = data_dir
        ports = (free_port(), free_port(), free_port())
        self.env = {
            **os.environ,
            "INGRESS_PORT": str(ports[0]),
            "BROKER_PORT": str(ports[1]),
            "ADMIN_PORT": str(ports[2]),
            "DATA_DIR": str(data_dir),
            **env,
        }
        self.ingress = f"http://127.0.0.1:{ports[0]}"
        self.admin = f"http://127.0.0.1:{ports[2]}"
        self.log = data_dir / "runtime.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start it and return once it says it is ready.

        :raises RuntimeError: it exited or did not get ready; with its output.
        """
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "knlocal.cli", "run"],
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_SECONDS
        while b"knlocal: ready" not in self.log.read_bytes():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the runtime did not start:\n{self.log.read_text()}")
            time.sleep(0.1)

    def stop(self) -> None:
        """Ctrl-C it (SIGINT) and wait; SIGKILL if it has not stopped within 30 s."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def request(self, url: str, method: str = "GET", body: Any = None) -> tuple[int, Any]:
        """Send a JSON request; return the status and the decoded JSON answer."""
        data = None if body is None else json.dumps(body).encode()
        headers = {} if body is None else {"Content-Type": "application/json"}
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def create_user(self, name: str) -> tuple[int, Any]:
        """`POST /users`."""
        return self.request(f"{self.ingress}/users", "POST", {"name": name})

    def operation(self, operation_id: str) -> Any:
        """`GET /operations/<id>`."""
        status, body = self.request(f"{self.ingress}/operations/{operation_id}")
        assert status == 200, (status, body)
        return body

    def status(self) -> Any:
        """The admin endpoint's `/status` snapshot."""
        return self.request(f"{self.admin}/status")[1]

    def sweep(self, stalled_after: float = 2, fail_after: float = 600) -> Any:
        """Fire the PingSource operation-sweep now, through the admin API, with this policy as
        its data: a ping event to operation-create's /sweep (a cluster-local Service).

        :return: the sweep's counts (pending, republished, failed, unpublished).
        """
        policy = {"stalledAfterSeconds": stalled_after, "failAfterSeconds": fail_after}
        request = urllib.request.Request(
            f"{self.admin}/pingsources/default/operation-sweep",
            data=json.dumps(policy).encode(),
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200
            return json.loads(response.read())

"""Instances: the processes that serve a Knative Service's revision (one per "pod").

The runtime binds each instance's loopback socket itself and hands the listening descriptor to
gunicorn (`--bind fd://N`). So the port is known before the process starts, no other process can
take it, and a request sent while the instance boots waits in the socket's backlog instead of
being refused.
"""

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import aiohttp

from knlocal.errors import LocalRuntimeError


class InstanceStartError(LocalRuntimeError):
    """An instance exited or did not become ready in time."""


class Process(Protocol):
    """What the runtime needs of an instance's process (a Popen, or a forked pid)."""

    pid: int
    returncode: int | None

    def poll(self) -> int | None:
        """None while running, else the exit code."""
        ...

    def wait(self) -> int:
        """Block until the process exits."""
        ...


@dataclass(eq=False)
class Instance:
    """One running instance of a revision.

    :ivar active: requests this instance is serving now (the runtime's queue-proxy count).
    :ivar draining: set when scaling down: no new request is sent to it.
    """

    name: str
    host: str
    port: int
    process: Process
    started_at: float
    ready_at: float = 0.0
    active: int = 0
    draining: bool = False
    log_path: Path | None = field(default=None)

    @property
    def url(self) -> str:
        """The instance's base URL."""
        return f"http://{self.host}:{self.port}"

    @property
    def cold_start_seconds(self) -> float:
        """Time from process start to ready (first health response served)."""
        return self.ready_at - self.started_at

    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.process.poll() is None

    async def stop(self, grace: float = 10.0) -> None:
        """Stop like Kubernetes does: SIGTERM, then SIGKILL after `grace` seconds."""
        if self.process.poll() is not None:
            return
        _signal_group(self.process, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while self.process.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        if self.process.poll() is None:
            _signal_group(self.process, signal.SIGKILL)
            await asyncio.to_thread(self.process.wait)
        self.process.poll()


class Launcher(Protocol):
    """Starts instances; the seam where a faster start technique plugs in."""

    async def start(self, name: str, env: Mapping[str, str], ready_timeout: float) -> Instance:
        """Start one instance with the Knative runtime-contract `env` and wait until it is ready.

        :raises InstanceStartError: the process exited or was not ready within `ready_timeout`.
        """
        ...

    def close(self) -> None:
        """Release what the launcher holds (instances are stopped before)."""
        ...


class AppLauncher:
    """What every launcher starts instances of: the application's WSGI app under gunicorn.

    :param wsgi_app: gunicorn's target, e.g. `package.wsgi:create_app()` (the image's CMD).
    :param host: the loopback address to bind.
    :param log_dir: each instance's stdout/stderr go to `<log_dir>/<service>.log`.
    :param session: the HTTP client used to probe readiness.
    :param gunicorn_config: gunicorn's `-c`, `python:package.module` (the image's settings);
        empty: gunicorn's defaults.
    """

    def __init__(
        self,
        wsgi_app: str,
        host: str,
        log_dir: Path,
        session: aiohttp.ClientSession,
        *,
        gunicorn_config: str = "",
    ) -> None:
        self.wsgi_app = wsgi_app
        self.gunicorn_config = gunicorn_config
        self.host = host
        self.log_dir = log_dir
        self.session = session


class GunicornLauncher(AppLauncher):
    """Runs each instance as `gunicorn <wsgi_app>` (a fresh interpreter, as the image does) on a
    loopback socket the runtime bound."""

    async def start(self, name: str, env: Mapping[str, str], ready_timeout: float) -> Instance:
        """See :meth:`Launcher.start`."""
        listener = bind_listener(self.host)
        port = listener.getsockname()[1]
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            *(["-c", self.gunicorn_config] if self.gunicorn_config else []),
            "--bind",
            f"fd://{listener.fileno()}",
            self.wsgi_app,
        ]
        started = time.monotonic()
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                command,
                # Only the computed environment, as the zygote's instances get (and a pod).
                env={**env, "PORT": str(port)},
                pass_fds=(listener.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                # Its own process group: Ctrl-C in the terminal reaches the runtime only, which
                # then stops every instance in order.
                start_new_session=True,
            )
        # The child owns the socket now; if it dies, clients get a refusal instead of a hang.
        listener.close()
        instance = Instance(name, self.host, port, process, started, log_path=log_path)
        try:
            await wait_ready(self.session, instance, ready_timeout)
        except BaseException:
            await instance.stop(grace=1.0)
            raise
        instance.ready_at = time.monotonic()
        return instance

    def close(self) -> None:
        """Nothing to release: each instance is its own process."""


def bind_listener(host: str) -> socket.socket:
    """Bind and listen on a free port of `host`, for one instance.

    TCP_NODELAY is set here because accepted connections inherit it: without it, a response
    written in two sends (headers, then body) waits for the client's delayed ACK, about 40 ms
    on Linux, on every keep-alive request.
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    listener.bind((host, 0))
    listener.listen(1024)
    return listener


async def wait_ready(session: aiohttp.ClientSession, instance: Instance, timeout: float) -> None:
    """Probe `/health/readiness` until it answers 200.

    The socket is listening before the process starts, so one probe waits in the backlog until
    the server accepts it; a dead process turns it into a refusal at once.

    :raises InstanceStartError: the process exited, or `timeout` passed.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not instance.alive():
            raise InstanceStartError(
                f"{instance.name} exited with code {instance.process.returncode} while"
                f" starting; see {instance.log_path}"
            )
        try:
            async with session.get(
                f"{instance.url}/health/readiness",
                timeout=aiohttp.ClientTimeout(
                    total=min(1.0, max(0.05, deadline - time.monotonic()))
                ),
            ) as response:
                if response.status == 200:
                    return
        except (aiohttp.ClientError, TimeoutError):
            pass
        await asyncio.sleep(0.002)
    raise InstanceStartError(
        f"{instance.name} was not ready after {timeout:.0f} s; see {instance.log_path}"
    )


def _signal_group(process: Process, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)

"""Cold starts in milliseconds: fork instances from a warm template process (a zygote).

A fresh instance would pay for a new interpreter and the imports of Flask, the CloudEvents SDK and
the functions (about 200 to 500 ms here). The zygote pays that once: it imports the WSGI app's
module
and gunicorn, then waits. For each instance the runtime binds a loopback socket and sends its
descriptor with the instance's environment over a Unix socket; the zygote forks, and the child
becomes a gunicorn master serving the app on that socket. Copy-on-write makes the fork cheap
(≈ 2 ms), so a cold start costs the app factory plus gunicorn's own worker fork.

Every child leads its own session (so signals reach only it) and asks the kernel to SIGTERM it
when the zygote dies; the zygote asks the same when the runtime dies. A crashed runtime therefore
leaves no instance behind.
"""

import asyncio
import contextlib
import ctypes
import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp

from knlocal.serving.instances import GUNICORN_CONFIG, Instance, InstanceStartError, wait_ready

_PR_SET_PDEATHSIG = 1
_MAX_MESSAGE = 1 << 20


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM this process when its parent exits (prctl PR_SET_PDEATHSIG)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class ForkedProcess:
    """A process forked by the zygote: not our child, so it is watched by pid."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        """None while the process runs; -1 once it is gone (the zygote reaps it)."""
        if self.returncode is None:
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                self.returncode = -1
            except PermissionError:
                pass
        return self.returncode

    def wait(self) -> int:
        """Block until the process is gone."""
        while self.poll() is None:
            time.sleep(0.01)
        return -1


class ForkLauncher:
    """Starts instances by forking the warm template; see the module docstring.

    :param wsgi_app: gunicorn's target, e.g. `functions.wsgi:create_app()`; its module is
        imported by the zygote.
    :param host: the loopback address to bind.
    :param log_dir: each instance's output goes to `<log_dir>/<service>.log`.
    :param session: the HTTP client used to probe readiness.
    """

    def __init__(
        self, wsgi_app: str, host: str, log_dir: Path, session: aiohttp.ClientSession
    ) -> None:
        self.wsgi_app = wsgi_app
        self.host = host
        self.log_dir = log_dir
        self.session = session
        self._zygote: subprocess.Popen[bytes] | None = None
        self._control: socket.socket | None = None
        self._lock = asyncio.Lock()

    def open(self) -> None:
        """Start the zygote (it warms up in the background while the runtime starts)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_dir / "zygote.log", "ab") as log:
            self._zygote = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "knlocal.serving.zygote",
                    str(theirs.fileno()),
                    self.wsgi_app,
                ],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        theirs.close()
        self._control = ours

    async def start(self, name: str, env: Mapping[str, str], ready_timeout: float) -> Instance:
        """See :class:`knlocal.serving.instances.Launcher`."""
        if self._control is None:
            self.open()
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, 0))
        listener.listen(1024)
        port = listener.getsockname()[1]
        log_path = self.log_dir / f"{name}.log"
        request = json.dumps({"env": {**env, "PORT": str(port)}, "log": str(log_path)}).encode()
        started = time.monotonic()
        try:
            async with self._lock:
                pid = await asyncio.to_thread(self._fork, request, listener.fileno())
        finally:
            listener.close()  # the child holds its own copy
        instance = Instance(name, self.host, port, ForkedProcess(pid), started, log_path=log_path)
        try:
            await wait_ready(self.session, instance, ready_timeout)
        except BaseException:
            await instance.stop(grace=1.0)
            raise
        instance.ready_at = time.monotonic()
        return instance

    def _fork(self, request: bytes, fd: int) -> int:
        assert self._control is not None
        if self._zygote is not None and self._zygote.poll() is not None:
            raise InstanceStartError(
                f"the template process exited with code {self._zygote.returncode};"
                f" see {self.log_dir / 'zygote.log'}"
            )
        socket.send_fds(self._control, [request], [fd])
        reply = json.loads(self._control.recv(4096))
        if "error" in reply:
            raise InstanceStartError(f"the template process could not fork: {reply['error']}")
        return int(reply["pid"])

    def close(self) -> None:
        """Stop the zygote (instances are stopped by their revisions first)."""
        if self._control is not None:
            self._control.close()
            self._control = None
        if self._zygote is not None:
            with contextlib.suppress(ProcessLookupError):
                self._zygote.terminate()
            try:
                self._zygote.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._zygote.kill()
                self._zygote.wait()
            self._zygote = None


# -- the zygote process ----------------------------------------------------------------------


def _serve(control_fd: int, wsgi_app: str) -> None:
    _die_with_parent()
    # Children are reaped by the kernel: the runtime watches them by pid.
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    # Pay for the imports once; every fork inherits them.
    module = wsgi_app.split(":", 1)[0]
    importlib.import_module(module)
    import gunicorn.app.base
    import gunicorn.arbiter
    import gunicorn.workers.gthread  # noqa: F401

    warm = getattr(sys.modules[module], "warm_up", None)
    if callable(warm):
        warm()
    control = socket.socket(fileno=control_fd)
    while True:
        try:
            data, fds, _, _ = socket.recv_fds(control, _MAX_MESSAGE, 1)
        except OSError:
            return
        if not data:
            return  # the runtime closed the control socket
        request: dict[str, Any] = json.loads(data)
        try:
            pid = os.fork()
        except OSError as exc:
            control.send(json.dumps({"error": str(exc)}).encode())
            for fd in fds:
                os.close(fd)
            continue
        if pid == 0:
            control.close()
            _child(fds[0], request, wsgi_app)
        for fd in fds:
            os.close(fd)
        control.send(json.dumps({"pid": pid}).encode())


def _child(fd: int, request: dict[str, Any], wsgi_app: str) -> None:
    code = 1
    try:
        os.setsid()
        _die_with_parent()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        os.environ.clear()
        os.environ.update(request["env"])
        _run_gunicorn(fd, wsgi_app)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        os._exit(code)


def _run_gunicorn(fd: int, wsgi_app: str) -> None:
    from gunicorn.app.base import BaseApplication
    from gunicorn.util import import_app

    class Application(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            config = importlib.import_module(GUNICORN_CONFIG.removeprefix("python:"))
            for key, value in vars(config).items():
                if key in self.cfg.settings and value is not None:
                    self.cfg.set(key, value)
            self.cfg.set("bind", [f"fd://{fd}"])

        def load(self) -> Any:
            return import_app(wsgi_app)

    Application().run()


if __name__ == "__main__":
    _serve(int(sys.argv[1]), sys.argv[2])

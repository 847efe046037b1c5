"""Cold starts in milliseconds: fork instances from a warm template process (a zygote).

A fresh instance would pay for a new interpreter and the imports of Flask, the CloudEvents SDK and
the functions (about 200 to 500 ms here). The zygote pays that once: it imports the WSGI app's
module and gunicorn, runs the module's `warm_up` hook, builds gunicorn's default configuration,
then waits. Copy-on-write makes each fork cheap (≈ 1-2 ms).

To take the fork itself and the child's first page faults off the critical path, the zygote keeps
one *spare*: a child forked ahead of need that holds no app, no environment and no port, and
blocks until it is given them. The spare runs the warm-up hook once more, so that the memory
pages serving touches are already its own (copy-on-write) when it becomes an instance.

For each instance the runtime binds a loopback socket and sends its descriptor with the
instance's environment over a Unix socket; the zygote hands both to the spare, answers with its
pid, and forks the next spare. The spare becomes the instance: it loads the app and serves it
on that socket with gunicorn's own worker, the class the gunicorn settings name (e.g. `gthread`).

The instance runs the worker in-process, without gunicorn's arbiter. The image's
`gunicorn -c <gunicorn-config> <wsgi-app>` (the application's `[tool.knlocal]`) runs an arbiter
that forks that same worker (with one worker configured); here the revision is the supervisor
(it replaces dead instances, as the kubelet restarts a container), so the arbiter's fork, its
signal pipe and its heartbeat would only add ≈ 25 ms to every cold start. The worker, its
settings, its HTTP parser and the WSGI app are the image's.

Every child leads its own session (so signals reach only it) and asks the kernel to SIGTERM it
when the zygote dies; the zygote asks the same when the runtime dies. A crashed runtime therefore
leaves no instance behind.
"""

import asyncio
import atexit
import contextlib
import ctypes
import gc
import importlib
import importlib.abc
import importlib.util
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import CodeType
from typing import Any

from knlocal.serving.instances import (
    AppLauncher,
    Instance,
    InstanceStartError,
    bind_listener,
    wait_ready,
)

_PR_SET_PDEATHSIG = 1
_MAX_MESSAGE = 1 << 20
#: Seconds a new spare waits for a request before it warms up.
_SPARE_PATIENCE = 0.05


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


class ForkLauncher(AppLauncher):
    """Starts instances by forking the warm template; see the module docstring. The zygote
    imports the WSGI app's module and the gunicorn settings once (see :class:`AppLauncher`)."""

    _zygote: subprocess.Popen[bytes] | None = None
    _control: socket.socket | None = None
    #: Made by :meth:`open`: one start at a time talks to the zygote.
    _lock: asyncio.Lock

    def open(self) -> None:
        """Start the zygote (it warms up in the background while the runtime starts)."""
        self._lock = asyncio.Lock()
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
                    self.gunicorn_config,
                ],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        theirs.close()
        # Driven by the event loop: a thread hop per start would add its scheduling delay.
        ours.setblocking(False)
        self._control = ours

    async def start(self, name: str, env: Mapping[str, str], ready_timeout: float) -> Instance:
        """See :class:`knlocal.serving.instances.Launcher`."""
        if self._control is None:
            self.open()
        listener = bind_listener(self.host)
        port = listener.getsockname()[1]
        log_path = self.log_dir / f"{name}.log"
        request = json.dumps({"env": {**env, "PORT": str(port)}, "log": str(log_path)}).encode()
        started = time.monotonic()
        try:
            async with self._lock:
                pid = await self._fork(request, listener.fileno())
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

    async def _fork(self, request: bytes, fd: int) -> int:
        assert self._control is not None
        if self._zygote is not None and self._zygote.poll() is not None:
            raise InstanceStartError(
                f"the template process exited with code {self._zygote.returncode};"
                f" see {self.log_dir / 'zygote.log'}"
            )
        # One small message on an empty socket (the lock allows one start at a time): it never
        # finds the buffer full, so the non-blocking send does not need the event loop.
        socket.send_fds(self._control, [request], [fd])
        reply = json.loads(await asyncio.get_running_loop().sock_recv(self._control, 4096))
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


@dataclass(frozen=True)
class _Template:
    """What the zygote prepares once for every instance.

    :ivar wsgi_app: gunicorn's target.
    :ivar config: gunicorn's default configuration (≈ 100 settings objects, ≈ 2 ms to build).
    :ivar settings: the compiled gunicorn settings module of the image (empty without one);
        run in each instance under its own environment, since the
        settings read it (CONTAINER_CONCURRENCY sets the threads).
    :ivar warm_up: the app module's `warm_up` hook, if it has one.
    """

    wsgi_app: str
    config: Any
    settings: CodeType
    warm_up: Callable[[], None] | None


def _settings_code(gunicorn_config: str) -> CodeType:
    """The compiled module `python:<module>` names (what gunicorn's `-c` loads); empty code
    without one."""
    if not gunicorn_config:
        return compile("", "<gunicorn defaults>", "exec")
    settings = gunicorn_config.removeprefix("python:")
    spec = importlib.util.find_spec(settings) if gunicorn_config != settings else None
    loader = spec.loader if spec else None
    code = loader.get_code(settings) if isinstance(loader, importlib.abc.InspectLoader) else None
    if not isinstance(code, CodeType):
        raise SystemExit(
            f"cannot load the gunicorn settings {gunicorn_config!r}: expected python:<module>"
        )
    return code


class _Spare:
    """A child forked ahead of need, waiting on its own socket to become an instance."""

    def __init__(self, pid: int, channel: socket.socket) -> None:
        self.pid = pid
        self.channel = channel

    @classmethod
    def fork(cls, control: socket.socket, template: _Template) -> "_Spare":
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = os.fork()
        if pid == 0:
            control.close()
            ours.close()
            _become_instance(theirs, template)
        theirs.close()
        return cls(pid, ours)

    def assign(self, request: bytes, fd: int) -> int:
        """Hand the spare its instance's request and socket; return its pid."""
        try:
            socket.send_fds(self.channel, [request], [fd])
        finally:
            self.channel.close()
        return self.pid


def _serve(control_fd: int, wsgi_app: str, gunicorn_config: str) -> None:
    _die_with_parent()
    # Children are reaped by the kernel: the runtime watches them by pid.
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    # Pay for the imports once; every fork inherits them.
    module = wsgi_app.split(":", 1)[0]
    importlib.import_module(module)
    import gunicorn.app.base
    import gunicorn.glogging
    import gunicorn.sock
    import gunicorn.util
    import gunicorn.workers.gthread  # noqa: F401
    from gunicorn.config import Config

    warm = getattr(sys.modules[module], "warm_up", None)
    warm = warm if callable(warm) else None
    if warm is not None:
        warm()
    template = _Template(wsgi_app, Config(), _settings_code(gunicorn_config), warm)
    # Objects that exist now are never collected in a child, so its collector never walks (and
    # so never copies) the template's pages: a young instance stays mostly shared memory.
    gc.freeze()
    control = socket.socket(fileno=control_fd)
    spare: _Spare | None = None
    while True:
        try:
            data, fds, _, _ = socket.recv_fds(control, _MAX_MESSAGE, 1)
        except OSError:
            return
        if not data:
            return  # the runtime closed the control socket
        try:
            pid = _assign(spare, control, template, data, fds[0])
        except OSError as exc:
            control.send(json.dumps({"error": str(exc)}).encode())
            continue
        finally:
            spare = None
            for fd in fds:
                os.close(fd)
        control.send(json.dumps({"pid": pid}).encode())
        with contextlib.suppress(OSError):  # no spare now: the next request forks one
            spare = _Spare.fork(control, template)


def _assign(
    spare: _Spare | None, control: socket.socket, template: _Template, request: bytes, fd: int
) -> int:
    """Give an instance's request to the spare, or to a fresh one if there is none or it died."""
    if spare is not None:
        with contextlib.suppress(OSError):
            return spare.assign(request, fd)
    return _Spare.fork(control, template).assign(request, fd)


def _become_instance(channel: socket.socket, template: _Template) -> None:
    """The spare: wait for an instance's request, then serve it until stopped; never returns."""
    code = 1
    try:
        os.setsid()
        _die_with_parent()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        # Again, in the spare: serving touches (and so copies, copy-on-write) thousands of the
        # template's memory pages; copying them now, ahead of need, takes ≈ 8 ms off a cold
        # start. Not when the spare is wanted at once (instances starting together): the
        # warm-up would then only delay it, and take the CPU its siblings start with.
        wanted = select.select([channel], [], [], _SPARE_PATIENCE)[0]
        if template.warm_up is not None and not wanted:
            template.warm_up()
        data, fds, _, _ = socket.recv_fds(channel, _MAX_MESSAGE, 1)
        channel.close()
        if not data:
            code = 0  # the zygote stopped before this spare was needed
            return
        request: dict[str, Any] = json.loads(data)
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        os.environ.clear()
        os.environ.update(request["env"])
        _run_worker(fds[0], template)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        # What a normal exit would run first, e.g. the app's last export of buffered spans.
        atexit._run_exitfuncs()
        os._exit(code)


def _run_worker(fd: int, template: _Template) -> None:
    """Serve the WSGI app on the listening socket `fd` with gunicorn's worker, until SIGTERM."""
    from gunicorn import sock
    from gunicorn.app.base import BaseApplication
    from gunicorn.util import import_app

    class Application(BaseApplication):  # type: ignore[misc]
        def load_default_config(self) -> None:
            self.cfg = template.config

        def load_config(self) -> None:
            settings: dict[str, Any] = {"__name__": "gunicorn_settings"}
            exec(template.settings, settings)  # the image's settings, under our environment
            for key, value in settings.items():
                if key in self.cfg.settings and value is not None:
                    self.cfg.set(key, value)
            self.cfg.set("bind", [f"fd://{fd}"])

        def load(self) -> Any:
            return import_app(template.wsgi_app)

    app = Application()
    cfg = app.cfg
    log = cfg.logger_class(cfg)
    # What gunicorn's arbiter does before it forks the worker (Arbiter.spawn_worker), minus the
    # fork: the worker's parent is the zygote, and the worker exits if that parent changes.
    worker = cfg.worker_class(
        1, os.getppid(), sock.create_sockets(cfg, log), app, cfg.timeout / 2.0, cfg, log
    )
    worker.pid = os.getpid()
    log.info("Booting worker with pid: %s", worker.pid)
    worker.init_process()


if __name__ == "__main__":
    _serve(int(sys.argv[1]), sys.argv[2], sys.argv[3])

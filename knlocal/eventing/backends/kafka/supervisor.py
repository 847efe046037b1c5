"""A process of the Kafka data plane as the runtime runs it: started, watched, restarted.

Knative runs its Kafka broker's receiver and dispatcher as deployments of their own, which
Kubernetes restarts when they die (knative-semantics.md §3.1). Here the runtime does that: it
starts each as `python -m <module> <fd>`, with one end of a socket pair as its only link, and
when the link ends without being asked to, it reports the exit, lets the backend fail what was
waiting on the process, and starts it again (after RESTART_DELAY_SECONDS, until it opens).
"""

import asyncio
import contextlib
import logging
import socket
import subprocess
import sys
from collections.abc import Callable
from typing import Final

from knlocal.errors import BackendError
from knlocal.eventing.backends.kafka.config import REQUEST_TIMEOUT_MS
from knlocal.eventing.backends.kafka.wire import Link, Message

log = logging.getLogger("knlocal.eventing")

#: Pause before starting a process again that died or could not open.
RESTART_DELAY_SECONDS: Final = 1.0
#: How long a process may take to open: it connects to Kafka, creates the topic or clients.
OPEN_TIMEOUT_SECONDS: Final = 3 * REQUEST_TIMEOUT_MS / 1000 + 30
#: How long a process may take to stop when asked (it commits and leaves its groups).
STOP_TIMEOUT_SECONDS: Final = 2 * REQUEST_TIMEOUT_MS / 1000 + 5


class DataPlaneProcess:
    """One data-plane process: its `python -m` module, the message that opens it, its handlers.

    :param module: the module it runs.
    :param what: how messages name it (e.g. "Kafka receiver of Broker default/default").
    :param opening: the first message it gets; it answers ``("opened", …)`` or
        ``("failed", reason)``.
    :param on_message: called on the loop with each later message it sends.
    :param on_restart: called on the loop once it was started again after dying, opened.
    :param on_exit: called on the loop when it died (before it is restarted).
    """

    def __init__(
        self,
        module: str,
        what: str,
        opening: Message,
        on_message: Callable[[Message], None],
        on_restart: Callable[[], None],
        on_exit: Callable[[], None],
    ) -> None:
        self.module = module
        self.what = what
        self.opening = opening
        self.on_message = on_message
        self.on_restart = on_restart
        self.on_exit = on_exit
        #: Counts the starts: what the process handed out before a restart is void after it.
        self.incarnation = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._link: Link | None = None
        self._reader: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def running(self) -> bool:
        """Whether it is open and its link up."""
        return self._link is not None and not self._link.closed

    async def start(self) -> Message:
        """Start it and wait until it opened.

        :return: its ``opened`` message.
        :raises BackendError: it reported why it could not open, or exited.
        """
        ours, theirs = socket.socketpair()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", self.module, str(theirs.fileno())],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
            )
        finally:
            theirs.close()
        reader, writer = await asyncio.open_unix_connection(sock=ours)
        link = Link(reader, writer)
        link.send(self.opening)
        try:
            first = await asyncio.wait_for(link.receive(), OPEN_TIMEOUT_SECONDS)
        except TimeoutError:
            first = [("failed", f"it did not open within {OPEN_TIMEOUT_SECONDS:.0f} s")]
        opened = first[0] if first else ("failed", "it exited while opening")
        if opened[0] != "opened":
            link.close()
            await self._reap()
            raise BackendError(f"{self.what}: {opened[1]}")
        self.incarnation += 1
        self._link = link
        self._reader = asyncio.create_task(self._read(link), name=self.what)
        return opened

    def send(self, message: Message) -> None:
        """Send a message (in the next frame); dropped while the process is down."""
        if self._link is not None:
            self._link.send(message)

    async def stop(self, message: Message) -> None:
        """Ask it to stop with `message`, wait for its exit (then SIGKILL), never restart it."""
        self._stopping = True
        if self._link is not None:
            self._link.send(message)
        if self._reader is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._reader), STOP_TIMEOUT_SECONDS)
            self._reader.cancel()
        if self._link is not None:
            self._link.close()
        await self._reap()

    async def _read(self, link: Link) -> None:
        while (messages := await link.receive()) is not None:
            for message in messages:
                try:
                    self.on_message(message)
                except Exception:
                    log.exception("%s: handling %r failed", self.what, message[0])
        link.close()
        if self._stopping:
            return
        code = await self._reap()
        log.error("%s: the process exited (code %s); restarting it", self.what, code)
        self._link = None
        self.on_exit()
        while not self._stopping:
            await asyncio.sleep(RESTART_DELAY_SECONDS)
            try:
                await self.start()
            except BackendError as exc:
                log.warning("%s: could not start it again (%s); retrying", self.what, exc)
                continue
            self.on_restart()
            return

    async def _reap(self) -> int | None:
        """Wait for the process to exit (SIGKILL after STOP_TIMEOUT_SECONDS); its exit code."""
        process = self.process
        if process is None:
            return None
        try:
            return await asyncio.to_thread(process.wait, STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            return await asyncio.to_thread(process.wait)

"""The functions' gunicorn worker: gthread, less its hand-offs between threads on every request.

gunicorn's gthread worker passes every request of a kept-alive connection from its main thread
(an epoll loop) to a pool thread and back again: a selector registration, a queue, a future, a
callback, a pipe write and a wake-up of the main thread, and a heartbeat `os.utime` on each turn
of the loop. This worker keeps gthread as it is, with two changes:

- **Sticky connections.** A pool thread that answered a kept-alive request waits on that
  connection for its next request (up to `STICKY_SECONDS`) and serves it itself. The runtime's
  proxy and Knative's queue-proxy reuse a few kept-alive connections per instance, so it usually
  comes: one wake-up per request instead of six. The thread gives the connection back to the main
  thread's poller, as gthread does, when no request came in time, when the worker stops, or as
  soon as another connection has a request that no free thread will take (it does not start
  waiting then, and the main thread rings a doorbell for one that arrives while it waits), so a
  sticky thread never keeps a request waiting: `threads` requests are still served at once,
  whatever the connections.
- **A lazy heartbeat.** The heartbeat file is touched only as often as the arbiter reads it:
  never when `timeout` is 0 (what `functions/gunicorn_conf.py` sets; `Arbiter.murder_workers`
  then reads nothing), else at most every quarter of `timeout` (it kills a worker silent for
  `timeout` seconds).

`python -m bench.bench_worker` measures it against gthread (CPU per request of one instance).
"""

import contextlib
import os
import select
import threading
import time
from typing import Any

from gunicorn.workers.gthread import ThreadWorker as _GthreadWorker

#: How long a pool thread waits on its kept-alive connection for the next request.
STICKY_SECONDS = 1.0


class ThreadWorker(_GthreadWorker):  # type: ignore[misc]
    """gthread's worker with sticky connections and a lazy heartbeat (see the module)."""

    _notified = float("-inf")

    def init_process(self) -> None:
        self._doorbell, self._ring = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._lock = threading.Lock()
        self._queued = 0  # connections with a request, waiting for a pool thread
        self._busy = 0  # pool threads serving a connection or waiting on theirs
        self._sticky = 0  # pool threads waiting on their connection
        super().init_process()

    def _unserved(self) -> bool:
        """Whether a request waits that no free pool thread will take (under `_lock`)."""
        return bool(self._queued > self.cfg.threads - self._busy)

    def enqueue_req(self, conn: Any) -> None:
        """gthread's: a request waits for a pool thread; with none free, ask a waiting one."""
        with self._lock:
            self._queued += 1
            ring = self._sticky > 0 and self._unserved()
        super().enqueue_req(conn)
        if ring:
            self._ring_doorbell()

    def handle_exit(self, sig: int, frame: Any) -> None:
        super().handle_exit(sig, frame)
        self._ring_doorbell()  # left unread: every waiting thread sees it and stops waiting

    def _ring_doorbell(self) -> None:
        # A full pipe of rings needs no more: the waiting threads are being woken anyway.
        with contextlib.suppress(BlockingIOError):
            os.write(self._ring, b"\0")

    def handle(self, conn: Any) -> Any:
        """gthread's, for each request that comes on `conn` while this thread waits on it."""
        with self._lock:
            self._queued -= 1
            self._busy += 1
        try:
            keepalive = super().handle(conn)
            while keepalive is True and self._next_request_comes(conn):
                keepalive = super().handle(conn)
            return keepalive
        finally:
            with self._lock:
                self._busy -= 1

    def _next_request_comes(self, conn: Any) -> bool:
        """Wait for `conn`'s next request; False to give the connection back (see the module)."""
        if conn.parser.unreader.buf.getvalue():
            return True  # read ahead already (a drained body ran into the next request)
        if self.cfg.is_ssl:
            return False  # bytes may wait in the TLS layer, unseen by poll: gthread's way
        poller = select.poll()
        poller.register(conn.sock, select.POLLIN)
        poller.register(self._doorbell, select.POLLIN)
        deadline = time.monotonic() + STICKY_SECONDS
        with self._lock:
            if self._unserved():
                return False  # a request waits for a thread: this one takes it
            self._sticky += 1
        try:
            # A stop (SIGTERM) rings the doorbell and leaves the ring for every waiting thread.
            while self.alive and (wait := deadline - time.monotonic()) > 0:
                ready = {fd for fd, _ in poller.poll(wait * 1000)}
                if conn.sock.fileno() in ready:
                    return True
                if self._doorbell in ready and self.alive and self._answer_doorbell():
                    return False
            return False
        finally:
            with self._lock:
                self._sticky -= 1

    def _answer_doorbell(self) -> bool:
        """Take one ring; False when another waiting thread took it first."""
        try:
            return bool(os.read(self._doorbell, 1))
        except BlockingIOError:
            return False

    def notify(self) -> None:
        # `self.timeout` is half the configured timeout (the arbiter passes `timeout / 2`).
        if not self.timeout:
            return
        now = time.monotonic()
        if now - self._notified >= self.timeout / 2:
            self._notified = now
            super().notify()

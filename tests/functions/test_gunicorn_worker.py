"""The functions' gunicorn worker, in a real gunicorn: what gthread gives a client, kept.

Served: the revision tests' sleeper app (`GET /sleep?seconds=S` answers the serving process and
the most requests it served at once), under the image's settings (`functions/gunicorn_conf.py`,
`CONTAINER_CONCURRENCY` threads), on raw kept-alive HTTP/1.1 connections.
"""

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from functions.gunicorn_worker import STICKY_SECONDS
from knlocal.process import descendants, free_port

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.knlocal.serving.wsgi_sleeper:create_app()"
SETTINGS = "python:functions.gunicorn_conf"
WORKER = "functions.gunicorn_worker.ThreadWorker"


@contextmanager
def gunicorn(concurrency: int, *extra: str) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """gunicorn of the image's settings and this worker; yields its port and the arbiter."""
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "CONTAINER_CONCURRENCY": str(concurrency),
    }
    command = [sys.executable, "-m", "gunicorn", "-c", SETTINGS, "--bind", f"127.0.0.1:{port}"]
    arbiter = subprocess.Popen(
        [*command, *extra, APP], cwd=ROOT, env=env, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 20
        while not _answers(port):
            assert arbiter.poll() is None and time.monotonic() < deadline, "gunicorn did not start"
            time.sleep(0.05)
        yield port, arbiter
    finally:
        if arbiter.poll() is None:
            arbiter.send_signal(signal.SIGTERM)
            arbiter.wait(timeout=20)


def _answers(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", "/health/readiness")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def _sleep(connection: http.client.HTTPConnection, seconds: float = 0) -> dict[str, int]:
    connection.request("GET", f"/sleep?seconds={seconds}")
    response = connection.getresponse()
    assert response.status == 200
    assert response.getheader("Connection", "").lower() != "close"
    body: dict[str, int] = json.loads(response.read())
    return body


def test_the_image_settings_name_this_worker() -> None:
    from functions import gunicorn_conf

    assert gunicorn_conf.worker_class == WORKER


def test_requests_on_one_kept_alive_connection_are_all_answered_on_it() -> None:
    with gunicorn(2) as (port, _):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        replies = [_sleep(connection) for _ in range(50)]
        # Also after the connection sat idle longer than a thread waits on it (back to the poller).
        time.sleep(STICKY_SECONDS + 0.3)
        replies.append(_sleep(connection))
        connection.close()
    assert len({reply["pid"] for reply in replies}) == 1


def test_an_idle_kept_alive_connection_keeps_no_request_of_another_waiting() -> None:
    # One thread: it has just answered `idle` and waits on it; `other`'s request must not wait
    # for that wait to end (STICKY_SECONDS), the thread is asked back at once.
    with gunicorn(1) as (port, _):
        idle = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        other = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        _sleep(idle)
        for _ in range(5):
            started = time.monotonic()
            _sleep(other)
            assert time.monotonic() - started < STICKY_SECONDS / 4
            started = time.monotonic()
            _sleep(idle)  # and the connection given back is served again, as promptly
            assert time.monotonic() - started < STICKY_SECONDS / 4
        idle.close()
        other.close()


def test_as_many_requests_are_served_at_once_as_there_are_threads() -> None:
    with gunicorn(4) as (port, _):
        connections = [http.client.HTTPConnection("127.0.0.1", port, timeout=10) for _ in range(6)]
        for connection in connections:  # each a kept-alive connection a thread may wait on
            _sleep(connection)
        started = time.monotonic()
        with ThreadPoolExecutor(len(connections)) as pool:
            replies = list(pool.map(lambda c: _sleep(c, 0.5), connections))
        elapsed = time.monotonic() - started
        for connection in connections:
            connection.close()
    assert max(reply["peak"] for reply in replies) == 4
    assert elapsed < 1.5  # two rounds of 0.5 s: 4 at once, then 2, none kept waiting longer


def test_a_stopping_worker_gives_up_its_waiting_connections_at_once() -> None:
    with gunicorn(2) as (port, arbiter):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        _sleep(connection)
        started = time.monotonic()
        arbiter.send_signal(signal.SIGTERM)
        arbiter.wait(timeout=20)
        connection.close()
    # gthread lets kept-alive connections linger 1 s (STOP_KEEPALIVE_LINGER) when stopping.
    assert time.monotonic() - started < 2.5


def test_with_a_timeout_the_heartbeat_keeps_the_worker_alive() -> None:
    # The arbiter kills a worker whose heartbeat is older than `timeout` seconds.
    with gunicorn(2, "--timeout", "2") as (port, arbiter):
        workers = set(descendants(arbiter.pid))
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # busy, then idle: both must keep it beating
            _sleep(connection, 0.05)
        connection.close()
        time.sleep(3)
        assert set(descendants(arbiter.pid)) == workers

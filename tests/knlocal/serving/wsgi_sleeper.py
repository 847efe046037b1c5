"""A tiny WSGI app for the revision tests, served by the real launcher as a function would be.

`GET /health/readiness` answers 200 (503 during the first `READY_DELAY` seconds, default 0, to
play an instance that is slow to start); `GET /sleep?seconds=S` sleeps S seconds, then answers its
process id and the most requests it has served at once (JSON), so a test can tell which instance
served a request and whether the activator kept to `containerConcurrency`; `GET /env` answers
the names of the process's environment variables (JSON), so a test can tell what reached it.
"""

import json
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def create_app() -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    """The WSGI app (gunicorn target `tests.knlocal.serving.wsgi_sleeper:create_app()`)."""
    lock = threading.Lock()
    state = {"active": 0, "peak": 0}
    ready_at = time.monotonic() + float(os.environ.get("READY_DELAY", "0"))

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ["PATH_INFO"] == "/sleep":
            seconds = float(parse_qs(environ.get("QUERY_STRING", ""))["seconds"][0])
            with lock:
                state["active"] += 1
                state["peak"] = max(state["peak"], state["active"])
            time.sleep(seconds)
            with lock:
                state["active"] -= 1
                peak = state["peak"]
            body = json.dumps({"pid": os.getpid(), "peak": peak}).encode()
        elif environ["PATH_INFO"] == "/env":
            body = json.dumps(sorted(os.environ)).encode()
        elif time.monotonic() < ready_at:
            start_response("503 Service Unavailable", [("Content-Type", "application/json")])
            return [b'{"status":"starting"}']
        else:
            body = b'{"status":"ok"}'
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]

    return app

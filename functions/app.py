"""The one app factory: turns any function into a WSGI app that gunicorn serves on `$PORT`.

Event functions get `POST /`: the request must be a binary or structured CloudEvent; the reply
event, if any, is written in binary mode with `200`, otherwise `202` with no body. Public-API
functions get their routes. Every app serves `/health/readiness` and `/health/liveness`. Every
error is a JSON object `{"error": "<what was wrong>"}` with a 4xx/5xx status.
"""

import json
import logging
import time
from pathlib import Path
from typing import Any

from flask import Flask, Request, Response, request
from werkzeug.exceptions import HTTPException

from functions import tracing
from functions.catalog import OPERATION_ID_EXTENSION
from functions.ce import decode_http, encode_binary
from functions.contract import HttpRequest, HttpResponse
from functions.errors import FunctionError
from functions.registry import EventFunction, Function, HttpFunction
from functions.settings import Settings

log = logging.getLogger("functions")

#: Flask's root and instance paths, given so that Flask does not search `sys.path` for a module
#: named after the function (there is none) on every cold start.
_PACKAGE_DIR = str(Path(__file__).resolve().parent)


def create_app(function: Function, settings: Settings) -> Flask:
    """Build the WSGI app serving `function`.

    :param function: a function from :func:`functions.registry.load_function`.
    :param settings: limits such as the largest accepted body.
    :return: a Flask app; gunicorn serves it.
    """
    # No static folder: its route costs ≈ 0.5 ms to compile, and no function serves files.
    app = Flask(
        function.name, root_path=_PACKAGE_DIR, instance_path=_PACKAGE_DIR, static_folder=None
    )
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]

    @app.get("/health/readiness")
    @app.get("/health/liveness")
    def health() -> Response:
        return _json(200, {"status": "ok", "function": function.name})

    if isinstance(function, EventFunction):
        _add_event_route(app, function)
    else:
        _add_http_routes(app, function)

    @app.errorhandler(FunctionError)
    def function_error(exc: FunctionError) -> Response:
        if exc.status >= 500:
            log.warning("%s: %s", function.name, exc.message)
        return _json(exc.status, {"error": exc.message})

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        messages = {
            404: f"no route {request.method} {request.path} on {function.name}",
            405: f"method {request.method} not allowed on {request.path}",
            413: f"body larger than {settings.max_body_bytes} bytes",
        }
        status = exc.code or 500
        # A 405 says which methods the path serves (RFC 9110 §15.5.6).
        allow = {k: v for k, v in exc.get_headers() if k == "Allow"}
        return _json(status, {"error": messages.get(status, exc.description or exc.name)}, allow)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        log.exception("%s: unexpected error", function.name)
        return _json(500, {"error": f"internal error in {function.name}: {type(exc).__name__}"})

    return app


def warm_up() -> None:
    """Serve a health check and an event through a throwaway app, once.

    A process forked afterwards (knlocal's warm template) then finds what Flask, werkzeug and the
    CloudEvents SDK load on their first request (e.g. the `idna` codec of werkzeug's routing,
    ≈ 2 ms) already loaded, and its first response comes that much sooner.
    """
    app = create_app(EventFunction("warm-up", lambda event: None), Settings(function="warm-up"))
    client = app.test_client()
    client.get("/health/readiness")
    headers = {"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/warm-up", "ce-type": "t"}
    client.post("/", headers={**headers, "Content-Type": "application/json"}, data=b"{}")


def _add_event_route(app: Flask, function: EventFunction) -> None:
    @app.post("/")
    def receive() -> Response:
        started = time.perf_counter()
        http_headers = dict(request.headers)
        event = decode_http(http_headers, _body(request))
        with tracing.server_span(function.name, "POST", "/", http_headers, event) as span:
            reply = function.handler(event)
            tracing.set_status(span, 202 if reply is None else 200)
        _log_event(
            function.name,
            event.get_type(),
            event.get_extension(OPERATION_ID_EXTENSION),
            started,
            reply.get_type() if reply is not None else None,
        )
        if reply is None:
            return Response(status=202)
        headers, body = encode_binary(reply)
        return Response(body, status=200, headers=headers)


def _add_http_routes(app: Flask, function: HttpFunction) -> None:
    def view(**params: str) -> Response:
        started = time.perf_counter()
        http_request = HttpRequest(
            method=request.method,
            path=request.path,
            headers=dict(request.headers),
            body=_body(request),
            params=params,
        )
        route = request.url_rule.rule if request.url_rule else request.path
        with tracing.server_span(
            function.name, request.method, route, http_request.headers
        ) as span:
            response: HttpResponse = function.handler(http_request)
            body = response.body
            tracing.set_status(
                span, response.status, body.get("id") if isinstance(body, dict) else None
            )
            headers = {**response.headers, **tracing.response_headers()}
        if log.isEnabledFor(logging.INFO):
            # The public API's bodies are operations: their id starts (POST) or follows (GET)
            # an operation's path through the logs.
            body = response.body
            log.info(
                "handled",
                extra={
                    "function": function.name,
                    "operationid": body.get("id") if isinstance(body, dict) else None,
                    "request": f"{request.method} {request.path}",
                    "status": response.status,
                    "ms": round((time.perf_counter() - started) * 1000, 3),
                },
            )
        return _json(response.status, response.body, headers)

    for route in function.routes:
        app.add_url_rule(route.path, f"{route.method} {route.path}", view, methods=[route.method])


def _body(req: Request) -> bytes:
    # get_data enforces MAX_CONTENT_LENGTH (413) even without a Content-Length header.
    return req.get_data(cache=False)


def _json(status: int, body: Any, headers: Any = None) -> Response:
    return Response(
        json.dumps(body, separators=(",", ":")),
        status=status,
        headers=headers,
        mimetype="application/json",
    )


def _log_event(
    name: str, event_type: str, operation_id: Any, started: float, reply_type: str | None
) -> None:
    if log.isEnabledFor(logging.INFO):
        log.info(
            "handled",
            extra={
                "function": name,
                "operationid": operation_id,
                "type": event_type,
                "reply": reply_type,
                "ms": round((time.perf_counter() - started) * 1000, 3),
            },
        )

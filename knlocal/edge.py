"""What every listener of the runtime shares at its edge: one JSON error shape, bounded reads.

Every listener (public ingress, broker ingress, admin) answers every error, its own and the web
framework's (unroutable path, bad method, oversized body, a body too slow to arrive), as
`{"error": "<what was wrong>"}` with `Content-Type: application/json`.

A client that hangs up before its body arrived is logged as one WARNING line, as a request the
HTTP parser refuses is: neither is the runtime's failure.

Slow clients: a client has `read_timeout` seconds to send its request headers (aiohttp closes a
connection that has not sent a whole request within its keep-alive timeout, which the runtime
sets to `read_timeout`) and again `read_timeout` seconds to send its body (then `408`). Each
waiting client costs a socket and no worker, so slow clients do not delay others.
"""

import asyncio
import json
import logging
import re
from collections.abc import Mapping

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Handler, Middleware

log = logging.getLogger("knlocal")


def error_body(message: str) -> bytes:
    """The body of every error the runtime answers: `{"error": message}`."""
    return json.dumps({"error": message}).encode()


def json_error(status: int, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    """A JSON error response `{"error": message}`, as every endpoint of the runtime answers."""
    return web.Response(
        status=status,
        body=error_body(message),
        content_type="application/json",
        headers=headers,
    )


def json_errors(read_timeout: float) -> Middleware:
    """A middleware that reads the body within `read_timeout` and turns errors into JSON.

    The body is read (and cached by aiohttp) before the handler runs, so the size limit
    (`client_max_size`, 413) and the timeout (408) hold for every handler alike.
    """

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            try:
                await asyncio.wait_for(request.read(), read_timeout)
            except TimeoutError:
                message = f"request body not received within {read_timeout:g} s"
                return json_error(408, message, {"Connection": "close"})
            except ConnectionResetError:
                # The client hung up before its body arrived: its choice, not the runtime's
                # failure; the answer reaches no one.
                log.warning(
                    "client of %s %s hung up before its body arrived", request.method, request.path
                )
                return json_error(400, "connection lost before the request body arrived")
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return json_error(exc.status, _message(request, exc), _kept_headers(exc))
        except Exception:
            log.exception("unexpected error serving %s %s", request.method, request.path)
            return json_error(500, f"internal error serving {request.method} {request.path}")

    return middleware


class ClientErrorsAsWarnings(logging.Filter):
    """Log a request the HTTP parser refused (a client's mistake, 4xx) as one WARNING line.

    aiohttp's server logs it at ERROR with the parser's traceback, as if the runtime had failed.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError) and 400 <= exc.code < 500:
            record.msg = f"{record.getMessage()}: {exc.code} {exc.message}"
            record.args = ()
            record.levelno = logging.WARNING
            record.levelname = logging.getLevelName(logging.WARNING)
            record.exc_info = None
            record.exc_text = None
        return True


def log_client_errors_as_warnings() -> None:
    """Install :class:`ClientErrorsAsWarnings` on aiohttp's server logger, once."""
    server_log = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, ClientErrorsAsWarnings) for f in server_log.filters):
        server_log.addFilter(ClientErrorsAsWarnings())


def normalised_path(raw_path: str) -> str:
    """The raw (still percent-encoded) path without its query, dot segments removed.

    RFC 3986 §5.2.4, after decoding `%2E` (an unreserved character), as Istio's ingress gateway
    normalises paths before it matches routes (its default path normalization, BASE): routing
    and the forwarded URL then agree on which path was asked for.
    """
    path = re.sub("%2[eE]", ".", raw_path.split("?", 1)[0])
    segments = path.split("/")[1:]
    kept: list[str] = []
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == "..":
            if kept:
                kept.pop()
            if last:
                kept.append("")
        elif segment == ".":
            if last:
                kept.append("")
        else:
            kept.append(segment)
    return "/" + "/".join(kept)


def _message(request: web.Request, exc: web.HTTPException) -> str:
    if exc.status == 404:
        return f"no route for {request.method} {request.path}"
    if exc.status == 405:
        return f"method {request.method} not allowed on {request.path}"
    if exc.status == 413:
        return f"request body too large: {exc.text}"
    return exc.text or exc.reason


def _kept_headers(exc: web.HTTPException) -> dict[str, str]:
    return {k: v for k, v in exc.headers.items() if k.lower() == "allow"}

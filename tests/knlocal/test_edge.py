"""knlocal/edge.py: one JSON error shape and bounded reads on every listener of the runtime."""

import asyncio
import json
import logging

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from knlocal.edge import json_errors, normalised_path


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/operations/../health/readiness", "/health/readiness"),
        ("/operations/%2e%2E/health/readiness", "/health/readiness"),
        ("/a/./b/", "/a/b/"),
        ("/a/b/..", "/a/"),
        ("/a/b/.", "/a/b/"),
        ("/../../x", "/x"),
        ("/users?x=/../y", "/users"),
        ("/operations/%C3%B6%0A%25%C2%BAc", "/operations/%C3%B6%0A%25%C2%BAc"),
        ("/", "/"),
    ],
)
def test_normalised_path_removes_dot_segments_rfc3986_5_2_4(raw: str, expected: str) -> None:
    assert normalised_path(raw) == expected


def _app(read_timeout: float = 5.0) -> web.Application:
    async def echo(request: web.Request) -> web.Response:
        return web.Response(body=await request.read())

    async def boom(_: web.Request) -> web.Response:
        raise RuntimeError("boom")

    app = web.Application(client_max_size=1024, middlewares=[json_errors(read_timeout)])
    app.router.add_post("/echo", echo)
    app.router.add_get("/boom", boom)
    return app


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "/nowhere", None, 404),
        ("GET", "/echo", None, 405),
        ("POST", "/echo", b"x" * 2048, 413),
        ("GET", "/boom", None, 500),
    ],
)
def test_framework_errors_become_the_json_error_shape(
    method: str, path: str, body: bytes | None, status: int
) -> None:
    async def run() -> None:
        async with TestClient(TestServer(_app())) as client:
            response = await client.request(method, path, data=body)
            assert response.status == status
            assert response.content_type == "application/json"
            assert (await response.json())["error"]
            if status == 405:
                assert response.headers["Allow"] == "POST"
            assert (await client.post("/echo", data=b"ok")).status == 200

    asyncio.run(run())


def test_a_body_slower_than_the_read_timeout_is_408() -> None:
    async def run() -> None:
        async with TestClient(TestServer(_app(read_timeout=0.3))) as client:

            async def trickle() -> object:
                yield b"{"
                await asyncio.sleep(2)
                yield b"}"

            response = await client.post("/echo", data=trickle())
            assert response.status == 408
            assert "0.3 s" in json.loads(await response.read())["error"]

    asyncio.run(run())


def test_a_refused_request_is_logged_as_one_warning_line(caplog: pytest.LogCaptureFixture) -> None:
    from aiohttp.http_exceptions import BadHttpMessage

    from knlocal.edge import log_client_errors_as_warnings

    log_client_errors_as_warnings()
    log_client_errors_as_warnings()  # once only, however often the runtime starts
    server_log = logging.getLogger("aiohttp.server")
    assert len(server_log.filters) == 1
    try:
        raise BadHttpMessage("Invalid header")
    except BadHttpMessage as exc:
        server_log.exception("Error handling request from %s", "127.0.0.1", exc_info=exc)
    (record,) = caplog.records
    assert record.levelname == "WARNING"
    assert record.exc_info is None
    assert record.getMessage() == "Error handling request from 127.0.0.1: 400 Invalid header"


def test_a_client_that_hangs_up_mid_body_is_one_warning_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Found with the e2e tests run in reverse order: it was an ERROR with a traceback."""

    async def run() -> None:
        async with TestServer(_app()) as server:
            _, writer = await asyncio.open_connection(server.host, server.port)
            writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
            await writer.drain()
            writer.close()
            await writer.wait_closed()
            for _ in range(100):
                if caplog.records:
                    break
                await asyncio.sleep(0.02)

    with caplog.at_level(logging.WARNING):
        asyncio.run(run())
    messages = [(r.levelname, r.getMessage(), r.exc_info) for r in caplog.records]
    assert messages == [("WARNING", "client of POST /echo hung up before its body arrived", None)]

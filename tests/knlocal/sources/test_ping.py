"""PingSource as Knative's ping adapter runs it (eventing `pkg/adapter/mtping/runner.go`).

Reading and validating a PingSource is tests/knlocal/apis/test_sources.py.
"""

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from knlocal.apis.meta import ObjectMeta
from knlocal.apis.sources import PingSource, parse_ping_source
from knlocal.resolver import HttpTarget
from knlocal.sources import ping

ROOT = Path(__file__).resolve().parents[3]
SINK = {"ref": {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "svc"}}


def source(**spec: Any) -> PingSource:
    """PingSource team/tick, read from `spec` and a sink."""
    meta = ObjectMeta("tick", "team", Path("p.yaml"), "PingSource")
    return parse_ping_source(meta, {"sink": SINK, **spec})


def test_the_event_has_knatives_ping_attributes() -> None:
    """type dev.knative.sources.ping, source /apis/v1/namespaces/<ns>/pingsources/<name>."""
    tick = source(
        data='{"a": 1}', contentType="application/json", ceOverrides={"extensions": {"team": "x"}}
    )
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    headers, body = ping.make_event(tick, now)
    assert headers["ce-type"] == "dev.knative.sources.ping"
    assert headers["ce-source"] == "/apis/v1/namespaces/team/pingsources/tick"
    assert headers["ce-specversion"] == "1.0"
    assert headers["ce-time"] == "2026-01-02T03:04:05Z"
    assert headers["ce-team"] == "x"
    assert headers["Content-Type"] == "application/json"
    assert body == b'{"a": 1}'
    assert ping.make_event(tick, now)[0]["ce-id"] != headers["ce-id"]  # a new id per tick


def test_data_base64_is_sent_as_written_and_no_data_is_an_empty_body() -> None:
    """mtping's makeEvent passes []byte(DataBase64): the text itself, not decoded."""
    assert source(dataBase64="aGk=").body == b"aGk="
    assert source().body == b""
    assert "Content-Type" not in ping.make_event(source(), datetime.now(UTC))[0]


@pytest.mark.parametrize(
    ("spec", "after", "expected"),
    [
        # Knative's default schedule: every minute.
        ({}, "2026-01-02T03:04:05+00:00", "2026-01-02T03:05:00+00:00"),
        # 09:00 in Paris is 08:00 UTC in winter, by spec.timezone or the CRON_TZ= prefix.
        (
            {"schedule": "0 9 * * *", "timezone": "Europe/Paris"},
            "2026-01-02T10:00:00+00:00",
            "2026-01-03T08:00:00+00:00",
        ),
        (
            {"schedule": "CRON_TZ=Europe/Paris 0 9 * * *"},
            "2026-07-02T06:00:00+00:00",
            "2026-07-02T07:00:00+00:00",
        ),
        (
            {"schedule": "@hourly", "timezone": "Etc/UTC"},
            "2026-01-02T03:04:05+00:00",
            "2026-01-02T04:00:00+00:00",
        ),
    ],
    ids=["default-every-minute", "timezone-winter", "cron-tz-summer", "descriptor"],
)
def test_the_schedule_is_cron_in_its_time_zone(
    spec: Mapping[str, Any], after: str, expected: str
) -> None:
    tick = ping.next_tick(source(**spec), datetime.fromisoformat(after))
    assert tick.astimezone(UTC) == datetime.fromisoformat(expected)


async def _serve(answers: list[int]) -> tuple[web.AppRunner, str, list[dict[str, str]]]:
    seen: list[dict[str, str]] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.Response(status=answers.pop(0) if answers else 202)

    app = web.Application()
    app.router.add_post("/sweep", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}/sweep", seen


@pytest.mark.parametrize(
    ("answers", "acked", "attempts"),
    [([503, 502], True, 3), ([400], False, 1), ([503] * 6, False, 6)],
    ids=["retried-then-acked", "not-retriable", "retries-exhausted"],
)
def test_send_retries_as_mtping_does(answers: list[int], acked: bool, attempts: int) -> None:
    """5 retries, exponential from 50 ms, on the statuses the Go SDK retries; then given up."""

    async def scenario() -> tuple[bool, list[dict[str, str]]]:
        runner, url, seen = await _serve(list(answers))
        async with aiohttp.ClientSession() as session:
            result = await ping.send(source(data="{}"), HttpTarget(session, url), datetime.now(UTC))
        await runner.cleanup()
        return result, seen

    result, seen = asyncio.run(scenario())
    assert result is acked
    assert len(seen) == attempts
    assert {h["ce-id"] for h in seen} == {seen[0]["ce-id"]}  # a retry is the same event

"""PingSource as Knative's ping adapter runs it (eventing `pkg/adapter/mtping/runner.go`)."""

import asyncio
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web

from knlocal.errors import ManifestError
from knlocal.runtime import HttpTarget
from knlocal.sources import ping

ROOT = Path(__file__).resolve().parents[3]
SINK = {"ref": {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "svc"}}


def source(**spec: Any) -> ping.PingSource:
    return ping.from_manifest(Path("p.yaml"), "tick", "team", {"sink": SINK, **spec})


def test_the_projects_ping_source_is_read_as_written() -> None:
    """sources/operation-sweep.yaml: every 5 minutes, UTC, the sweep policy as JSON, to /sweep."""
    doc = yaml.safe_load((ROOT / "sources/operation-sweep.yaml").read_text())
    sweep = ping.from_manifest(Path("x"), "operation-sweep", "default", doc["spec"])
    assert sweep.schedule == "*/5 * * * *"
    assert str(sweep.timezone) == "Etc/UTC"
    assert sweep.content_type == "application/json"
    assert json.loads(sweep.body) == {"stalledAfterSeconds": 30, "failAfterSeconds": 900}
    assert sweep.sink.uri == "/sweep"


def test_the_event_has_knatives_ping_attributes() -> None:
    """type dev.knative.sources.ping, source /apis/v1/namespaces/<ns>/pingsources/<name>."""
    tick = source(
        data='{"a": 1}', contentType="application/json", ceOverrides={"extensions": {"team": "x"}}
    )
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    headers, body = tick.event(now)
    assert headers["ce-type"] == "dev.knative.sources.ping"
    assert headers["ce-source"] == "/apis/v1/namespaces/team/pingsources/tick"
    assert headers["ce-specversion"] == "1.0"
    assert headers["ce-time"] == "2026-01-02T03:04:05Z"
    assert headers["ce-team"] == "x"
    assert headers["Content-Type"] == "application/json"
    assert body == b'{"a": 1}'
    assert tick.event(now)[0]["ce-id"] != headers["ce-id"]  # a new id per tick


def test_data_base64_is_sent_as_written_and_no_data_is_an_empty_body() -> None:
    """mtping's makeEvent passes []byte(DataBase64): the text itself, not decoded."""
    assert source(dataBase64="aGk=").body == b"aGk="
    assert source().body == b""
    assert "Content-Type" not in source().event(datetime.now(UTC))[0]


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
    tick = source(**spec).next_tick(datetime.fromisoformat(after))
    assert tick.astimezone(UTC) == datetime.fromisoformat(expected)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"schedule": "* * *"}, "expected a cron schedule"),
        ({"schedule": "61 * * * *"}, "expected a cron schedule"),
        ({"timezone": "Mars/Olympus"}, "expected an IANA time zone"),
        ({"schedule": "CRON_TZ=Etc/UTC * * * * *", "timezone": "Etc/UTC"}, "not both"),
        ({"data": "x", "dataBase64": "eA=="}, "at most one of spec.data and spec.dataBase64"),
        ({"data": "{", "contentType": "application/json"}, "spec.data is not JSON"),
    ],
    ids=["fields", "range", "zone", "two-zones", "two-datas", "json"],
)
def test_invalid_specs_are_refused_naming_the_field(spec: Mapping[str, Any], message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        source(**spec)


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

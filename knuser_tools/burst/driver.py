"""The burst itself: `POST /users` at a target rate, each operation followed to its end.

The driver sends `POST /users` at a target rate with a bound on the POSTs in flight (open loop:
a request that cannot be sent on time is sent late, and the lateness is reported), follows every
`202` operation with `GET /operations/<id>` until it is `completed` or `failed`, and samples the
runtime's `/status` every 250 ms, during the burst and after it until every service is back to
zero instances.
"""

import asyncio
import json
import os
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin

import aiohttp
from tqdm import tqdm

from knuser_tools.burst.model import (
    FINAL_STATES,
    POLL_GROWTH,
    SAMPLE_INTERVAL,
    BurstConfig,
    Operation,
)
from knuser_tools.burst.report import BurstResult


class Burst:
    """Runs one burst; see the module docstring."""

    def __init__(self, config: BurstConfig, progress: bool = True) -> None:
        self.config = config
        self.progress = progress
        self.result = BurstResult(config, [])
        self._t0 = 0.0
        self._posting = 0
        self._pending = 0

    def _now(self) -> float:
        return time.monotonic() - self._t0

    async def run(self) -> BurstResult:
        """Send the burst, follow it to the end, sample the runtime; return what was seen."""
        c = self.config
        result = self.result
        result.started_at = datetime.now(UTC).isoformat(timespec="seconds")
        result.loadavg_before = os.getloadavg()
        posts = aiohttp.TCPConnector(limit=c.concurrency)
        reads = aiohttp.TCPConnector(limit=max(8, c.concurrency))
        async with (
            aiohttp.ClientSession(connector=posts) as post_session,
            aiohttp.ClientSession(connector=reads) as read_session,
        ):
            if c.admin:
                result.status_before = await _get_status(read_session, c.admin)
            self._t0 = time.monotonic()
            finished = asyncio.Event()
            sampler = (
                asyncio.create_task(self._sample(read_session, finished))
                if result.status_before is not None
                else None
            )
            sent_bar: tqdm[Any] = tqdm(
                total=c.count, desc="created ", unit="op", disable=not self.progress
            )
            done_bar: tqdm[Any] = tqdm(
                total=c.count, desc="finished", unit="op", disable=not self.progress
            )
            slots = asyncio.Semaphore(c.concurrency)
            tasks = []
            for index in range(c.count):
                operation = Operation(index, scheduled=index / c.rate)
                result.operations.append(operation)
                delay = operation.scheduled - self._now()
                if delay > 0:
                    await asyncio.sleep(delay)
                await slots.acquire()
                tasks.append(
                    asyncio.create_task(
                        self._create(
                            post_session, read_session, operation, slots, sent_bar, done_bar
                        )
                    )
                )
            await asyncio.gather(*tasks)
            result.send_window = max(
                (o.answered for o in result.operations if o.answered is not None), default=0.0
            )
            sent_bar.close()
            done_bar.close()
            finished.set()
            if sampler is not None:
                await sampler
                assert c.admin is not None
                result.status_after = await _get_status(read_session, c.admin)
        result.loadavg_after = os.getloadavg()
        return result

    async def _create(
        self,
        posts: aiohttp.ClientSession,
        reads: aiohttp.ClientSession,
        operation: Operation,
        slots: asyncio.Semaphore,
        sent_bar: "tqdm[Any]",
        done_bar: "tqdm[Any]",
    ) -> None:
        name = f"Burst {_letters(operation.index)}"
        self._posting += 1
        operation.sent = self._now()
        try:
            async with posts.post(
                urljoin(self.config.url, "/users"),
                json={"name": name},
                timeout=aiohttp.ClientTimeout(total=self.config.follow_timeout),
            ) as response:
                body = await response.read()
                operation.answered = self._now()
                operation.status_code = response.status
                if response.status == 202:
                    operation.operation_id = json.loads(body)["id"]
                    location = response.headers.get("Location", "")
                else:
                    operation.error = f"POST {response.status}"
        except (aiohttp.ClientError, TimeoutError, ValueError, KeyError) as exc:
            operation.answered = self._now()
            operation.error = f"POST {type(exc).__name__}"
        finally:
            self._posting -= 1
            slots.release()
            sent_bar.update()
        if operation.operation_id is None:
            done_bar.update()
            return
        self._pending += 1
        try:
            await self._follow(reads, operation, urljoin(self.config.url, location))
        finally:
            self._pending -= 1
            done_bar.update()

    async def _follow(self, session: aiohttp.ClientSession, operation: Operation, url: str) -> None:
        c = self.config
        assert operation.answered is not None
        deadline = operation.answered + c.follow_timeout
        interval = c.poll_interval
        while self._now() < deadline:
            await asyncio.sleep(interval)
            interval = min(0.5, interval * POLL_GROWTH)
            operation.reads += 1
            try:
                async with session.get(
                    url, timeout=aiohttp.ClientTimeout(total=max(0.1, deadline - self._now()))
                ) as response:
                    if response.status != 200:
                        operation.error = f"GET {response.status}"
                        continue
                    state = (await response.json()).get("status")
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                operation.error = f"GET {type(exc).__name__}"
                continue
            if state in FINAL_STATES:
                operation.finished = self._now()
                operation.state = state
                operation.error = None
                return

    async def _sample(self, session: aiohttp.ClientSession, finished: asyncio.Event) -> None:
        """Sample /status until the burst is over and every service is back at zero."""
        assert self.config.admin is not None
        settle_deadline: float | None = None
        while True:
            started = self._now()
            status = await _get_status(session, self.config.admin)
            if status is not None:
                services = status["services"]
                self.result.samples.append(
                    {
                        "t": round(started, 3),
                        "ready": {n: s["ready"] for n, s in services.items()},
                        "starting": {n: s["starting"] for n, s in services.items()},
                        "in_flight": {n: s["in_flight"] for n, s in services.items()},
                        "posting": self._posting,
                        "pending": self._pending,
                    }
                )
                at_zero = all(s["ready"] == 0 and s["starting"] == 0 for s in services.values())
                if finished.is_set() and at_zero:
                    self.result.back_to_zero_at = started
                    return
            if finished.is_set():
                if settle_deadline is None:
                    settle_deadline = started + self.config.settle_timeout
                if started >= settle_deadline:
                    return
            await asyncio.sleep(max(0.0, SAMPLE_INTERVAL - (self._now() - started)))


async def _get_status(session: aiohttp.ClientSession, admin: str) -> dict[str, Any] | None:
    try:
        async with session.get(
            urljoin(admin, "/status"), timeout=aiohttp.ClientTimeout(total=2)
        ) as response:
            if response.status != 200:
                return None
            status: dict[str, Any] = await response.json()
            return status
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return None


def _letters(index: int) -> str:
    """`index` in base 26 with letters: names that pass the approval rules (letters only)."""
    letters = ""
    index += 26 * 27  # at least three letters
    while index:
        index, digit = divmod(index, 26)
        letters = chr(ord("a") + digit) + letters
    return letters.capitalize()

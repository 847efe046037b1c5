"""`knlocal burst`: create users in a burst, follow each operation to its end, report and plot.

The driver sends `POST /users` at a target rate with a bound on the POSTs in flight (open loop:
a request that cannot be sent on time is sent late, and the lateness is reported), follows every
`202` operation with `GET /operations/<id>` until it is `completed` or `failed`, and samples the
runtime's `/status` every 250 ms, during the burst and after it until every service is back to
zero instances. It writes `burst-<timestamp>.json` (figures, settings, machine, and the time
series) and `burst-<timestamp>.png`: instances per service, requests in flight, and completions
per second over time, the picture of services scaling from zero and back.

Against a cluster ingress (`--url`) there is no admin view; the instance series are then left
out, unless `--admin` names one.
"""

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import aiohttp
from tqdm import tqdm

from knlocal.errors import BurstError

#: The local runtime's addresses (knlocal/settings.py defaults).
LOCAL_INGRESS = "http://127.0.0.1:8080"
LOCAL_ADMIN = "http://127.0.0.1:8082"
#: How long a runtime started by `--faults` may take to answer its admin API.
RUNTIME_START_SECONDS = 60.0
#: How often the runtime's /status is sampled.
SAMPLE_INTERVAL = 0.25
#: Growth of the wait between two reads of one operation.
POLL_GROWTH = 1.25
#: Operation states that end an operation (openapi.yaml).
FINAL_STATES = frozenset({"completed", "failed"})


@dataclass(frozen=True)
class BurstConfig:
    """What a burst does.

    :ivar count: users to create.
    :ivar rate: POSTs per second the driver aims at.
    :ivar concurrency: most POSTs in flight at once.
    :ivar url: the public ingress.
    :ivar admin: the runtime's admin address (`/status`), or None for none.
    :ivar poll_interval: seconds before the first read of an operation; each next wait is
        :data:`POLL_GROWTH` times longer, up to 0.5 s. So an operation is read about 4 times
        if it ends within 100 ms and 9 times within 500 ms (reads are load on the system too),
        and a time to the final state is over by at most the last wait.
    :ivar follow_timeout: seconds after its `202` an operation may take to end; past that it is
        counted as lost.
    :ivar settle_timeout: seconds after the last operation ended to wait for every service to be
        back at zero instances.
    :ivar out_dir: where the JSON report and the PNG plot go.
    :ivar data_dir: the runtime's DATA_DIR, whose SQLite stores (functions/stores/) are checked
        after the burst (see :func:`check_stores`), or None to check nothing.
    """

    count: int = 300
    rate: float = 100.0
    concurrency: int = 32
    url: str = LOCAL_INGRESS
    admin: str | None = LOCAL_ADMIN
    poll_interval: float = 0.02
    follow_timeout: float = 30.0
    settle_timeout: float = 30.0
    out_dir: Path = Path("bench/results")
    data_dir: Path | None = None


@dataclass
class Operation:
    """One user creation, as the client saw it; times in seconds since the burst started."""

    index: int
    scheduled: float
    sent: float | None = None
    answered: float | None = None
    status_code: int | None = None
    operation_id: str | None = None
    finished: float | None = None
    state: str | None = None
    error: str | None = None
    reads: int = 0


@dataclass
class BurstResult:
    """Everything a burst observed; :meth:`report` turns it into the JSON report."""

    config: BurstConfig
    operations: list[Operation]
    samples: list[dict[str, Any]] = field(default_factory=list)
    status_before: dict[str, Any] | None = None
    status_after: dict[str, Any] | None = None
    loadavg_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    loadavg_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    send_window: float = 0.0
    back_to_zero_at: float | None = None
    started_at: str = ""

    @property
    def accepted(self) -> list[Operation]:
        """Operations the ingress accepted (202)."""
        return [o for o in self.operations if o.status_code == 202]

    def report(self, command: Sequence[str]) -> dict[str, Any]:
        """The burst's figures, settings, machine and time series, ready for JSON."""
        accepted = self.accepted
        finished = [o for o in accepted if o.finished is not None]
        post_ms = [
            (o.answered - o.sent) * 1000
            for o in self.operations
            if o.answered is not None and o.sent is not None
        ]
        done_ms = [
            (o.finished - o.answered) * 1000
            for o in finished
            if o.finished is not None and o.answered is not None
        ]
        lag_ms = [(o.sent - o.scheduled) * 1000 for o in self.operations if o.sent is not None]
        last_end = max((o.finished for o in finished if o.finished is not None), default=0.0)
        errors: dict[str, int] = {}
        for o in self.operations:
            if o.error:
                errors[o.error] = errors.get(o.error, 0) + 1
        services = _service_figures(self.samples, self.status_before, self.status_after)
        operation_ids = [o.operation_id for o in accepted if o.operation_id is not None]
        return {
            "kind": "burst",
            "command": list(command),
            "started_at": self.started_at,
            "machine": machine_info(self.loadavg_before, self.loadavg_after),
            "config": {
                **asdict(self.config),
                "out_dir": str(self.config.out_dir),
                "data_dir": str(self.config.data_dir) if self.config.data_dir else None,
            },
            "created": len(self.operations),
            "accepted": len(accepted),
            "completed": sum(1 for o in finished if o.state == "completed"),
            "failed": sum(1 for o in finished if o.state == "failed"),
            "lost": len(accepted) - len(finished),
            "errors": errors,
            "send_window_s": round(self.send_window, 3),
            "throughput": {
                "posts_per_s": _rate(len(accepted), self.send_window),
                "finished_per_s": _rate(len(finished), last_end),
            },
            "post_latency_ms": summarize(post_ms),
            "time_to_final_ms": summarize(done_ms),
            "send_lag_ms": summarize(lag_ms),
            "time_to_final_measured_by": (
                "from the 202 to the first GET /operations/<id> that saw the final state; reads"
                f" wait {self.config.poll_interval} s, then {POLL_GROWTH}x longer each (at most"
                " 0.5 s): a figure exceeds the true time by at most the last wait (about a"
                f" quarter of the time, {self.config.poll_interval * 1000:.0f} ms at least) plus"
                " the read's own latency"
            ),
            "reads_per_operation": round(sum(o.reads for o in accepted) / len(accepted), 1)
            if accepted
            else None,
            "services": services,
            "back_to_zero_s": (
                round(self.back_to_zero_at - last_end, 2)
                if self.back_to_zero_at is not None
                else None
            ),
            "faults_injected": _faults_injected(self.status_before, self.status_after),
            "integrity": (
                check_stores(
                    self.config.data_dir,
                    operation_ids,
                    lost=[
                        o.operation_id for o in accepted if o.finished is None and o.operation_id
                    ],
                )
                if self.config.data_dir is not None
                else None
            ),
            "samples": self.samples,
        }


def check_stores(
    data_dir: Path, operation_ids: Sequence[str], lost: Sequence[str]
) -> dict[str, Any]:
    """What the stores say of the burst's operations: the claims at-least-once must keep.

    Read from the SQLite files under the runtime's DATA_DIR (functions/stores/sqlite.py):

    - `lost`: accepted, and never seen final by the client;
    - `duplicate_users`: more than one user row for one operation;
    - `stranded_pending`: still `pending` in the operations store;
    - `wrongly_failed`: `failed`, though its user's approval was decided (the flow finished);
    - `completed_without_user`: `completed`, and no user row.

    Each is a list of operation ids; `ok` is true when every list is empty.
    """
    operations_db, users_db = data_dir / "operations.sqlite3", data_dir / "users.sqlite3"
    if not operations_db.exists() or not users_db.exists():
        return {"ok": None, "why": f"no SQLite stores under {data_dir} (STORE=sqlite only)"}
    wanted = set(operation_ids)
    with closing(sqlite3.connect(operations_db)) as db:
        states = {i: st for i, st in db.execute("SELECT id, status FROM records") if i in wanted}
    users: dict[str, list[str]] = {}
    with closing(sqlite3.connect(users_db)) as db:
        for (body,) in db.execute("SELECT body FROM records"):
            user = json.loads(body)
            if user.get("operationId") in wanted:
                users.setdefault(user["operationId"], []).append(user["status"])
    decided = {"approved", "rejected"}
    claims = {
        "lost": sorted(lost),
        "duplicate_users": sorted(i for i, found in users.items() if len(found) > 1),
        "stranded_pending": sorted(i for i in wanted if states.get(i, "pending") == "pending"),
        "wrongly_failed": sorted(
            i for i, st in states.items() if st == "failed" and decided & set(users.get(i, []))
        ),
        "completed_without_user": sorted(
            i for i, st in states.items() if st == "completed" and i not in users
        ),
    }
    return {"ok": not any(claims.values()), "checked": len(wanted), **claims}


def _faults_injected(
    before: dict[str, Any] | None, after: dict[str, Any] | None
) -> dict[str, dict[str, int]] | None:
    """Faults the runtime injected during the burst, per Trigger or Broker and kind."""
    if after is None or "faults" not in after:
        return None
    earlier = (before or {}).get("faults", {})
    return {
        name: {kind: n - earlier.get(name, {}).get(kind, 0) for kind, n in kinds.items()}
        for name, kinds in after["faults"].items()
    }


def summarize(values: Iterable[float]) -> dict[str, float | int | None]:
    """Count, p50, p95, p99 and max of `values` (linear interpolation between ranks)."""
    data = sorted(values)
    if not data:
        return {"count": 0, "p50": None, "p95": None, "p99": None, "max": None}
    if len(data) == 1:
        cuts = [data[0]] * 99
    else:
        cuts = statistics.quantiles(data, n=100, method="inclusive")
    return {
        "count": len(data),
        "p50": round(cuts[49], 3),
        "p95": round(cuts[94], 3),
        "p99": round(cuts[98], 3),
        "max": round(data[-1], 3),
    }


def machine_info(
    loadavg_before: tuple[float, float, float], loadavg_after: tuple[float, float, float]
) -> dict[str, Any]:
    """The machine a measurement ran on, with its load before and after."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "loadavg_before": list(loadavg_before),
        "loadavg_after": list(loadavg_after),
    }


def _rate(count: int, seconds: float) -> float | None:
    return round(count / seconds, 1) if seconds > 0 else None


def _service_figures(
    samples: list[dict[str, Any]],
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> dict[str, Any]:
    if before is None or after is None:
        return {}
    figures = {}
    for name, end in after["services"].items():
        start = before["services"].get(name, {})
        figures[name] = {
            "peak_instances": max((s["ready"].get(name, 0) for s in samples), default=0),
            "cold_starts": end["cold_starts"] - start.get("cold_starts", 0),
            "cold_start_ms_p50": end.get("cold_start_ms_p50"),
            "cold_start_ms_p99": end.get("cold_start_ms_p99"),
            "requests": end["requests"] - start.get("requests", 0),
            "responses_503": end["responses_503"] - start.get("responses_503", 0),
            "responses_504": end["responses_504"] - start.get("responses_504", 0),
        }
    return figures


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


# -- the plot ---------------------------------------------------------------------------------


def plot(report: dict[str, Any], operations: list[Operation], path: Path) -> None:
    """Draw instances per service, requests in flight and completions per second over time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = report["samples"]
    services = sorted(report["services"]) or []
    end = max(
        [s["t"] for s in samples]
        + [o.finished for o in operations if o.finished is not None]
        + [report["send_window_s"]]
    )
    colours = {name: plt.get_cmap("tab10")(i) for i, name in enumerate(services)}
    with plt.style.context("seaborn-v0_8-whitegrid"):
        figure, axes = plt.subplots(
            3, 1, figsize=(12, 9), sharex=True, height_ratios=(3, 2, 2), layout="constrained"
        )
        instances, in_flight, completions = axes
        times = [s["t"] for s in samples]
        for name in services:
            instances.step(
                times,
                [s["ready"][name] for s in samples],
                where="post",
                color=colours[name],
                linewidth=2,
                label=name,
            )
            in_flight.step(
                times,
                [s["in_flight"][name] for s in samples],
                where="post",
                color=colours[name],
                linewidth=1.4,
            )
        if not services:
            instances.text(
                0.5,
                0.5,
                "no admin view: instance counts unavailable",
                transform=instances.transAxes,
                ha="center",
                color="grey",
            )
        posting = _client_series(operations, end, lambda o: (o.sent, o.answered))
        pending = _client_series(
            [o for o in operations if o.operation_id], end, lambda o: (o.answered, o.finished)
        )
        in_flight.step(
            *posting, where="post", color="black", linestyle="--", label="POSTs in flight (client)"
        )
        in_flight.step(
            *pending, where="post", color="grey", linestyle=":", label="operations not yet final"
        )
        seconds = list(range(int(end) + 1))
        done = [0] * len(seconds)
        accepted = [0] * len(seconds)
        for o in operations:
            if o.finished is not None:
                done[min(int(o.finished), len(done) - 1)] += 1
            if o.status_code == 202 and o.answered is not None:
                accepted[min(int(o.answered), len(done) - 1)] += 1
        completions.bar(
            seconds,
            done,
            width=0.9,
            align="edge",
            color="#2ca02c",
            alpha=0.75,
            label="operations finished",
        )
        completions.step(
            seconds,
            accepted,
            where="post",
            color="#1f77b4",
            linewidth=1.6,
            label="POSTs accepted (202)",
        )
        for axis in axes:
            axis.axvspan(0, report["send_window_s"], color="#ffdd88", alpha=0.25, lw=0)
            axis.set_xlim(0, end + 0.5)
        instances.set_ylabel("ready instances")
        instances.yaxis.get_major_locator().set_params(integer=True)
        in_flight.set_ylabel("requests in flight\n(per service: solid)")
        completions.set_ylabel("per second")
        completions.set_xlabel("seconds since the burst started (shaded: sending)")
        instances.legend(loc="upper left", bbox_to_anchor=(1.01, 1), title="Knative Service")
        in_flight.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
        completions.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
        c = report["config"]
        post, final = report["post_latency_ms"], report["time_to_final_ms"]
        figure.suptitle(
            f"{report['created']} users at {c['rate']:g}/s, ≤ {c['concurrency']} POSTs in flight:"
            f" {report['completed']} completed, {report['failed']} failed, {report['lost']} lost"
            f"\nPOST p50 {_ms(post['p50'])} p99 {_ms(post['p99'])}   ·   to final state"
            f" p50 {_ms(final['p50'])} p99 {_ms(final['p99'])}   ·   back to zero "
            + (
                f"{report['back_to_zero_s']} s after the last"
                if report["back_to_zero_s"] is not None
                else "not seen"
            ),
            fontsize=12,
        )
        figure.savefig(path, dpi=110)
        plt.close(figure)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms"


def _client_series(
    operations: list[Operation], end: float, span: Any
) -> tuple[list[float], list[int]]:
    """How many operations are inside their `span` (start, end; None = not yet) over time."""
    changes: list[tuple[float, int]] = []
    for o in operations:
        start, stop = span(o)
        if start is None:
            continue
        changes.append((start, +1))
        changes.append((stop if stop is not None else end, -1))
    times, counts, current = [0.0], [0], 0
    for moment, delta in sorted(changes):
        current += delta
        times.append(moment)
        counts.append(current)
    return times, counts


# -- the command --------------------------------------------------------------------------------


def add_parser(commands: Any) -> None:
    """Add `knlocal burst` to the CLI's subcommands."""
    parser = commands.add_parser(
        "burst",
        help="create users in a burst and report how the services scaled",
        description="Create N users at a target rate against the ingress, follow every"
        " operation to completed/failed, sample the runtime's /status, and write a JSON report"
        " and a PNG plot (instances per service, requests in flight, completions per second).",
    )
    d = BurstConfig()
    parser.add_argument(
        "-n", "--count", type=int, default=d.count, help="users (default %(default)s)"
    )
    parser.add_argument(
        "--rate", type=float, default=d.rate, help="POSTs per second (default %(default)s)"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=d.concurrency,
        help="most POSTs in flight (default %(default)s)",
    )
    parser.add_argument("--url", default=d.url, help="public ingress (default %(default)s)")
    parser.add_argument(
        "--admin",
        default=None,
        help=f"runtime admin address for the instance series (default {LOCAL_ADMIN} with the"
        " default --url, none otherwise)",
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=d.settle_timeout,
        help="seconds to wait for every service to be back at zero (default %(default)s)",
    )
    parser.add_argument(
        "--out", default=str(d.out_dir), help="folder of the report (default %(default)s)"
    )
    parser.add_argument(
        "--data-dir",
        default=None,
        help="the runtime's DATA_DIR: after the burst, check its SQLite stores for lost,"
        " duplicate, stranded or wrongly failed operations (default: DATA_DIR, else .data,"
        " with the default --url; none otherwise)",
    )
    parser.add_argument(
        "--faults",
        metavar="FILE",
        default=None,
        help="start a runtime of the burst's own under this fault plan (`knlocal run --faults"
        " FILE`, on free loopback ports, fresh data), burst it, check its stores, stop it;"
        " --url, --admin and --data-dir are then its own",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


@contextlib.contextmanager
def runtime_under_plan(plan: Path) -> Iterator[tuple[str, str, Path]]:
    """`knlocal run --faults plan` on free ports with fresh data; yields ingress, admin, data.

    Ready once its admin API answers `/status`; stopped with Ctrl-C (SIGINT) at the end.
    """
    ports = {name: _free_port() for name in ("INGRESS_PORT", "BROKER_PORT", "ADMIN_PORT")}
    data = Path(tempfile.mkdtemp(prefix="knlocal-burst-"))
    env = {**os.environ, **{name: str(port) for name, port in ports.items()}, "DATA_DIR": str(data)}
    admin = f"http://127.0.0.1:{ports['ADMIN_PORT']}"
    with open(data / "runtime.log", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "knlocal.cli", "run", "--faults", str(plan)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + RUNTIME_START_SECONDS
        while not _answers(f"{admin}/status"):
            if process.poll() is not None or time.monotonic() > deadline:
                log_text = (data / "runtime.log").read_text(errors="replace")
                raise BurstError(f"the runtime under {plan} did not start:\n{log_text}")
            time.sleep(0.1)
        yield f"http://127.0.0.1:{ports['INGRESS_PORT']}", admin, data
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def run_command(args: argparse.Namespace) -> int:
    """Run `knlocal burst` with parsed `args`; print where the report is."""
    if args.faults:
        plan = Path(args.faults)
        if not plan.is_file():
            print(f"knlocal burst: no fault plan at {plan}", file=sys.stderr)
            return 2
        try:
            with runtime_under_plan(plan) as (ingress, own_admin, data):
                print(f"runtime under {plan}: ingress {ingress}, data {data}")
                own = {"faults": None, "url": ingress, "admin": own_admin, "data_dir": str(data)}
                return run_command(argparse.Namespace(**{**vars(args), **own}))
        except BurstError as exc:
            print(f"knlocal burst: {exc}", file=sys.stderr)
            return 1
    local = args.url.rstrip("/") == LOCAL_INGRESS
    admin = args.admin or (LOCAL_ADMIN if local else None)
    data_dir = args.data_dir or (os.environ.get("DATA_DIR", ".data") if local else None)
    config = BurstConfig(
        count=args.count,
        rate=args.rate,
        concurrency=args.concurrency,
        url=args.url,
        admin=admin,
        settle_timeout=args.settle,
        out_dir=Path(args.out),
        data_dir=Path(data_dir) if data_dir else None,
    )
    if config.count < 1 or config.rate <= 0 or config.concurrency < 1:
        print("knlocal burst: N, RATE and CONCURRENCY must be positive", file=sys.stderr)
        return 2
    json_path, png_path, report = run_burst(
        config, ["knlocal", *sys.argv[1:]], not args.no_progress
    )
    print(summary_text(report))
    print(f"report: {json_path}\nplot:   {png_path}")
    integrity_ok = (report["integrity"] or {}).get("ok") is not False
    return 0 if report["lost"] == 0 and not report["errors"] and integrity_ok else 1


def run_burst(
    config: BurstConfig, command: Sequence[str], progress: bool = True
) -> tuple[Path, Path, dict[str, Any]]:
    """Run a burst and write its report and plot; return their paths and the report."""
    burst = Burst(config, progress)
    if config.admin and progress:
        print(f"sampling {config.admin}/status every {SAMPLE_INTERVAL * 1000:.0f} ms")
    result = asyncio.run(burst.run())
    if config.admin and result.status_before is None:
        print(
            f"knlocal burst: no admin view at {config.admin}; no instance series", file=sys.stderr
        )
    report = result.report(command)
    config.out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    json_path = config.out_dir / f"burst-{stamp}.json"
    png_path = json_path.with_suffix(".png")
    json_path.write_text(json.dumps(report, indent=1) + "\n")
    plot(report, result.operations, png_path)
    return json_path, png_path, report


def summary_text(report: dict[str, Any]) -> str:
    """A few lines for the terminal."""
    post, final = report["post_latency_ms"], report["time_to_final_ms"]
    lines = [
        f"{report['accepted']}/{report['created']} accepted, {report['completed']} completed,"
        f" {report['failed']} failed, {report['lost']} lost, errors {report['errors'] or 'none'}",
        f"POST ms p50 {post['p50']} p95 {post['p95']} p99 {post['p99']} max {post['max']}",
        f"to final ms p50 {final['p50']} p95 {final['p95']} p99 {final['p99']} max {final['max']}",
        f"throughput {report['throughput']}",
    ]
    for name, s in report["services"].items():
        lines.append(
            f"  {name:22} peak {s['peak_instances']:2} instances, {s['cold_starts']} cold starts"
            f" (p50 {s['cold_start_ms_p50']} ms)"
        )
    if report["services"]:
        lines.append(f"back to zero {report['back_to_zero_s']} s after the last operation ended")
    if report["faults_injected"] is not None:
        injected = ", ".join(
            f"{name} {kind} {n}"
            for name, kinds in report["faults_injected"].items()
            for kind, n in kinds.items()
        )
        lines.append(f"faults injected: {injected or 'none'}")
    integrity = report["integrity"]
    if integrity is not None and integrity["ok"] is None:
        lines.append(f"stores not checked: {integrity['why']}")
    elif integrity is not None:
        claims = (
            "lost",
            "duplicate_users",
            "stranded_pending",
            "wrongly_failed",
            "completed_without_user",
        )
        lines.append(
            f"stores: {integrity['checked']} operations checked: "
            + ", ".join(f"{c.replace('_', ' ')} {len(integrity[c])}" for c in claims)
            + (" — all zero" if integrity["ok"] else "")
        )
        for claim in claims:
            if integrity[claim]:
                lines.append(f"  {claim}: {' '.join(integrity[claim])}")
    return "\n".join(lines)

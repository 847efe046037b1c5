"""The functions' gunicorn worker against gthread: CPU per request of one function instance.

`python -m bench.bench_worker`. One gunicorn of the image's settings
(`functions/gunicorn_conf.py`) serving user-approve, driven with binary CloudEvents at a paced
rate over a pool of kept-alive connections (as the runtime's proxy and Knative's queue-proxy
drive an instance); rounds alternate the two worker classes (ABAB…) on fresh servers, and each
round reports the server's CPU per request (utime + stime of its processes, from the kernel),
its worker's voluntary context switches per request, and the latency. The machine is shared:
compare within one run.
"""

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from tqdm import tqdm

from bench.cpu import CpuMeter
from bench.run import APP, RESULTS, _server, _user_created_event
from knlocal.process import descendants, free_port
from knuser_tools.burst import machine_info, summarize

WORKERS = {
    "gthread": "gthread",
    "ours": "functions.gunicorn_worker.ThreadWorker",
}


def _switches(pid: int) -> int:
    """Voluntary context switches of `pid`'s threads (each a wait for I/O, a lock or a queue)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        for line in (task / "status").read_text().splitlines():
            if line.startswith("voluntary_ctxt_switches:"):
                total += int(line.split()[1])
    return total


async def _drive(url: str, rate: float, seconds: float, connections: int) -> list[float]:
    """POST user.created events at `rate` for `seconds`; the latencies in ms."""
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(index: int) -> None:
            headers, body = _user_created_event(index)
            started = time.monotonic()
            async with session.post(url, headers=headers, data=body) as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"user-approve answered {response.status}")
            latencies.append((time.monotonic() - started) * 1000)

        start, count = time.monotonic(), int(rate * seconds)
        tasks = []
        for index in range(count):
            await asyncio.sleep(max(0.0, start + index / rate - time.monotonic()))
            tasks.append(asyncio.create_task(one(index)))
        await asyncio.gather(*tasks)
    return latencies


def measure(worker: str, rate: float, seconds: float, data: Path) -> dict[str, Any]:
    """One fresh server of `worker`: a warm-up, then the measured paced run."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    server = _server(Path(sys.executable), APP["wsgi_app"], port, data, "--worker-class", worker)
    with server as (_, arbiter):
        asyncio.run(_drive(url, rate, 1, 8))
        worker_pid = descendants(arbiter)[0]
        switches = _switches(worker_pid)
        with CpuMeter(arbiter) as meter:  # gunicorn's arbiter and its worker
            latencies = asyncio.run(_drive(url, rate, seconds, 8))
        switches = _switches(worker_pid) - switches
    cpu_ms = meter.result(len(latencies))["cpu_ms"]
    server_ms = sum(ms for role, ms in cpu_ms.items() if role != "load_generator")
    return {
        "requests": len(latencies),
        "cpu_us_per_request": round(server_ms * 1000 / len(latencies)),
        "worker_switches_per_request": round(switches / len(latencies), 2),
        "latency_ms": summarize(latencies),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the rounds and write `bench/results/worker-<time>.json`."""
    parser = argparse.ArgumentParser(prog="bench.bench_worker", description=__doc__)
    parser.add_argument("--rounds", type=int, default=4, help="pairs of runs (default 4)")
    parser.add_argument("--rate", type=float, default=200, help="requests/s (default 200)")
    parser.add_argument("--seconds", type=float, default=6, help="each run's length (default 6)")
    parser.add_argument("--out", default=str(RESULTS), help="results folder")
    args = parser.parse_args(argv)
    started, load_before = datetime.now(UTC), os.getloadavg()
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in WORKERS}
    with tempfile.TemporaryDirectory(prefix="bench-worker-") as data:
        for _ in tqdm(range(args.rounds), desc="gthread vs ours", unit="round"):
            for name, worker in WORKERS.items():
                runs[name].append(measure(worker, args.rate, args.seconds, Path(data)))
    median = {
        name: statistics.median(run["cpu_us_per_request"] for run in rounds)
        for name, rounds in runs.items()
    }
    # Paired by round (ABAB…): the machine's speed drifts over a run, a round's pair shares it.
    ratios = [
        ours["cpu_us_per_request"] / gthread["cpu_us_per_request"]
        for gthread, ours in zip(runs["gthread"], runs["ours"], strict=True)
    ]
    result = {
        "benchmark": "gunicorn worker: CPU per request of one user-approve instance",
        "command": ["python", "-m", "bench.bench_worker", *(argv or sys.argv[1:])],
        "started": started.isoformat(timespec="seconds"),
        "machine": machine_info(load_before, os.getloadavg()),
        "rate_per_s": args.rate,
        "seconds_per_run": args.seconds,
        "connections": 8,
        "workers": WORKERS,
        "runs": runs,
        "cpu_us_per_request_median": median,
        "ratio_ours_over_gthread_per_round": [round(ratio, 3) for ratio in ratios],
        "ratio_ours_over_gthread": round(statistics.median(ratios), 3),
    }
    out = Path(args.out) / f"worker-{started.strftime('%Y-%m-%dT%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    ratio = result["ratio_ours_over_gthread"]
    print(json.dumps({"cpu_us_per_request_median": median, "ratio_ours_over_gthread": ratio}))
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

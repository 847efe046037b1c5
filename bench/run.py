"""`make bench`: the issue-3 benchmark, written to `bench/results/bench-<timestamp>.json`.

Parts (all on loopback, bounded in count and time; the load generator shares the 2 cores):

- **cold_start**: one function (user-approve) started N times by the fork launcher (the
  runtime's) and by the exec launcher (`gunicorn` in a fresh interpreter, as the image runs it):
  process start to first response served (the readiness probe), p50/p99/max.
- **load_100**: a runtime (in-memory broker, SQLite, local profile), warmed, takes user creations
  at 100/s for 20 s from `knlocal burst`: POST latency and time to `completed`.
- **sustained**: 15-s steps at rising rates; the highest rate whose every operation completed,
  with no error and at ≥ 95 % of the offered rate.
- **functions_framework**: our function server vs GoogleCloudPlatform's functions-framework
  serving the same user-approve logic (bench/ff_user_approve.py) with the same gunicorn settings:
  requests/s at a fixed concurrency, and cold start (exec to first reply), as ratios.
- **cpu** (in load_100): CPU milliseconds per completed user by process role (bench/cpu.py).
- **profile**: py-spy's top frames of the runtime and of one function during load_100.

Every part records `os.getloadavg()` before and after: other work on the machine shows there.
"""

import argparse
import asyncio
import collections
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
from tqdm import tqdm

from bench.cpu import CpuMeter
from knlocal.appconfig import application_settings
from knlocal.process import DEFAULT_SWITCHES, RuntimeProcess, free_port
from knlocal.serving.instances import GunicornLauncher
from knlocal.serving.zygote import ForkLauncher
from knuser_tools.burst import BurstConfig, machine_info, run_burst, summarize

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
FF_VENV = ROOT / ".cache" / "ff-venv"
#: The application as knlocal runs it: pyproject.toml's [tool.knlocal].
APP = application_settings(ROOT)
FF_APP = "bench.ff_user_approve:create_app()"
#: The step rates of the sustained test, and the issue's targets.
STEPS = (100, 150, 200, 250, 300, 400)
TARGETS = {
    "cold_start_p50_ms": 15.0,
    "cold_start_p99_ms": 40.0,
    "post_p99_ms_at_100": 15.0,
    "completed_p99_ms_at_100": 100.0,
    "sustained_per_s": 250.0,
    "sustained_stretch_per_s": 400.0,
}


def _function_env(function: str, data_dir: Path) -> dict[str, str]:
    """A function's container environment, as the runtime gives it (runtime.py)."""
    return {
        "FUNCTION": function,
        "K_SERVICE": function,
        "K_CONFIGURATION": function,
        "K_REVISION": f"{function}-00001",
        "CONTAINER_CONCURRENCY": "8",
        "DATA_DIR": str(data_dir),
        "K_SINK": "http://127.0.0.1:9/unused",
        "LOG_LEVEL": "warning",
        "PATH": os.environ.get("PATH", ""),
    }


def _timed(part: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    before = os.getloadavg()
    started = time.monotonic()
    result = part()
    result["loadavg_before"] = list(before)
    result["loadavg_after"] = list(os.getloadavg())
    result["seconds"] = round(time.monotonic() - started, 1)
    return result


# -- (a) cold start ------------------------------------------------------------------------------


def cold_start(starts: int, function: str = "user-approve") -> dict[str, Any]:
    """Start `function` `starts` times with each launcher; stop each before the next start."""

    async def measure(launcher_kind: str) -> list[float]:
        data = Path(tempfile.mkdtemp(prefix="bench-cold-"))
        async with aiohttp.ClientSession() as session:
            kind = ForkLauncher if launcher_kind == "fork" else GunicornLauncher
            launcher = kind(
                APP["wsgi_app"],
                "127.0.0.1",
                data / "logs",
                session,
                gunicorn_config=APP["gunicorn_config"],
            )
            if isinstance(launcher, ForkLauncher):
                launcher.open()
            seconds = []
            try:
                # One start first, not counted: the zygote imports while the runtime starts.
                await (await launcher.start(function, _function_env(function, data), 60)).stop()
                for _ in tqdm(range(starts), desc=f"cold start ({launcher_kind})", unit="start"):
                    await asyncio.sleep(0.2)  # a quiet moment, as between two scale-ups
                    instance = await launcher.start(function, _function_env(function, data), 60)
                    seconds.append(instance.cold_start_seconds * 1000)
                    await instance.stop()
            finally:
                launcher.close()
        return seconds

    fork_ms = asyncio.run(measure("fork"))
    exec_ms = asyncio.run(measure("exec"))
    fork, exec_ = summarize(fork_ms), summarize(exec_ms)
    assert fork["p50"] is not None and exec_["p50"] is not None
    return {
        "function": function,
        "starts": starts,
        "what": "launcher.start() to the first response served (readiness probe), ms",
        "fork_launcher_ms": fork,
        "exec_launcher_ms": exec_,
        "exec_over_fork_p50": round(exec_["p50"] / fork["p50"], 1),
    }


# -- (b), (c) the runtime under load -------------------------------------------------------------


@contextlib.contextmanager
def local_runtime(extra_env: dict[str, str] | None = None) -> Iterator[tuple[str, str, int]]:
    """`knlocal run` on free ports with its own data folder; yields ingress, admin, pid.

    :param extra_env: more settings, e.g. the OTEL_* variables of a traced run.
    """
    data = Path(tempfile.mkdtemp(prefix="bench-runtime-"))
    with RuntimeProcess(data, {**DEFAULT_SWITCHES, **(extra_env or {})}, cwd=ROOT) as runtime:
        assert runtime.process is not None
        yield runtime.ingress, runtime.admin, runtime.process.pid


def burst(ingress: str, admin: str, rate: float, seconds: float, out: Path) -> dict[str, Any]:
    config = BurstConfig(
        count=int(rate * seconds),
        rate=rate,
        concurrency=64,
        url=ingress,
        admin=admin,
        settle_timeout=0.0,
        out_dir=out,
    )
    _, png, report = run_burst(config, ["bench/run.py"], progress=True)
    report["plot"] = str(png)
    return report


def burst_figures(report: dict[str, Any]) -> dict[str, Any]:
    return {
        key: report[key]
        for key in (
            "created",
            "accepted",
            "completed",
            "failed",
            "lost",
            "errors",
            "throughput",
            "post_latency_ms",
            "time_to_final_ms",
            "send_lag_ms",
            "time_to_final_measured_by",
            "reads_per_operation",
            "plot",
        )
    } | {"peak_instances": {n: s["peak_instances"] for n, s in report["services"].items()}}


def _profile(pid: int, seconds: float, path: Path) -> list[str] | None:
    """py-spy's top frames of process `pid` (self time), or None without py-spy."""
    py_spy = Path(sys.executable).with_name("py-spy")
    if not py_spy.exists():
        return None
    options = ["-d", str(seconds), "-r", "100", "-f", "raw", "-o", str(path), "--nonblocking"]
    subprocess.run(
        [str(py_spy), "record", "-p", str(pid), *options],
        capture_output=True,
        check=False,
    )
    if not path.exists():
        return None
    counts: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        total += int(count)
        counts[stack.split(";")[-1]] += int(count)
    return [f"{100 * n / total:.1f}% {frame}" for frame, n in counts.most_common(15)]


def _instance_pid(runtime_pid: int, service: str) -> int | None:
    """The pid of a running instance of `service` (its log file is open in it)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (entry / "fd").iterdir():
                if os.readlink(fd).endswith(f"/logs/{service}.log") and _is_grandchild(
                    int(entry.name), runtime_pid
                ):
                    return int(entry.name)
    return None


def _is_grandchild(pid: int, runtime_pid: int) -> bool:
    # Instances are children of the zygote, itself a child of the runtime.
    with contextlib.suppress(OSError, ValueError, IndexError):
        parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        grandparent = int(Path(f"/proc/{parent}/stat").read_text().rsplit(")", 1)[1].split()[1])
        return grandparent == runtime_pid
    return False


def runtime_under_load(out: Path, steps: tuple[int, ...], profile: bool) -> dict[str, Any]:
    """(b) 100 creations/s for 20 s, with a profile; (c) the sustained-rate steps."""
    results: dict[str, Any] = {}
    scratch = Path(tempfile.mkdtemp(prefix="bench-bursts-"))
    with local_runtime() as (ingress, admin, pid):
        # Warm: the targets are for warm functions (performance-anchors.md §6).
        burst(ingress, admin, 50, 3, scratch)
        profiles: dict[str, Any] = {}
        if profile:
            pool = concurrent_profile(pid, out)
        results["load_100"] = _timed(partial(_measured_burst, ingress, admin, pid, out))
        if profile:
            profiles = pool()
        results["profile"] = profiles
        sustained: list[dict[str, Any]] = []
        best = 0
        for rate in steps:
            report = _timed(partial(_step, ingress, admin, rate, scratch))
            finished_rate = report["throughput"]["finished_per_s"] or 0.0
            ok = (
                report["completed"] == report["created"]
                and not report["errors"]
                and report["lost"] == 0
                and finished_rate >= 0.95 * rate
            )
            sustained.append({"rate": rate, "sustained": ok, **report})
            if not ok:
                break
            best = rate
        results["sustained"] = {
            "step_seconds": 15,
            "max_rate_sustained_per_s": best,
            "steps": sustained,
        }
    return results


def _measured_burst(ingress: str, admin: str, runtime_pid: int, out: Path) -> dict[str, Any]:
    """100 users/s for 20 s, with the CPU time each process role spent on them."""
    with CpuMeter(runtime_pid) as meter:
        report = burst_figures(burst(ingress, admin, 100, 20, out))
    return report | {"cpu": meter.result(report["completed"])}


def _step(ingress: str, admin: str, rate: int, out: Path) -> dict[str, Any]:
    return burst_figures(burst(ingress, admin, rate, 15, out))


def concurrent_profile(runtime_pid: int, out: Path) -> Callable[[], dict[str, Any]]:
    """Start py-spy on the runtime and on one operation-create instance (after a delay, when
    the load runs); return a function that waits for both and returns their top frames."""
    import threading

    found: dict[str, Any] = {}

    def work() -> None:
        time.sleep(5)
        target = _instance_pid(runtime_pid, "operation-create")
        runtime = threading.Thread(
            target=lambda: found.update(runtime=_profile(runtime_pid, 8, out / "runtime.raw"))
        )
        runtime.start()
        if target is not None:
            found["operation-create"] = _profile(target, 8, out / "operation-create.raw")
        runtime.join()

    thread = threading.Thread(target=work)
    thread.start()

    def wait() -> dict[str, Any]:
        thread.join()
        return found

    return wait


# -- (d) functions-framework ---------------------------------------------------------------------


def _ff_python() -> Path:
    """The interpreter of `.cache/ff-venv`, created on first use."""
    python = FF_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(FF_VENV)], check=True)
    gunicorn_version = subprocess.run(
        [sys.executable, "-c", "import gunicorn; print(gunicorn.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # jsonschema, fastjsonschema, PyYAML: the adapter validates events as ours do.
    packages = ["functions-framework==3.10.2", f"gunicorn=={gunicorn_version}"]
    packages += ["jsonschema", "fastjsonschema", "pyyaml"]
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", *packages], check=True)
    return python


def _user_created_event(index: int) -> tuple[dict[str, str], bytes]:
    operation = str(uuid.uuid4())
    headers = {
        "ce-specversion": "1.0",
        "ce-id": str(uuid.uuid4()),
        "ce-source": "/knuser/bench",
        "ce-type": "dev.knuser.user.created.v1",
        "ce-operationid": operation,
        "Content-Type": "application/json",
    }
    data = {
        "operationId": operation,
        "user": {
            "id": str(uuid.uuid4()),
            "name": f"Bench User {index}",
            "status": "approval_pending",
            "reason": None,
        },
    }
    return headers, json.dumps(data).encode()


@contextlib.contextmanager
def _server(
    python: Path, target: str, port: int, data: Path, *options: str
) -> Iterator[tuple[float, int]]:
    """A gunicorn of the function image's settings (and `options` over them); yields
    exec-to-first-reply in ms and gunicorn's pid."""
    env = {**_function_env("user-approve", data), "PORT": str(port)}
    started = time.monotonic()
    settings = ["-c", "python:functions.gunicorn_conf", "--bind", f"127.0.0.1:{port}", *options]
    process = subprocess.Popen(
        [str(python), "-m", "gunicorn", *settings, target],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        headers, body = _user_created_event(0)
        deadline = started + 30
        while True:
            with contextlib.suppress(OSError):
                request = urllib_request(f"http://127.0.0.1:{port}/", headers, body)
                if request == 200:
                    break
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"{target} did not answer")
            time.sleep(0.002)
        yield (time.monotonic() - started) * 1000, process.pid
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def urllib_request(url: str, headers: dict[str, str], body: bytes) -> int:
    """POST and return the status (any HTTP error status included)."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, body, headers, method="POST"), timeout=2
        ) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


async def _throughput(url: str, seconds: float, concurrency: int) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    end = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def client(worker: int) -> None:
            nonlocal errors
            index = worker
            while time.monotonic() < end:
                headers, body = _user_created_event(index)
                index += concurrency
                started = time.monotonic()
                async with session.post(url, headers=headers, data=body) as response:
                    await response.read()
                    if response.status != 200:
                        errors += 1
                latencies.append((time.monotonic() - started) * 1000)

        started = time.monotonic()
        await asyncio.gather(*(client(i) for i in range(concurrency)))
        elapsed = time.monotonic() - started
    return {
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "latency_ms": summarize(latencies),
        "errors": errors,
    }


def functions_framework(rounds: int, seconds: float, concurrency: int) -> dict[str, Any]:
    """Ours vs functions-framework, interleaved rounds: cold start and requests/s."""
    ff_python = _ff_python()
    ours_app = (Path(sys.executable), APP["wsgi_app"])
    servers = {"ours": ours_app, "functions_framework": (ff_python, FF_APP)}
    cold: dict[str, list[float]] = {name: [] for name in servers}
    rps: dict[str, list[dict[str, Any]]] = {name: [] for name in servers}
    data = Path(tempfile.mkdtemp(prefix="bench-ff-"))
    for _ in tqdm(range(rounds), desc="ours vs functions-framework", unit="round"):
        for name, (python, target) in servers.items():
            port = free_port()
            with _server(python, target, port, data) as (first_reply_ms, _):
                cold[name].append(first_reply_ms)
                rps[name].append(
                    asyncio.run(_throughput(f"http://127.0.0.1:{port}/", seconds, concurrency))
                )
    figures: dict[str, Any] = {}
    for name in servers:
        figures[name] = {
            "cold_start_exec_to_first_reply_ms": summarize(cold[name]),
            "requests_per_s_per_round": [r["requests_per_s"] for r in rps[name]],
            "requests_per_s_best": max(r["requests_per_s"] for r in rps[name]),
            "latency_ms_last_round": rps[name][-1]["latency_ms"],
            "errors": sum(r["errors"] for r in rps[name]),
        }
    ours, ff = figures["ours"], figures["functions_framework"]
    return {
        "function": "user-approve (binary CloudEvent in, reply event out)",
        "gunicorn_settings": "functions/gunicorn_conf.py (1 worker of 8 threads)",
        "concurrency": concurrency,
        "seconds_per_round": seconds,
        **figures,
        "ratio_requests_per_s_ours_over_ff": round(
            ours["requests_per_s_best"] / ff["requests_per_s_best"], 2
        ),
        "ratio_cold_start_p50_ff_over_ours": round(
            ff["cold_start_exec_to_first_reply_ms"]["p50"]
            / ours["cold_start_exec_to_first_reply_ms"]["p50"],
            2,
        ),
    }


# -- the report ----------------------------------------------------------------------------------


def verdicts(results: dict[str, Any]) -> dict[str, Any]:
    """Each issue-3 target with its measured figure and whether it is met."""
    out: dict[str, Any] = {}
    if "cold_start" in results:
        fork = results["cold_start"]["fork_launcher_ms"]
        out["cold_start_p50<=15ms"] = [fork["p50"], fork["p50"] <= TARGETS["cold_start_p50_ms"]]
        out["cold_start_p99<=40ms"] = [fork["p99"], fork["p99"] <= TARGETS["cold_start_p99_ms"]]
    if "load_100" in results:
        load = results["load_100"]
        post, done = load["post_latency_ms"]["p99"], load["time_to_final_ms"]["p99"]
        out["post_p99<=15ms@100/s"] = [post, post is not None and post <= 15.0]
        out["completed_p99<=100ms@100/s"] = [done, done is not None and done <= 100.0]
    if "sustained" in results:
        best = results["sustained"]["max_rate_sustained_per_s"]
        out["sustained>=250/s"] = [best, best >= TARGETS["sustained_per_s"]]
        out["sustained>=400/s(stretch)"] = [best, best >= TARGETS["sustained_stretch_per_s"]]
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark parts and write the JSON results."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.run", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument(
        "--parts",
        default="cold_start,load,functions_framework",
        help="comma-separated: cold_start, load (100/s, sustained, profile),"
        " functions_framework (default: all)",
    )
    parser.add_argument("--starts", type=int, default=30, help="cold starts per launcher")
    parser.add_argument(
        "--steps", default=",".join(map(str, STEPS)), help="sustained-test rates, per second"
    )
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy profiles")
    parser.add_argument("--ff-rounds", type=int, default=3, help="rounds of the ff comparison")
    parser.add_argument("--out", default=str(RESULTS), help="results folder")
    args = parser.parse_args(argv)
    parts = set(args.parts.split(","))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    loadavg = os.getloadavg()
    results: dict[str, Any] = {
        "kind": "bench",
        "command": [sys.executable, *sys.argv],
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if "cold_start" in parts:
        results["cold_start"] = _timed(lambda: cold_start(args.starts))
    if "load" in parts:
        steps = tuple(int(s) for s in args.steps.split(","))
        results.update(runtime_under_load(out, steps, not args.no_profile))
    if "functions_framework" in parts:
        results["functions_framework"] = _timed(lambda: functions_framework(args.ff_rounds, 8.0, 8))
    results["machine"] = machine_info(loadavg, os.getloadavg())
    results["targets"] = verdicts(results)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = out / f"bench-{stamp}.json"
    path.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results["targets"], indent=1))
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Tracing's cost: CPU per user of the same burst, untraced and traced, in the same run (issue 12).

`python -m bench.bench_tracing` (needs `make zipkin`). Rounds alternate untraced and traced
runtimes (ABAB…), each a fresh `knlocal run`, warmed, then measured over one burst with
:class:`bench.cpu.CpuMeter`: every process of the runtime's tree (runtime, zygote, instances) and
the load generator. Traced means every operation sampled (`OTEL_TRACES_SAMPLER=always_on`) and
exported to Zipkin; Zipkin's own JVM is measured beside it (the tracing backend, not the system,
so it is reported, not added). Off means no OTEL_* variable at all: the hooks' no-op path.
Target: traced CPU per user at most 1.10 times untraced. The machine is shared: compare within
one run.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.cpu import CpuMeter
from bench.run import RESULTS, burst, burst_figures, local_runtime
from knuser_tools.burst import machine_info

ZIPKIN_PID = Path(__file__).resolve().parents[1] / ".run" / "zipkin.pid"
TRACED = {
    "OTEL_TRACES_EXPORTER": "zipkin",
    "OTEL_TRACES_SAMPLER": "always_on",
    "OTEL_EXPORTER_ZIPKIN_ENDPOINT": "http://127.0.0.1:9411/api/v2/spans",
}
#: What "untraced" must not inherit from the caller's environment.
UNTRACED = {"OTEL_TRACES_EXPORTER": "none"}


def measure(env: dict[str, str], rate: float, seconds: float, scratch: Path) -> dict[str, Any]:
    """One fresh runtime: a warm-up burst, then the measured one."""
    extra = {"zipkin": int(ZIPKIN_PID.read_text())} if "OTEL_TRACES_SAMPLER" in env else {}
    with local_runtime(env) as (ingress, admin, pid):
        burst(ingress, admin, rate, 2, scratch)
        time.sleep(1)
        with CpuMeter(pid, extra) as meter:
            report = burst_figures(burst(ingress, admin, rate, seconds, scratch))
    return report | {"cpu": meter.result(report["completed"])}


def system_cpu_per_user(result: dict[str, Any]) -> float:
    """CPU ms per user of the system and its load generator (Zipkin's JVM left out)."""
    per_user: dict[str, float] = result["cpu"]["cpu_ms_per_user"]
    return sum(ms for role, ms in per_user.items() if role != "zipkin")


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and write bench/results/tracing-<time>.json."""
    parser = argparse.ArgumentParser(prog="bench.bench_tracing", description=__doc__)
    parser.add_argument("--rounds", type=int, default=2, help="pairs of runs (default 2)")
    parser.add_argument("--rate", type=float, default=50, help="users/s (default 50)")
    parser.add_argument("--seconds", type=float, default=10, help="burst length (default 10)")
    parser.add_argument(
        "--ratio",
        type=float,
        default=None,
        help="sample this fraction of traces (parentbased_traceidratio) instead of every one",
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="also measure a third kind, traced with this OTEL_* setting too (repeatable), "
        "e.g. OTEL_BSP_SCHEDULE_DELAY=30000",
    )
    parser.add_argument("--out", default=str(RESULTS), help="results folder")
    args = parser.parse_args(argv)
    if not ZIPKIN_PID.exists():
        parser.error("Zipkin is not running: start it with `make zipkin`")
    scratch = Path(tempfile.mkdtemp(prefix="bench-tracing-"))
    load_before = os.getloadavg()
    traced = dict(TRACED)
    if args.ratio is not None:
        traced |= {
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": str(args.ratio),
        }
    kinds = {"untraced": UNTRACED, "traced": traced}
    if args.variant:
        kinds[f"traced {' '.join(args.variant)}"] = traced | dict(
            v.split("=", 1) for v in args.variant
        )
    runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
    for _ in range(args.rounds):
        for kind, env in kinds.items():
            runs[kind].append(measure(env, args.rate, args.seconds, scratch))
    medians = {k: statistics.median(system_cpu_per_user(r) for r in v) for k, v in runs.items()}
    zipkin = statistics.median(
        r["cpu"]["cpu_ms_per_user"].get("zipkin", 0.0) for r in runs["traced"]
    )
    ratio = medians["traced"] / medians["untraced"]
    ratios = {k: round(v / medians["untraced"], 3) for k, v in medians.items() if k != "untraced"}
    result = {
        "what": "CPU ms per user, untraced vs traced (exported to Zipkin)",
        "sampler": traced["OTEL_TRACES_SAMPLER"],
        "sampler_arg": traced.get("OTEL_TRACES_SAMPLER_ARG"),
        "command": " ".join(
            ["python -m bench.bench_tracing", *(sys.argv[1:] if argv is None else argv)]
        ),
        "machine": machine_info(load_before, os.getloadavg()),
        "note": "machine shared with other work: compare within this run only",
        "rate_per_s": args.rate,
        "seconds": args.seconds,
        "cpu_ms_per_user": {k: round(v, 2) for k, v in medians.items()},
        "zipkin_cpu_ms_per_user": round(zipkin, 2),
        "traced_over_untraced": round(ratio, 3),
        "over_untraced": ratios,
        "target": "≤ 1.10",
        "meets_target": ratio <= 1.10,
        "runs": runs,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"tracing-{datetime.now(UTC).strftime('%Y-%m-%dT%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(
        json.dumps(
            {k: result[k] for k in ("cpu_ms_per_user", "zipkin_cpu_ms_per_user", "over_untraced")}
        )
    )
    print(f"→ {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""`knlocal burst`: the command, added to `knlocal` through the `knlocal.commands` entry point.

Creates users in a burst, follows each operation to its end, and writes `burst-<timestamp>.json`
(figures, settings, machine, and the time series) and `burst-<timestamp>.png`: instances per
service, requests in flight, and completions per second over time, the picture of services
scaling from zero and back.

Against a cluster ingress (`--url`) there is no admin view; the instance series are then left
out, unless `--admin` names one. With `--faults FILE` it starts a runtime of its own under that
fault plan (knlocal/process.py), bursts it, checks its stores and stops it.
"""

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from knlocal.errors import RuntimeStartError
from knlocal.process import RuntimeProcess
from knuser_tools.burst.driver import Burst
from knuser_tools.burst.model import LOCAL_ADMIN, LOCAL_INGRESS, SAMPLE_INTERVAL, BurstConfig
from knuser_tools.burst.plot import plot
from knuser_tools.burst.report import summary_text

#: How long a runtime started by `--faults` may take to answer its admin API.
RUNTIME_START_SECONDS = 60.0


def register(commands: Any) -> None:
    """The `knlocal.commands` entry point: add `knlocal burst` to `knlocal`'s subcommands."""
    add_parser(commands).set_defaults(handler=run_command)


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """Add `knlocal burst` to the CLI's subcommands; return its parser."""
    parser: argparse.ArgumentParser = commands.add_parser(
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
    return parser


@contextlib.contextmanager
def runtime_under_plan(plan: Path) -> Iterator[tuple[str, str, Path]]:
    """`knlocal run --faults plan` on free ports with fresh data; yields ingress, admin, data.

    Ready once its admin API answers `/status`; stopped with Ctrl-C (SIGINT) at the end.

    :raises RuntimeStartError: it did not get ready; with its output.
    """
    data = Path(tempfile.mkdtemp(prefix="knlocal-burst-"))
    runtime = RuntimeProcess(
        data, args=["--faults", str(plan)], start_timeout=RUNTIME_START_SECONDS
    )
    with runtime:
        yield runtime.ingress, runtime.admin, data


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
        except RuntimeStartError as exc:
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

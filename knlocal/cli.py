"""`knlocal`: run the manifests locally, and look at what runs.

knlocal run [--broker inmemory|kafka] [--store sqlite|dynamodb] [--profile local|knative]
            [--faults FILE]
knlocal status [--watch]
knlocal watch [--namespace NS] [--once]   (a Knative cluster's pods; needs a kubeconfig)
knlocal burst [-n N] [--rate R] [--concurrency C] [--url URL] [--admin URL] [--data-dir DIR]
"""

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from knlocal import burst, trace_view
from knlocal.errors import LocalRuntimeError
from knlocal.eventing import faults
from knlocal.settings import BROKERS, PROFILES, STORES, Settings

log = logging.getLogger("knlocal")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `knlocal` command."""
    parser = argparse.ArgumentParser(
        prog="knlocal",
        description="Run Knative Services, Brokers and Triggers from their manifests on one"
        " machine, with no Kubernetes.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="start the whole system and serve until Ctrl-C",
        description="Start the ingress, the broker, one dispatcher per Trigger and the Knative"
        " Services (at zero instances; they start on the first request). Every option also has"
        " an environment variable (in capitals) listed in the README.",
    )
    run.add_argument(
        "--broker", choices=BROKERS, help="broker backend (env BROKER; default inmemory)"
    )
    run.add_argument("--store", choices=STORES, help="store backend (env STORE; default sqlite)")
    run.add_argument(
        "--profile",
        choices=PROFILES,
        help="local: short autoscaling windows for a demo; knative: Knative's own"
        " (env PROFILE; default local)",
    )
    run.add_argument("--manifests", help="folder with knative/, brokers/, triggers/ (default .)")
    run.add_argument("--ingress-port", type=int, help="public API port (default 8080)")
    run.add_argument("--broker-port", type=int, help="broker ingress port (default 8081)")
    run.add_argument("--admin-port", type=int, help="/status and /metrics port (default 8082)")
    run.add_argument("--data-dir", help="SQLite files and function logs (default .data)")
    run.add_argument(
        "--faults",
        default=os.environ.get("FAULTS") or None,
        help="a fault plan (YAML) to inject in the event path; see the README (env FAULTS)",
    )
    run.add_argument("-v", "--verbose", action="store_true", help="log every scaling decision")

    status = commands.add_parser(
        "status",
        help="show services and triggers of a running runtime",
        description="Show each Knative Service (ready/desired instances, in flight, requests/s,"
        " cold starts, panic) and each Trigger (delivered, retried, dead-lettered, in flight).",
    )
    status.add_argument("--watch", action="store_true", help="refresh every second until Ctrl-C")
    status.add_argument("--json", action="store_true", help="print the raw JSON snapshot")
    status.add_argument(
        "--admin", default=None, help="the runtime's admin address (default http://127.0.0.1:8082)"
    )

    cluster_watch = commands.add_parser(
        "watch",
        help="show a Knative cluster's pods per service and revision, live",
        description="The cluster's counterpart of `status`: for each Knative Service and"
        " revision, the desired scale and the pods ready, pending and terminating. Needs a"
        " cluster: the kubeconfig (KUBECONFIG or ~/.kube/config) says which.",
    )
    cluster_watch.add_argument(
        "-n", "--namespace", default="default", help="namespace (default: default)"
    )
    cluster_watch.add_argument("--context", help="kubeconfig context (default: the current one)")
    cluster_watch.add_argument("--once", action="store_true", help="print one table and exit")
    cluster_watch.add_argument(
        "--interval", type=float, default=1.0, help="seconds between refreshes (default 1)"
    )

    burst.add_parser(commands)
    trace_view.add_parser(commands)

    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            return _run(args)
        if args.command == "burst":
            return burst.run_command(args)
        if args.command == "trace":
            return trace_view.run_command(args)
        if args.command == "watch":
            # Imported here: the kubernetes client is slow to import and only watch needs it.
            from knlocal.watch import watch

            return watch(args)
        return _status(args)
    except LocalRuntimeError as exc:
        print(f"knlocal: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("knlocal").setLevel(logging.INFO)
    settings = Settings.from_env(
        broker=args.broker,
        store=args.store,
        profile=args.profile,
        manifests=args.manifests,
        ingress_port=args.ingress_port,
        broker_port=args.broker_port,
        admin_port=args.admin_port,
        data_dir=args.data_dir,
    )
    plan = faults.load(Path(args.faults)) if args.faults else None
    asyncio.run(_serve(settings, plan))
    return 0


async def _serve(settings: Settings, plan: "faults.FaultPlan | None" = None) -> None:
    from knlocal.runtime import Runtime

    runtime = Runtime(settings, faults=plan)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await runtime.start()
    s = settings
    print(
        f"knlocal: ready (broker {s.broker}, store {s.store}, profile {s.profile})\n"
        f"  public API      http://{s.host}:{s.ingress_port}"
        "   (POST /users, GET /operations/<id>)\n"
        + "".join(f"  broker {name:<9} {url}\n" for name, url in runtime.broker_urls.items())
        + f"  status/metrics  http://{s.host}:{s.admin_port}/status  /metrics\n"
        f"  services        {', '.join(runtime.revisions)} (at zero until needed)\n"
        + (f"  faults          {plan.path} (seed {plan.seed})\n" if plan else "")
        + "Ctrl-C stops everything.",
        flush=True,
    )
    await stop.wait()
    print("knlocal: stopping…", flush=True)
    await runtime.stop()
    print("knlocal: stopped", flush=True)


def _status(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    admin = args.admin or f"http://{settings.host}:{settings.admin_port}"
    while True:
        try:
            with urllib.request.urlopen(f"{admin}/status", timeout=5) as response:
                snapshot = json.load(response)
        except (urllib.error.URLError, OSError) as exc:
            print(
                f"knlocal: no runtime answers at {admin} ({exc}); start one with `make run`",
                file=sys.stderr,
            )
            return 1
        text = json.dumps(snapshot, indent=2) if args.json else render(snapshot)
        if args.watch:
            print("\x1b[2J\x1b[H" + text, flush=True)
            try:
                time.sleep(1)
            except KeyboardInterrupt:
                return 0
        else:
            print(text)
            return 0


def render(snapshot: dict[str, Any]) -> str:
    """The status snapshot as two aligned tables."""
    lines = [f"broker backend: {snapshot['broker_backend']}   store: {snapshot['store']}", ""]
    header: tuple[str, ...] = (
        "SERVICE",
        "READY",
        "DESIRED",
        "IN-FLIGHT",
        "REQ/S",
        "REQUESTS",
        "COLD",
        "COLD-P50",
        "PANIC",
        "503",
        "504",
    )
    rows: list[tuple[Any, ...]] = [
        (
            name,
            s["ready"],
            s["desired"],
            s["in_flight"],
            s["requests_per_second"],
            s["requests"],
            s["cold_starts"],
            f"{s['cold_start_ms_p50']} ms" if s["cold_start_ms_p50"] else "-",
            "yes" if s["panic"] else "no",
            s["responses_503"],
            s["responses_504"],
        )
        for name, s in snapshot["services"].items()
    ]
    lines += [*_table(header, rows), ""]
    header = (
        "TRIGGER",
        "RECEIVED",
        "DELIVERED",
        "RETRIED",
        "DEAD-LETTERED",
        "DROPPED",
        "IN-FLIGHT",
        "BACKLOG",
    )
    rows = [
        (
            name,
            t["received"],
            t["delivered"],
            t["retried"],
            t["dead_lettered"],
            t["dropped"],
            t["in_flight"],
            t.get("backlog", "-"),
        )
        for name, t in snapshot["triggers"].items()
    ]
    lines += _table(header, rows)
    injected = snapshot.get("faults")
    if injected is not None:
        rows = [
            (name, kind, count) for name, kinds in injected.items() for kind, count in kinds.items()
        ]
        lines += ["", *_table(("FAULTS AT", "KIND", "INJECTED"), rows)]
    return "\n".join(lines)


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> list[str]:
    cells = [tuple(str(c) for c in row) for row in [header, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]


if __name__ == "__main__":
    sys.exit(main())

"""`knlocal`: run the manifests locally, and look at what runs.

knlocal run [--broker inmemory|kafka] [--store sqlite|dynamodb] [--profile local|knative]
            [--faults FILE]
knlocal status [--watch]
knlocal watch [--namespace NS] [--once]   (a Knative cluster's pods; needs a kubeconfig)

and the commands installed packages add (see :data:`COMMANDS_GROUP`), e.g. the application's
`knlocal burst` (knuser_tools/burst/).
"""

import argparse
import asyncio
import importlib.metadata
import json
import logging
import signal
import sys
import time
import urllib.error
import urllib.request

from knlocal import trace_view
from knlocal.errors import LocalRuntimeError
from knlocal.eventing import faults
from knlocal.settings import BROKERS, PROFILES, STORES, Settings
from knlocal.status import StatusSnapshot
from knlocal.tables import table

log = logging.getLogger("knlocal")

#: The entry-point group of the commands other packages add to `knlocal` (in their
#: pyproject.toml: `[project.entry-points."knlocal.commands"]`). Each entry names a function
#: that gets the subparsers, adds its parser, and sets `handler` (a function of the parsed
#: arguments returning the exit code) with `parser.set_defaults(handler=...)`.
COMMANDS_GROUP = "knlocal.commands"


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `knlocal` command."""
    try:
        # The flags' defaults: the environment over the built-in defaults (knlocal/settings.py).
        settings = Settings.from_env()
    except LocalRuntimeError as exc:
        print(f"knlocal: {exc}", file=sys.stderr)
        return 2
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
    s = settings
    run.add_argument(
        "--broker",
        choices=BROKERS,
        default=s.broker,
        help="broker backend (env BROKER; %(default)s)",
    )
    run.add_argument(
        "--store", choices=STORES, default=s.store, help="store backend (env STORE; %(default)s)"
    )
    run.add_argument(
        "--profile",
        choices=PROFILES,
        default=s.profile,
        help="local: short autoscaling windows for a demo; knative: Knative's own"
        " (env PROFILE; %(default)s)",
    )
    run.add_argument(
        "--manifests",
        default=s.manifests,
        help="folder with knative/, brokers/, triggers/ (env MANIFESTS; %(default)s)",
    )
    run.add_argument(
        "--ingress-port", type=int, default=s.ingress_port, help="public API port (%(default)s)"
    )
    run.add_argument(
        "--broker-port", type=int, default=s.broker_port, help="broker ingress port (%(default)s)"
    )
    run.add_argument(
        "--admin-port", type=int, default=s.admin_port, help="/status, /metrics port (%(default)s)"
    )
    run.add_argument(
        "--data-dir", default=s.data_dir, help="SQLite files and function logs (%(default)s)"
    )
    run.add_argument(
        "--faults",
        default=s.faults,
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
        "--admin",
        default=f"http://{s.host}:{s.admin_port}",
        help="the runtime's admin address (%(default)s)",
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

    add_installed_commands(commands)
    trace_view.add_parser(commands)

    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            return _run(args)
        handler = getattr(args, "handler", None)
        if handler is not None:
            code: int = handler(args)
            return code
        if args.command == "watch":
            # Imported here: the kubernetes client is slow to import and only watch needs it.
            from knlocal.watch import watch

            return watch(args)
        return _status(args)
    except LocalRuntimeError as exc:
        print(f"knlocal: {exc}", file=sys.stderr)
        return 2


def add_installed_commands(commands: object) -> None:
    """Add the commands of every `knlocal.commands` entry point; one that fails to load is
    left out with a warning, so that it cannot break `knlocal run`."""
    for entry in importlib.metadata.entry_points(group=COMMANDS_GROUP):
        try:
            entry.load()(commands)
        except Exception as exc:  # a plugin's import error is its own, whatever it is
            print(
                f"knlocal: command {entry.name!r} ({entry.value}) left out: {exc!r}",
                file=sys.stderr,
            )


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
        faults=args.faults,
    )
    plan = faults.load(settings.faults) if settings.faults else None
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
    routes = ", ".join(
        f"{r.method or '*'} {r.path_exact or f'{r.path_prefix}*'}" for r in runtime.system.routes
    )
    print(
        f"knlocal: ready (broker {s.broker}, store {s.store}, profile {s.profile})\n"
        f"  public API      http://{s.host}:{s.ingress_port}   ({routes})\n"
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
    admin = args.admin
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
        text = (
            json.dumps(snapshot, indent=2)
            if args.json
            else render(StatusSnapshot.from_json(snapshot))
        )
        if args.watch:
            print("\x1b[2J\x1b[H" + text, flush=True)
            try:
                time.sleep(1)
            except KeyboardInterrupt:
                return 0
        else:
            print(text)
            return 0


def render(snapshot: StatusSnapshot) -> str:
    """The status snapshot as two aligned tables (and a third of injected faults)."""
    lines = [f"broker backend: {snapshot.broker_backend}   store: {snapshot.store}", ""]
    lines += [*_services_table(snapshot), "", *_triggers_table(snapshot)]
    if snapshot.faults is not None:
        rows = [
            (name, kind, count)
            for name, kinds in snapshot.faults.items()
            for kind, count in kinds.items()
        ]
        lines += ["", *table(("FAULTS AT", "KIND", "INJECTED"), rows)]
    return "\n".join(lines)


SERVICE_HEADER = (
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
TRIGGER_HEADER = (
    "TRIGGER",
    "RECEIVED",
    "DELIVERED",
    "RETRIED",
    "DEAD-LETTERED",
    "DROPPED",
    "IN-FLIGHT",
    "BACKLOG",
)


def _services_table(snapshot: StatusSnapshot) -> list[str]:
    rows = [
        (
            name,
            s.ready,
            s.desired,
            s.in_flight,
            s.requests_per_second,
            s.requests,
            s.cold_starts,
            f"{s.cold_start_ms_p50} ms" if s.cold_start_ms_p50 else "-",
            "yes" if s.panic else "no",
            s.responses_503,
            s.responses_504,
        )
        for name, s in snapshot.services.items()
    ]
    return table(SERVICE_HEADER, rows)


def _triggers_table(snapshot: StatusSnapshot) -> list[str]:
    rows = [
        (
            name,
            t.received,
            t.delivered,
            t.retried,
            t.dead_lettered,
            t.dropped,
            t.in_flight,
            "-" if t.backlog is None else t.backlog,
        )
        for name, t in snapshot.triggers.items()
    ]
    return table(TRIGGER_HEADER, rows)


if __name__ == "__main__":
    sys.exit(main())

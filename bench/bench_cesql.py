"""Cost per event of a CESQL Trigger filter; `python -m bench.bench_cesql` runs it.

A typical filter, ``type = 'x' AND source LIKE 'a%'``, is built as the runtime builds a
Trigger's filter (``build_trigger_filter``, MT broker class) and evaluated on a matching and a
non-matching event; the bare compiled expression and the equivalent ``exact`` + ``prefix``
dialects are measured alike for comparison. Each sample times a batch of evaluations
(``time.perf_counter_ns`` cannot time one call of a microsecond), and the per-event cost of
the batches gives p50/p99 in microseconds. The result goes to
bench/results/cesql-<date-time>.json with the command and the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cloudevents.core.v1.event import CloudEvent

from knlocal.apis.filters import parse_filters
from knlocal.eventing.cesql import compile_expression
from knlocal.eventing.classes import MT_CHANNEL_BASED_BROKER
from knlocal.eventing.filters import build_trigger_filter
from knuser_tools.burst import machine_info, summarize

RESULTS = Path(__file__).resolve().parent / "results"
EXPRESSION = "type = 'x' AND source LIKE 'a%'"


def _attributes(**values: Any) -> dict[str, Any]:
    event = CloudEvent({"id": "1", "specversion": "1.0", "operationid": "op-1", **values}, None)
    return dict(event.get_attributes())


def _measure(call: Callable[[], object], batches: int, batch: int) -> dict[str, Any]:
    """Per-event microseconds over ``batches`` timed batches of ``batch`` calls."""
    for _ in range(batch):  # warm up
        call()
    costs: list[float] = []
    for _ in range(batches):
        start = time.perf_counter_ns()
        for _ in range(batch):
            call()
        costs.append((time.perf_counter_ns() - start) / batch / 1000)
    return summarize(costs)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=2000, help="timed batches per case")
    parser.add_argument("--batch", type=int, default=200, help="evaluations per batch")
    args = parser.parse_args(argv)

    matching = _attributes(type="x", source="a/users")
    other = _attributes(type="y", source="b/users")
    cesql = build_trigger_filter(
        parse_filters({"filters": [{"cesql": EXPRESSION}]}), MT_CHANNEL_BASED_BROKER
    )
    dialects = build_trigger_filter(
        parse_filters({"filters": [{"exact": {"type": "x"}}, {"prefix": {"source": "a"}}]}),
        MT_CHANNEL_BASED_BROKER,
    )
    expression = compile_expression(EXPRESSION)
    bare = {"type": "x", "source": "a/users"}
    cases: dict[str, Callable[[], object]] = {
        "cesql_filter_match": lambda: cesql.evaluate(matching),
        "cesql_filter_no_match": lambda: cesql.evaluate(other),
        "cesql_expression_only": lambda: expression.evaluate(bare),
        "exact_prefix_filter_match": lambda: dialects.evaluate(matching),
        "compile_expression": lambda: compile_expression(EXPRESSION),
    }
    load_before = os.getloadavg()
    results = {
        name: _measure(call, args.batches, 10 if name == "compile_expression" else args.batch)
        for name, call in cases.items()
    }
    report = {
        "benchmark": "cesql filter evaluation per event (microseconds)",
        "expression": EXPRESSION,
        "unit": "us",
        "command": " ".join(
            [Path(sys.executable).name, "-m", "bench.bench_cesql", *(argv or sys.argv[1:])]
        ),
        "batches": args.batches,
        "batch": args.batch,
        "results": results,
        "machine": machine_info(load_before, os.getloadavg()),
    }
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H%M%S")
    path = RESULTS / f"cesql-{stamp}.json"
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    for name, summary in results.items():
        print(f"{name:28} p50 {summary['p50']:8.3f} us   p99 {summary['p99']:8.3f} us")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""`knlocal trace <operation-id>`: one operation's trace as a waterfall, read from Zipkin's API.

The trace id is the operation's `traceId` (GET /operations/<id> on the runtime's ingress); when
the runtime is not reachable, Zipkin is asked for the traces tagged `operationid=<id>`
(`/api/v2/traces?annotationQuery=…`), the tag every event span carries (knlocal/tracing.py).
"""

import argparse
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from knlocal.errors import TraceNotFound

ZIPKIN_URL = "http://127.0.0.1:9411"
#: How far back Zipkin looks for traces tagged with the operation id (ms): a day.
LOOKBACK_MS = 86_400_000
_BAR = 20


def _get(url: str, timeout: float = 5.0) -> Any:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, no proxy
    with opener.open(url, timeout=timeout) as response:
        return json.load(response)


def trace_id_of(operation_id: str, ingress: str) -> str | None:
    """The operation's trace id, from the runtime (None if it is not reachable or has none)."""
    quoted = urllib.parse.quote(operation_id, safe="")
    try:
        operation = _get(f"{ingress}/operations/{quoted}")
    except (OSError, ValueError):
        return None
    trace_id = operation.get("traceId") if isinstance(operation, dict) else None
    return trace_id if isinstance(trace_id, str) else None


def fetch(operation_id: str, ingress: str, zipkin: str = ZIPKIN_URL) -> list[dict[str, Any]]:
    """The spans of the operation's trace.

    :raises TraceNotFound: Zipkin does not answer, or has no trace for the operation.
    """
    try:
        _get(f"{zipkin}/api/v2/services")
    except (OSError, ValueError) as exc:
        raise TraceNotFound(
            f"no tracing backend answers at {zipkin} ({exc}); start one with `make zipkin`, then"
            " `make run` (it exports to Zipkin whenever Zipkin runs)"
        ) from exc
    trace_id = trace_id_of(operation_id, ingress)
    if trace_id is not None:
        try:
            spans: list[dict[str, Any]] = _get(f"{zipkin}/api/v2/trace/{trace_id}")
            return spans
        except urllib.error.HTTPError as exc:
            if exc.code != 404:
                raise TraceNotFound(f"Zipkin answered {exc.code} for trace {trace_id}") from exc
    query = urllib.parse.urlencode(
        {"annotationQuery": f"operationid={operation_id}", "lookback": LOOKBACK_MS, "limit": 10}
    )
    traces: list[list[dict[str, Any]]] = _get(f"{zipkin}/api/v2/traces?{query}")
    if not traces:
        where = f"trace {trace_id}" if trace_id else f"a span tagged operationid={operation_id}"
        raise TraceNotFound(
            f"Zipkin at {zipkin} has no {where}: was the runtime exporting (OTEL_TRACES_EXPORTER,"
            " or Zipkin running at `make run`) when the operation ran?"
        )
    return max(traces, key=len)


@dataclass(frozen=True)
class Row:
    """One line of the waterfall."""

    start_ms: float
    duration_ms: float
    depth: int
    service: str
    name: str
    status: str
    retries: str


def rows(spans: list[dict[str, Any]]) -> list[Row]:
    """The spans in tree order (children under their parent, by start), with their columns."""
    ids = {s["id"] for s in spans}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for span in spans:
        parent = span.get("parentId")
        children.setdefault(parent if parent in ids else None, []).append(span)
    start = min((s.get("timestamp", 0) for s in spans), default=0)
    out: list[Row] = []

    def walk(parent: str | None, depth: int) -> None:
        for span in sorted(children.get(parent, []), key=lambda s: s.get("timestamp", 0)):
            tags: Mapping[str, str] = span.get("tags", {})
            out.append(
                Row(
                    (span.get("timestamp", start) - start) / 1000,
                    span.get("duration", 0) / 1000,
                    depth,
                    span.get("localEndpoint", {}).get("serviceName", "?"),
                    span.get("name", "?"),
                    _status(tags),
                    _retries(tags),
                )
            )
            walk(span["id"], depth + 1)

    walk(None, 0)
    return out


def _status(tags: Mapping[str, str]) -> str:
    code = tags.get("http.response.status_code", "")
    if "error" in tags or tags.get("otel.status_code") == "ERROR":
        return f"ERROR {code or tags.get('error', '')}".strip()
    return code or "ok"


def _retries(tags: Mapping[str, str]) -> str:
    resend = tags.get("http.request.resend_count")
    if resend is None:
        return ""
    return f"retry {resend} after {float(tags.get('knative.delivery.backoff_ms', 0)):g} ms"


def render(table: list[Row]) -> str:
    """The waterfall: offset, duration, a bar on the trace's time line, service, span, status."""
    total = max((r.start_ms + r.duration_ms for r in table), default=0.0) or 1.0
    service_width = max((len(r.service) for r in table), default=7)
    name_width = max((r.depth + len(r.name) for r in table), default=4)
    lines = [
        f"{'start ms':>9} {'dur ms':>8}  {'':{_BAR}}  {'service':{service_width}}  "
        f"{'span':{name_width}}  status / retries"
    ]
    for r in table:
        first = int(r.start_ms / total * _BAR)
        width = max(1, round(r.duration_ms / total * _BAR))
        bar = (" " * first + "█" * width)[:_BAR]
        span = " " * r.depth + r.name
        detail = "  ".join(x for x in (r.status, r.retries) if x)
        lines.append(
            f"{r.start_ms:9.1f} {r.duration_ms:8.1f}  {bar:{_BAR}}  {r.service:{service_width}}  "
            f"{span:{name_width}}  {detail}"
        )
    lines.append(f"{len(table)} spans, {total:.1f} ms")
    return "\n".join(lines)


def add_parser(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add `knlocal trace`."""
    trace = commands.add_parser(
        "trace",
        help="show one operation's trace as a waterfall (from Zipkin)",
        description="Read the operation's trace from Zipkin's API and print it as a waterfall:"
        " start offset, duration, service, span, status and retries. Needs Zipkin (make zipkin)"
        " running while the operation ran under `make run`.",
    )
    trace.add_argument("operation_id", help="the operation's id (POST /users answered it)")
    trace.add_argument(
        "--url", default="http://127.0.0.1:8080", help="the runtime's public API (for its traceId)"
    )
    trace.add_argument(
        "--zipkin", default=ZIPKIN_URL, help=f"Zipkin's address (default {ZIPKIN_URL})"
    )
    trace.add_argument("--json", action="store_true", help="print Zipkin's spans as JSON")
    trace.set_defaults(handler=run_command)


def run_command(args: argparse.Namespace) -> int:
    """Run `knlocal trace`."""
    spans = fetch(args.operation_id, args.url.rstrip("/"), args.zipkin.rstrip("/"))
    print(json.dumps(spans, indent=2) if args.json else render(rows(spans)))
    return 0

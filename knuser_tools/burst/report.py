"""What a burst observed, as the JSON report and as a few lines for the terminal."""

import os
import platform
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from knuser_tools.burst.model import POLL_GROWTH, BurstConfig, Operation
from knuser_tools.burst.stores import check_stores


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

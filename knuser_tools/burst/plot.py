"""The PNG of a burst: instances per service, requests in flight, completions per second."""

from pathlib import Path
from typing import Any

from knuser_tools.burst.model import Operation


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
        series = ((instances, "ready", 2.0, True), (in_flight, "in_flight", 1.4, False))
        for name in services:
            for axis, key, width, labelled in series:
                values = [s[key][name] for s in samples]
                label = name if labelled else None
                axis.step(
                    times, values, where="post", color=colours[name], linewidth=width, label=label
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

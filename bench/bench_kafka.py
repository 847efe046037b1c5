"""Benchmark of the Kafka broker backend; `make bench-kafka` runs it.

Three measurements against a Kafka of the benchmark's own (tools/kafka.sh on free ports, fresh
data), sharing this machine's cores with Kafka itself and the load generator:

1. **backend**: events/s through :class:`KafkaBackend` end to end: `publish` (CloudEvents SDK
   encoding, acks=all) from many concurrent publishers, one subscription that receives (SDK
   decoding) and acknowledges every event, offsets committed as the runtime commits them. The
   publishers keep the backend saturated, so its latencies are queueing, not a hop's latency;
2. **raw baseline**, same run, same topic shape, same record bytes: kafka-python alone, with the
   same producer settings, one consumer, a commit per poll, and no CloudEvents;
3. **runtime**: `knlocal burst` (the project's burst driver, as `make bench` uses it) at a steady
   100 users/s for 20 s through `knlocal run` with BROKER=kafka: `POST /users` latency, time to
   `completed`, and CPU milliseconds per completed user by process role, Kafka's JVM included
   (bench/cpu.py); then 15-s steps at rising rates (`--steps`), the highest whose every
   operation ended at ≥ 95 % of the offered rate; and the memory of the runtime's process tree
   (runtime, Kafka receiver and dispatcher, zygote, instances; not Kafka's JVM) at rest, every
   service at zero, and its peak during the bursts. The same with BROKER=inmemory is the
   baseline.

Latencies are p50/p95/p99/max in milliseconds. The result goes to
bench/results/kafka-<date-time>.json, with the command and the machine (cores, CPU, load).
"""

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import kafka
from cloudevents.core.v1.event import CloudEvent
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from tqdm import tqdm

from bench.cpu import CpuMeter
from knlocal.apis.classes import KAFKA_BROKER
from knlocal.apis.eventing import Broker
from knlocal.eventing.backends.kafka import LINGER_MS, KafkaBackend, topic_name
from knlocal.eventing.events import encode_kafka
from knlocal.process import RuntimeProcess
from knlocal.settings import Settings
from knuser_tools.burst import Burst, BurstConfig, machine_info, run_burst, summarize
from tests.servers import ROOT, PrivateServer

RESULTS = ROOT / "bench" / "results"
#: The brokers/kafka/ ConfigMap's topic shape.
CONFIG = {"default.topic.partitions": "10", "default.topic.replication.factor": "1"}
#: Publishes in flight at once in part 1: what a busy ingress plus four dispatchers produce.
IN_FLIGHT = 1000


def milliseconds(seconds: Sequence[float]) -> dict[str, float | int | None]:
    """Count, p50, p95, p99 and max of durations, in milliseconds."""
    return summarize(s * 1000 for s in seconds)


def sample_event(index: int) -> CloudEvent:
    """An event shaped like the product's: a user creation request with its operation id."""
    operation_id = str(uuid.uuid4())
    return CloudEvent(
        {
            "id": f"bench-{index}",
            "source": "/bench",
            "type": "dev.knuser.user.creation.requested.v1",
            "datacontenttype": "application/json",
            "operationid": operation_id,
        },
        {"operationId": operation_id, "name": "Ada Lovelace"},
    )


# --- 1. through the backend -------------------------------------------------------------------


async def through_backend(servers: str, count: int) -> dict[str, Any]:
    """Publish `count` events via the backend and receive + ack each via one subscription."""
    broker = Broker(f"bench-{uuid.uuid4().hex[:8]}", "default", KAFKA_BROKER, None, None)
    backend = KafkaBackend(broker, CONFIG, Settings(kafka_bootstrap_servers=servers))
    await backend.open()
    subscription = await backend.subscribe("knative-trigger-default-bench", ordered=False)
    events = [sample_event(i) for i in range(count)]
    sent_at: dict[str, float] = {}
    latencies: list[float] = []
    progress = tqdm(total=count, desc="backend publish→ack", unit="ev", leave=False)

    async def consume() -> None:
        for _ in range(count):
            received = await subscription.receive()
            latencies.append(time.monotonic() - sent_at[received.event.get_id()])
            await subscription.ack(received)
            progress.update()

    async def publish(chunk: Sequence[CloudEvent]) -> None:
        for item in chunk:
            sent_at[item.get_id()] = time.monotonic()
            await backend.publish(item)

    started = time.monotonic()
    consumer = asyncio.create_task(consume())
    await asyncio.gather(*(publish(events[k::IN_FLIGHT]) for k in range(IN_FLIGHT)))
    published = time.monotonic() - started
    await consumer
    elapsed = time.monotonic() - started
    progress.close()
    await backend.close()
    return {
        "events": count,
        "publishers": IN_FLIGHT,
        "seconds": round(elapsed, 3),
        "events_per_second": round(count / elapsed),
        "publish_events_per_second": round(count / published),
        "publish_to_receive_ms": milliseconds(latencies),
        "topic": topic_name(broker),
    }


# --- 2. kafka-python alone ----------------------------------------------------------------------


def raw_kafka_python(servers: str, count: int) -> dict[str, Any]:
    """kafka-python's produce + consume rate on a topic of the same shape, same record bytes."""
    topic = f"bench-raw-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=servers)
    admin.create_topics(
        {topic: {"num_partitions": 10, "replication_factor": 1}}, wait_for_metadata=True
    )
    admin.close()
    records = [encode_kafka(sample_event(i)) for i in range(count)]
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=servers,
        group_id=f"{topic}-group",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    producer = KafkaProducer(
        bootstrap_servers=servers, acks="all", enable_idempotence=False, linger_ms=LINGER_MS
    )
    producer.partitions_for(topic)
    latencies: list[float] = []
    progress = tqdm(total=count, desc="kafka-python produce→consume", unit="ev", leave=False)

    def consume() -> None:
        received = 0
        while received < count:
            batch = consumer.poll(timeout_ms=100)
            now = time.time()
            for partition_records in batch.values():
                received += len(partition_records)
                latencies.extend(now - r.timestamp / 1000 for r in partition_records)
            if batch:
                consumer.commit()
                progress.update(sum(len(r) for r in batch.values()))

    thread = threading.Thread(target=consume)
    started = time.monotonic()
    thread.start()
    for headers, key, value in records:
        producer.send(topic, value=value, key=key, headers=headers)
    producer.flush()
    published = time.monotonic() - started
    thread.join()
    elapsed = time.monotonic() - started
    progress.close()
    producer.close()
    consumer.close()
    return {
        "events": count,
        "seconds": round(elapsed, 3),
        "events_per_second": round(count / elapsed),
        "produce_events_per_second": round(count / published),
        # Record timestamps have millisecond resolution.
        "produce_to_consume_ms": milliseconds(latencies),
        "topic": topic,
    }


# --- 3. the runtime at a steady rate ------------------------------------------------------------


def _tree_memory_mb(root: int) -> dict[str, float]:
    """RSS and PSS (shared pages divided among their users) of `root` and its descendants."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError, IndexError, ValueError):
            if entry.name.isdigit():
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                parents[int(entry.name)] = int(stat[1])
    tree, grew = {root}, True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= more
        grew = bool(more)
    totals = {"rss_mb": 0.0, "pss_mb": 0.0, "processes": 0.0}
    for pid in tree:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                name, _, value = line.partition(":")
                if name in ("Rss", "Pss"):
                    totals[f"{name.lower()}_mb"] += int(value.split()[0]) / 1024
            totals["processes"] += 1
    return {key: round(value, 1) for key, value in totals.items()}


class PeakMemory:
    """Samples the tree's memory every 0.25 s while entered; keeps the peak."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.peak: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            sample = _tree_memory_mb(self.root)
            for key, value in sample.items():
                self.peak[key] = max(self.peak.get(key, 0.0), value)


def _at_rest(runtime: RuntimeProcess, timeout: float = 60.0) -> dict[str, float]:
    """The tree's memory once every service is back at zero instances."""
    assert runtime.process is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        services = runtime.status().get("services", {})
        if all(not s["pids"] and not s["starting"] for s in services.values()):
            time.sleep(1.0)  # the last instances' exits
            return _tree_memory_mb(runtime.process.pid)
        time.sleep(0.5)
    return {"not_at_zero_after_s": timeout}


def _steps(burst: Callable[..., BurstConfig], broker: str, steps: Sequence[int]) -> dict[str, Any]:
    """15-s steps at rising rates until one is not sustained."""
    sustained: list[dict[str, Any]] = []
    best = 0
    for rate in steps:
        _, _, report = run_burst(
            burst(count=rate * 15, rate=float(rate)), ["bench/bench_kafka.py", broker, "steps"]
        )
        finished = report["throughput"]["finished_per_s"] or 0.0
        ok = (
            report["completed"] == report["created"]
            and not report["errors"]
            and report["lost"] == 0
            and finished >= 0.95 * rate
        )
        sustained.append(
            {"rate": rate, "sustained": ok, "load": list(os.getloadavg())}
            | {key: report[key] for key in ("completed", "failed", "lost", "errors")}
            | {key: report[key] for key in ("throughput", "post_latency_ms", "time_to_final_ms")}
        )
        if not ok:
            break
        best = rate
    return {"step_seconds": 15, "max_rate_sustained_per_s": best, "steps": sustained}


def through_runtime(
    broker: str,
    kafka_server: PrivateServer | None,
    rate: float,
    seconds: float,
    steps: Sequence[int] = (),
) -> dict[str, Any]:
    """`knlocal run` with `broker`, warmed up, then `knlocal burst` at `rate` for `seconds`,
    with the CPU time each process role (Kafka's JVM included, when given) spent on the burst;
    then the sustained-rate steps and the memory at rest and at peak."""
    env = {"BROKER": broker, "STORE": "sqlite"}
    if kafka_server is not None:
        env["KAFKA_BOOTSTRAP_SERVERS"] = kafka_server.url
    with tempfile.TemporaryDirectory(prefix=f"bench-{broker}-") as data:
        runtime = RuntimeProcess(Path(data), env, cwd=ROOT)
        runtime.start()
        try:
            # Scale every function from zero first: cold starts are measured by `make bench`.
            burst = partial(
                BurstConfig,
                url=runtime.ingress,
                admin=runtime.admin,
                concurrency=64,
                settle_timeout=0.0,
                out_dir=RESULTS,
            )
            asyncio.run(Burst(burst(count=20, rate=20.0), progress=False).run())
            assert runtime.process is not None
            servers = {}
            if kafka_server is not None:
                servers["kafka"] = int(kafka_server.pid_file.read_text().strip())
            at_rest = _at_rest(runtime)
            with PeakMemory(runtime.process.pid) as peak:
                with CpuMeter(runtime.process.pid, servers) as meter:
                    json_path, png_path, report = run_burst(
                        burst(count=int(rate * seconds), rate=rate),
                        ["bench/bench_kafka.py", broker],
                    )
                sustained = _steps(burst, broker, steps)
        finally:
            runtime.stop()
    return {
        "broker": broker,
        "report": str(json_path.relative_to(ROOT)),
        "plot": str(png_path.relative_to(ROOT)),
        **{
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
                "time_to_final_measured_by",
            )
        },
        "cpu": meter.result(report["completed"]),
        "sustained": sustained,
        "memory": {"at_rest": at_rest, "peak_in_bursts": peak.peak},
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write its JSON result."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000, help="events in parts 1 and 2")
    parser.add_argument("--rate", type=float, default=100.0, help="users/s in part 3")
    parser.add_argument("--seconds", type=float, default=20.0, help="duration of part 3")
    parser.add_argument(
        "--steps", default="100,150,200,250", help="sustained-test rates, users/s, comma-separated"
    )
    parser.add_argument("--output", type=Path, help="result file (default bench/results/…)")
    args = parser.parse_args(argv)
    result: dict[str, Any] = {
        "benchmark": "kafka",
        "command": " ".join([Path(sys.executable).name, "-m", "bench.bench_kafka", *sys.argv[1:]]),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            **machine_info(os.getloadavg(), (0.0, 0.0, 0.0)),
            "kafka_python": kafka.__version__,
            "kafka": os.environ.get("KAFKA_VERSION", "3.9.2 (tools/kafka.sh default)"),
        },
        "targets": {
            "backend_events_per_second": ">= 5000",
            "backend_to_raw_ratio": ">= 0.6",
            "kafka_sustained_users_per_second": ">= 150",
            "kafka_post_p99_ms": "<= 20 at 100 users/s",
            "kafka_time_to_completed_p99_ms": "<= 250 at 100 users/s",
            "kafka_cpu_ms_per_user": "<= 12",
            "inmemory_sustained_users_per_second": ">= 250",
            "inmemory_cpu_ms_per_user": "<= 8",
            "runtime_at_rest_rss_mb": "<= 300",
        },
    }
    kafka_server = PrivateServer("kafka")
    print(f"starting a Kafka of the benchmark's own on {kafka_server.url}…", flush=True)
    kafka_server.start()
    try:
        servers = kafka_server.url
        result["backend"] = asyncio.run(through_backend(servers, args.events))
        result["raw_kafka_python"] = raw_kafka_python(servers, args.events)
        result["backend_to_raw_ratio"] = round(
            result["backend"]["events_per_second"]
            / result["raw_kafka_python"]["events_per_second"],
            3,
        )
        steps = [int(step) for step in args.steps.split(",") if step]
        result["runtime_kafka"] = through_runtime(
            "kafka", kafka_server, args.rate, args.seconds, steps
        )
        result["runtime_inmemory_baseline"] = through_runtime(
            "inmemory", kafka_server, args.rate, args.seconds, steps
        )
    finally:
        kafka_server.stop()
    result["machine"]["loadavg_after"] = list(os.getloadavg())
    output = (
        args.output or ROOT / "bench" / "results" / f"kafka-{time.strftime('%Y-%m-%dT%H%M%S')}.json"
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    summary = {
        "backend events/s": result["backend"]["events_per_second"],
        "kafka-python events/s": result["raw_kafka_python"]["events_per_second"],
        "ratio": result["backend_to_raw_ratio"],
        "kafka: time to completed (ms)": result["runtime_kafka"]["time_to_final_ms"],
        "inmemory: time to completed (ms)": result["runtime_inmemory_baseline"]["time_to_final_ms"],
        "kafka: CPU ms per user": result["runtime_kafka"]["cpu"]["cpu_ms_per_user"],
        "inmemory: CPU ms per user": result["runtime_inmemory_baseline"]["cpu"]["cpu_ms_per_user"],
        "kafka: sustained users/s": result["runtime_kafka"]["sustained"][
            "max_rate_sustained_per_s"
        ],
        "inmemory: sustained users/s": result["runtime_inmemory_baseline"]["sustained"][
            "max_rate_sustained_per_s"
        ],
        "kafka: memory": result["runtime_kafka"]["memory"],
    }
    print(json.dumps(summary, indent=2))
    print(f"written to {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""One user creation, traced end to end, found in a real Zipkin (issue 12).

`knlocal run` exports to the Zipkin of `make zipkin` (OTEL_TRACES_EXPORTER=zipkin); a client
sends `POST /users` with its own `traceparent`; the test then reads Zipkin's API and checks
that one trace holds every hop: the ingress, the activator, the six functions and their store
calls, every broker publish, every Trigger's process/filter span and every delivery attempt,
each span's parent in the same trace. With BROKER=kafka the same, and the events' records carry
the trace as their `ce_traceparent` header (CloudEvents' Kafka binding of the Distributed
Tracing extension). A fault plan that fails every delivery to user-approve shows each retry and
the dead-letter delivery as their own spans, with status and backoff.

Kafka: a private one (tools/kafka.sh on free ports) as the other Kafka runtime tests use, since
the Broker's topic and the Triggers' consumer groups have fixed names that another runtime on
the shared Kafka would share.
"""

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer

from knuser_tools.runtime import KnuserRuntime as RuntimeProcess
from tests.servers import require_server

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
ZIPKIN = os.environ.get("ZIPKIN_URL", "http://127.0.0.1:9411")
FUNCTIONS = {
    "operation-create",
    "user-create",
    "user-approve",
    "user-create-response",
    "operation-update",
}
#: The events one successful creation publishes on the Broker, in order.
FLOW = [
    "dev.knuser.user.creation.requested.v1",
    "dev.knuser.user.created.v1",
    "dev.knuser.user.approval.decided.v1",
    "dev.knuser.operation.completed.v1",
]
WAIT_SECONDS = 60.0
TRACING_ENV = {"OTEL_TRACES_EXPORTER": "zipkin", "OTEL_BSP_SCHEDULE_DELAY": "100"}


def _get(url: str) -> Any:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=10) as response:
        return json.load(response)


@pytest.fixture(scope="module")
def zipkin() -> str:
    """The Zipkin of `make zipkin`."""
    try:
        _get(f"{ZIPKIN}/api/v2/services")
        reachable = True
    except OSError:
        reachable = False
    require_server(f"Zipkin at {ZIPKIN}", reachable, "run `make zipkin`")
    return ZIPKIN


def _runtime(data_dir: Path, env: dict[str, str]) -> RuntimeProcess:
    runtime = RuntimeProcess(data_dir, {"STORE": "sqlite", **TRACING_ENV, **env})
    runtime.start()
    return runtime


def _post_user(runtime: RuntimeProcess, name: str, traceparent: str) -> tuple[dict[str, str], Any]:
    request = urllib.request.Request(
        f"{runtime.ingress}/users",
        data=json.dumps({"name": name}).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "traceparent": traceparent},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 202
        return dict(response.headers), json.loads(response.read())


def _final(runtime: RuntimeProcess, operation_id: str) -> Any:
    deadline = time.monotonic() + WAIT_SECONDS
    while (operation := runtime.operation(operation_id))["status"] == "pending":
        assert time.monotonic() < deadline, f"operation {operation_id} still pending"
        time.sleep(0.1)
    return operation


def _trace(trace_id: str, complete: Any) -> list[dict[str, Any]]:
    """The trace's spans once `complete(spans)` holds (spans arrive in batches), bounded."""
    deadline = time.monotonic() + WAIT_SECONDS
    spans: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        try:
            spans = _get(f"{ZIPKIN}/api/v2/trace/{trace_id}")
        except urllib.error.HTTPError as exc:
            assert exc.code == 404, exc
        if spans and complete(spans):
            return spans
        time.sleep(0.5)
    services = sorted({s["localEndpoint"]["serviceName"] for s in spans})
    pytest.fail(
        f"trace {trace_id} incomplete after {WAIT_SECONDS} s: {len(spans)} spans of {services}"
    )


def _new_traceparent() -> tuple[str, str, str]:
    trace_id, parent = os.urandom(16).hex(), os.urandom(8).hex()
    return f"00-{trace_id}-{parent}-01", trace_id, parent


def _service(span: dict[str, Any]) -> str:
    service: str = span["localEndpoint"]["serviceName"]
    return service


def _parent(spans: dict[str, dict[str, Any]], span: dict[str, Any]) -> dict[str, Any]:
    return spans[span["parentId"]]


def _has_every_hop(spans: list[dict[str, Any]]) -> bool:
    servers = {_service(s) for s in spans if s.get("kind") == "SERVER"}
    published = [s for s in spans if s["name"] == "publish default"]
    # Spans come in batches, one per process and service: the parents and the holds too.
    ids = {s["id"] for s in spans}
    parents = all(s.get("parentId") in ids for s in spans if _service(s) in FUNCTIONS)
    held = any(s["name"] == "hold (scale from zero)" for s in spans)
    return servers >= FUNCTIONS and len(published) >= len(FLOW) and parents and held


def _assert_activated(by_id: dict[str, dict[str, Any]], server: dict[str, Any]) -> None:
    """`server` was held by the activator (its parent: the activator span, with the hold and
    the cold start), or found an instance ready (its parent: a span with the activator event)."""
    parent = _parent(by_id, server)
    service = _service(server)
    if _service(parent) == "activator":
        assert parent["name"] == f"activator {service}"
        children = [s for s in by_id.values() if s.get("parentId") == parent["id"]]
        (hold,) = [s for s in children if _service(s) == "activator"]
        assert hold["name"] == "hold (scale from zero)"
        events = [json.loads(a["value"]) for a in parent["annotations"]]
        assert [list(e) for e in events] == [["cold start"]]
        assert float(parent["tags"]["knative.activator.held_ms"]) >= 0
    else:
        events = [json.loads(a["value"]) for a in parent.get("annotations", [])]
        assert {f"activator {service}": {}} in events, parent


def check_flow(spans: list[dict[str, Any]], client_span: str, system: str) -> None:
    """One connected trace: the client's span → ingress → … → operation-update."""
    by_id = {s["id"]: s for s in spans}
    roots = [s for s in spans if s.get("parentId") not in by_id]
    assert [(r["parentId"], _service(r)) for r in roots] == [(client_span, "ingress")]
    assert by_id[roots[0]["id"]]["tags"]["http.response.status_code"] == "202"

    # Every function's SERVER span went through the activator of the same service.
    for span in (s for s in spans if s.get("kind") == "SERVER" and _service(s) in FUNCTIONS):
        _assert_activated(by_id, span)
    # The first request to each service started from zero: held, and the cold start with it.
    assert any(s["name"] == "hold (scale from zero)" for s in spans)
    # The store calls of the functions that have a store.
    store_calls = {_service(s) for s in spans if "db.collection.name" in s.get("tags", {})}
    assert store_calls == FUNCTIONS - {"user-approve"}

    # Each broker hop: publish (PRODUCER) → one process (CONSUMER) per Trigger → filter.
    published = sorted(
        (s for s in spans if s["name"] == "publish default"), key=lambda s: s["timestamp"]
    )
    assert [p["tags"]["cloudevents.event_type"] for p in published] == FLOW
    assert all(p["tags"]["messaging.system"] == system for p in published)
    # Only the Trigger whose filter passes the event processes it (triggers/: one per type).
    subscriber = dict(
        zip(FLOW, ["user-create", "user-approve", "user-create-response"], strict=False)
    )
    subscriber[FLOW[3]] = "operation-update"
    for publish in published:
        (consumer,) = [s for s in spans if s.get("parentId") == publish["id"]]
        trigger = f"default/{subscriber[publish['tags']['cloudevents.event_type']]}"
        assert (_service(consumer), consumer.get("kind")) == ("broker-filter", "CONSUMER")
        assert consumer["tags"]["messaging.consumer.group.name"] == trigger
        # The filter: an event of the span (Zipkin's annotation, the exporter's JSON of it).
        filtered = [json.loads(a["value"]) for a in consumer["annotations"]]
        assert filtered == [{f"filter {trigger}: pass": {}}]
        children = [s for s in spans if s.get("parentId") == consumer["id"]]
        # The subscriber's attempt and, but for operation-update, the reply's to the Broker.
        attempts = [c["tags"]["url.full"] for c in children if c["name"] == "post"]
        assert len(attempts) == (1 if trigger.endswith("operation-update") else 2), children
    # Every event after the first was published by a reply attempt of the previous hop.
    for publish in published[1:]:
        attempt = _parent(by_id, publish)
        assert attempt["name"] == "post" and attempt["tags"]["url.full"].endswith(
            "/default/default"
        )
        assert _parent(by_id, attempt)["name"] == "process default"
    # Events carry the trace on the broker: the same id as the client's.
    assert {s["traceId"] for s in spans} == {spans[0]["traceId"]}


@pytest.mark.parametrize("broker", ["inmemory", pytest.param("kafka", marks=pytest.mark.kafka)])
def test_one_user_creation_is_one_trace_across_every_function_and_broker_hop(
    broker: str, zipkin: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    env = {"BROKER": broker}
    if broker == "kafka":
        env["KAFKA_BOOTSTRAP_SERVERS"] = request.getfixturevalue("private_kafka").url
    runtime = _runtime(tmp_path / "data", env)
    try:
        traceparent, trace_id, client_span = _new_traceparent()
        headers, body = _post_user(runtime, "Ada Lovelace", traceparent)
        # The client's trace is continued (W3C Trace Context) and returned with the operation.
        assert headers["traceparent"].split("-")[1] == trace_id
        assert body["traceId"] == trace_id
        assert _final(runtime, body["id"])["status"] == "completed"
        assert runtime.operation(body["id"])["traceId"] == trace_id
        spans = _trace(trace_id, _has_every_hop)
        check_flow(spans, client_span, "memory" if broker == "inmemory" else "kafka")

        # `knlocal trace` prints the same trace as a waterfall.
        shown = subprocess.run(
            [sys.executable, "-m", "knlocal.cli", "trace", body["id"], "--url", runtime.ingress],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        assert all(f" {service} " in shown for service in FUNCTIONS | {"ingress", "activator"})
        assert f"{len(spans)} spans" in shown
        if broker == "kafka":
            check_kafka_records(env["KAFKA_BOOTSTRAP_SERVERS"], trace_id)
    finally:
        runtime.stop()


def check_kafka_records(servers: str, trace_id: str) -> None:
    """The flow's records carry the trace as `ce_traceparent` (Kafka binary mode)."""
    consumer = KafkaConsumer(
        "knative-broker-default-default",
        bootstrap_servers=servers,
        auto_offset_reset="earliest",
        consumer_timeout_ms=5000,
        group_id=None,
    )
    try:
        traced = {}
        for record in consumer:
            headers = {k: v.decode() for k, v in record.headers}
            if headers.get("ce_traceparent", "").split("-")[1:2] == [trace_id]:
                traced[headers["ce_type"]] = headers["ce_traceparent"]
    finally:
        consumer.close()
    assert set(traced) == set(FLOW), traced


def test_retries_and_the_dead_letter_delivery_are_spans_of_their_own(
    zipkin: str, tmp_path: Path
) -> None:
    """Every delivery to user-approve answers 503 (a fault plan): 1 + 5 retries, then the DLS.

    triggers/user-approve.yaml: retry 5, exponential from PT0.2S; the MT broker waits
    0.2·2^(k-1) s before retry k (knative-semantics.md §2.7), and dead-letters the original
    event to operation-update, which fails the operation (§2.8).
    """
    plan = tmp_path / "faults.yaml"
    plan.write_text(
        "seed: 1\ntriggers:\n  default/user-approve: [{kind: fail, status: 503, every: 1}]\n"
    )
    runtime = _runtime(tmp_path / "data", {"BROKER": "inmemory", "FAULTS": str(plan)})
    try:
        traceparent, trace_id, _ = _new_traceparent()
        _, body = _post_user(runtime, "Ada Lovelace", traceparent)
        assert _final(runtime, body["id"])["status"] == "failed"

        def dead_lettered(spans: list[dict[str, Any]]) -> bool:
            names = [s["name"] for s in spans]
            ids = {s["id"] for s in spans}
            return "dead-letter default/user-approve" in names and any(
                _service(s) == "operation-update"
                and s.get("kind") == "SERVER"
                and s.get("parentId") in ids
                for s in spans
            )

        spans = _trace(trace_id, dead_lettered)
        by_id = {s["id"]: s for s in spans}
        dead = next(s for s in spans if s["name"] == "dead-letter default/user-approve")
        process = _parent(by_id, dead)
        assert process["tags"]["messaging.consumer.group.name"] == "default/user-approve"
        attempts = sorted(
            (s for s in spans if s.get("parentId") == process["id"] and s["name"] == "post"),
            key=lambda s: s["timestamp"],
        )
        tags = [s["tags"] for s in attempts]
        assert [t["knative.delivery.attempt"] for t in tags] == ["1", "2", "3", "4", "5", "6"]
        assert [t.get("http.request.resend_count") for t in tags] == [None, "1", "2", "3", "4", "5"]
        assert [t.get("knative.delivery.backoff_ms") for t in tags[1:]] == [
            "200.0",
            "400.0",
            "800.0",
            "1600.0",
            "3200.0",
        ]
        assert all(t["http.response.status_code"] == "503" and "error" in t for t in tags)
        assert [t["knative.delivery.retriable"] for t in tags] == ["true"] * 5 + ["false"]
        # The dead-letter delivery: its own attempt, answered by operation-update.
        (dls_attempt,) = [s for s in spans if s.get("parentId") == dead["id"]]
        assert dls_attempt["tags"]["http.response.status_code"] == "202"
        assert dead["tags"]["knative.error.code"] == "503"
        # Its request, held or not by operation-update's activator.
        below = {dls_attempt["id"]} | {
            s["id"] for s in spans if s.get("parentId") == dls_attempt["id"]
        }
        (server,) = [s for s in spans if s.get("kind") == "SERVER" and s.get("parentId") in below]
        assert _service(server) == "operation-update"
        _assert_activated(by_id, server)
    finally:
        runtime.stop()


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    return None


def test_zipkin_ui_shows_the_trace_screenshot(zipkin: str, tmp_path: Path) -> None:
    """The README's pictures, taken from the running system: Zipkin's UI for one operation, in
    headless Chromium (Debian's `chromium`), and `knlocal trace`'s waterfall of the same trace.

    Written to tmp_path; with KNUSER_UPDATE_PICTURES=1 to docs/tracing/ (what the README shows).
    """
    browser = _chromium()
    require_server("Chromium (Debian's chromium)", browser is not None, "apt-get install chromium")
    assert browser is not None
    runtime = _runtime(tmp_path / "data", {"BROKER": "inmemory"})
    try:
        traceparent, trace_id, _ = _new_traceparent()
        _, body = _post_user(runtime, "Ada Lovelace", traceparent)
        assert _final(runtime, body["id"])["status"] == "completed"
        spans = _trace(trace_id, _has_every_hop)
        waterfall = subprocess.run(
            [sys.executable, "-m", "knlocal.cli", "trace", body["id"], "--url", runtime.ingress],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
    finally:
        runtime.stop()
    out = ROOT / "docs" / "tracing" if os.environ.get("KNUSER_UPDATE_PICTURES") else tmp_path
    out.mkdir(parents=True, exist_ok=True)
    png = out / "zipkin-trace.png"
    png.unlink(missing_ok=True)
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1600,1500",
            "--virtual-time-budget=15000",
            f"--screenshot={png}",
            f"{zipkin}/zipkin/traces/{trace_id}",
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 20_000  # a rendered page, not a blank one
    (out / "waterfall.txt").write_text(f"$ knlocal trace {body['id']}\n{waterfall}")
    assert f"{len(spans)} spans" in waterfall

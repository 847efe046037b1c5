"""knlocal.status: the typed snapshot and the admin API's `/status` JSON it reads and writes.

The JSON's shape is what `knlocal status`, `knlocal burst` and the tests read: these tests pin
its keys, so a change to one side shows here.
"""

import json

from knlocal.cli import render
from knlocal.observability import metric_families
from knlocal.status import ServiceStatus, StatusSnapshot, TriggerStatus

SERVICE = ServiceStatus(
    revision="user-create-00001",
    ready=2,
    starting=1,
    desired=3,
    in_flight=4,
    requests_per_second=12.5,
    requests=100,
    cold_starts=1,
    cold_start_ms_p50=80.0,
    cold_start_ms_p99=90.0,
    cold_start_ms_last=85.0,
    panic=True,
    responses_503=0,
    responses_504=1,
    pids=(101, 102),
)
TRIGGER = TriggerStatus(
    received=10,
    filtered_out=2,
    delivered=6,
    retried=3,
    dead_lettered=1,
    dropped=0,
    in_flight=1,
    backlog=None,
)
SNAPSHOT = StatusSnapshot(
    brokers={"default/default": "http://127.0.0.1:8081/default/default"},
    broker_backend="inmemory",
    store="sqlite",
    services={"user-create": SERVICE},
    triggers={"default/user-create": TRIGGER},
    accepted={"default/default": 10},
)


def test_the_json_keeps_the_keys_the_cli_and_burst_read() -> None:
    body = json.loads(json.dumps(SNAPSHOT.to_json()))
    assert body["brokers"] == {"default/default": "http://127.0.0.1:8081/default/default"}
    assert (body["broker_backend"], body["store"]) == ("inmemory", "sqlite")
    assert set(body["services"]["user-create"]) == {
        "revision", "ready", "starting", "desired", "in_flight", "requests_per_second",
        "requests", "cold_starts", "cold_start_ms_p50", "cold_start_ms_p99",
        "cold_start_ms_last", "panic", "responses_503", "responses_504", "pids",
    }  # fmt: skip
    assert body["services"]["user-create"]["pids"] == [101, 102]
    assert body["triggers"]["default/user-create"]["backlog"] is None
    # Without a fault plan there is no `faults` key, as before.
    assert "faults" not in body


def test_the_json_reads_back_into_the_same_snapshot() -> None:
    faulty = StatusSnapshot(**{**vars(SNAPSHOT), "faults": {"default/t": {"drop": 2}}})
    for snapshot in (SNAPSHOT, faulty):
        body = json.loads(json.dumps(snapshot.to_json()))
        assert StatusSnapshot.from_json(body) == snapshot


def test_knlocal_status_renders_the_typed_snapshot() -> None:
    faulty = StatusSnapshot(**{**vars(SNAPSHOT), "faults": {"default/t": {"drop": 2}}})
    lines = render(faulty).splitlines()
    assert lines[0] == "broker backend: inmemory   store: sqlite"
    service_row = next(line for line in lines if line.startswith("user-create "))
    assert service_row.split() == [
        "user-create", "2", "3", "4", "12.5", "100", "1", "80.0", "ms", "yes", "0", "1",
    ]  # fmt: skip
    trigger_row = next(line for line in lines if line.startswith("default/user-create"))
    assert trigger_row.split()[1:] == ["10", "6", "3", "1", "0", "1", "-"]
    assert lines[-1].split() == ["default/t", "drop", "2"]


def test_metrics_export_the_same_snapshot() -> None:
    """`/metrics` reads the typed snapshot: gauges, counters and cold-start quantiles."""
    faulty = StatusSnapshot(**{**vars(SNAPSHOT), "faults": {"default/t": {"drop": 2}}})
    samples = {
        (sample.name, tuple(sorted(sample.labels.values()))): sample.value
        for family in metric_families(faulty)
        for sample in family.samples
    }
    assert samples[("knlocal_service_ready", ("user-create",))] == 2
    assert samples[("knlocal_service_panic", ("user-create",))] == 1
    assert samples[("knlocal_service_cold_start_seconds", ("0.99", "user-create"))] == 0.09
    assert samples[("knlocal_trigger_dead_lettered_total", ("default/user-create",))] == 1
    assert ("knlocal_trigger_backlog", ("default/user-create",)) not in samples
    assert samples[("knlocal_faults_injected_total", ("default/t", "drop"))] == 2

"""End to end: a burst from `knlocal burst` scales the services from zero to several and back.

The runtime is started as `make run` starts it (in-memory broker, SQLite, local profile, whose
short windows let services return to zero in seconds), on free loopback ports with its own data
folder. The burst sends more than one instance per service can take, so Knative's KPA must scale
out; the test reads the burst's own JSON report and checks its PNG.
"""

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from knlocal.process import DEFAULT_SWITCHES
from knuser_tools.burst import BurstConfig, run_burst
from knuser_tools.runtime import PROJECT, KnuserRuntime

pytestmark = pytest.mark.e2e


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A `knlocal run` on free ports; yields its ingress and admin addresses."""
    with KnuserRuntime(tmp_path / "data", DEFAULT_SWITCHES) as process:
        yield process.ingress, process.admin


def test_a_burst_scales_services_from_zero_to_several_and_back(
    runtime: tuple[str, str], tmp_path: Path
) -> None:
    """Every operation ends, none is lost, and the services go 0 → several → 0."""
    ingress, admin = runtime
    config = BurstConfig(
        count=400,
        rate=200.0,
        concurrency=64,
        url=ingress,
        admin=admin,
        settle_timeout=20.0,
        out_dir=tmp_path / "results",
    )
    json_path, png_path, report = run_burst(config, ["test_burst"], progress=False)

    assert json.loads(json_path.read_text())["created"] == 400
    assert png_path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert report["accepted"] == 400
    assert report["completed"] + report["failed"] == 400
    assert report["completed"] == 400  # every burst name passes the approval rules
    assert report["lost"] == 0
    assert report["errors"] == {}
    services = report["services"]
    first, last = report["samples"][0], report["samples"][-1]
    assert all(count == 0 for count in first["ready"].values()), first
    assert all(count == 0 for count in last["ready"].values()), last
    assert report["back_to_zero_s"] is not None
    # Scaled out: at least one service ran several instances at once, and every service that
    # handled the flow started from zero at least once.
    assert max(s["peak_instances"] for s in services.values()) >= 3, services
    for name in ("operation-create", "user-create", "user-approve", "operation-update"):
        assert services[name]["cold_starts"] >= 1, (name, services[name])
    assert sum(s["responses_503"] + s["responses_504"] for s in services.values()) == 0


#: Duplicates, drops and 503s together, each on every n-th delivery: the retries (5 per Trigger)
#: always outlast them, so every operation must end within the burst's follow timeout.
PLAN = """
seed: 1
triggers:
  default/user-create:
    - {kind: duplicate, every: 2}
  default/user-approve:
    - {kind: drop, every: 3, wait: 0.2}
  default/user-create-response:
    - {kind: fail, status: 503, every: 3}
brokers:
  default/default:
    - {kind: duplicate, every: 4}
"""


def test_burst_under_a_fault_plan_starts_its_own_runtime_and_checks_its_stores(
    tmp_path: Path,
) -> None:
    """`knlocal burst --faults FILE` (issue 14): its own runtime, every claim checked."""
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN)
    result = subprocess.run(
        [
            *(sys.executable, "-m", "knlocal.cli", "burst", "--faults", str(plan)),
            *("-n", "12", "--rate", "12", "--settle", "0", "--no-progress", "--out", str(tmp_path)),
        ],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "12/12 accepted, 12 completed, 0 failed, 0 lost" in result.stdout, result.stdout
    for injected in ("user-create duplicate", "user-approve drop", "user-create-response fail"):
        assert injected in result.stdout, result.stdout
    assert "— all zero" in result.stdout, result.stdout


def test_burst_with_a_missing_fault_plan_says_so(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "knlocal.cli", "burst", "--faults", str(tmp_path / "none.yaml")],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "no fault plan at" in result.stderr

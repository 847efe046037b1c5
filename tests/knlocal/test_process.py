"""knlocal/process.py: `knlocal run` as a child process, ready once its admin API answers."""

import socket
from pathlib import Path

import pytest

from knlocal.errors import RuntimeStartError
from knlocal.process import (
    DEFAULT_SWITCHES,
    EPHEMERAL_RANGE,
    LOWEST_PORT,
    RuntimeProcess,
    descendants,
    free_port,
)

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def test_ready_is_an_answering_admin_api_and_stop_is_a_clean_ctrl_c(tmp_path: Path) -> None:
    runtime = RuntimeProcess(tmp_path / "data", DEFAULT_SWITCHES, cwd=ROOT)
    with runtime:
        assert runtime.running
        assert set(runtime.status()) >= {"services", "triggers"}
        status, body = runtime.request(f"{runtime.ingress}/nothing-here")
        assert status == 404 and "error" in body
        assert "knlocal: ready" in runtime.log_text()
    assert not runtime.running
    assert runtime.process is not None and runtime.process.returncode == 0
    assert runtime.stop() is None  # stopping again is nothing to do


def test_kill_leaves_no_process_and_a_restart_serves_on_the_same_ports(tmp_path: Path) -> None:
    runtime = RuntimeProcess(tmp_path / "data", DEFAULT_SWITCHES, cwd=ROOT)
    runtime.start()
    try:
        # Fire a PingSource: its sink's Service starts an instance, a grandchild of the runtime.
        status, _ = runtime.fire_ping_source("default", "operation-sweep")
        assert status == 200
        assert runtime.process is not None
        victims = [runtime.process.pid, *descendants(runtime.process.pid)]
        assert len(victims) >= 3, victims  # the runtime, the zygote, an instance
        admin = runtime.admin
        runtime.kill()
        assert not [pid for pid in victims if Path(f"/proc/{pid}").exists()]
        runtime.start()
        assert runtime.admin == admin
        assert "services" in runtime.status()
    finally:
        runtime.stop()


def test_a_runtime_that_cannot_start_raises_with_its_output(tmp_path: Path) -> None:
    """Manifests without the application's pyproject.toml: no WSGI app to run, said why."""
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    for folder in ("knative", "brokers", "triggers", "sources"):
        (manifests / folder).symlink_to(ROOT / folder)
    runtime = RuntimeProcess(tmp_path / "data", DEFAULT_SWITCHES, cwd=manifests)
    with pytest.raises(RuntimeStartError, match="no WSGI app to run") as raised:
        runtime.start()
    assert "did not get ready" in str(raised.value)
    assert not runtime.running


def test_a_free_port_is_bindable_and_below_the_ephemeral_range() -> None:
    # Above it, an outgoing connection could take the port before the runtime binds it.
    low = int(EPHEMERAL_RANGE.read_text().split()[0])
    for _ in range(20):
        port = free_port()
        assert LOWEST_PORT <= port < low
        with socket.socket() as server:
            server.bind(("127.0.0.1", port))

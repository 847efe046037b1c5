"""`knlocal watch`: pods per Knative Service and revision, from the Kubernetes API's own JSON.

fixtures/ holds a PodList, a Knative ServiceList and a PodAutoscalerList in the shapes the API
returns during a burst (each item is validated below against the models generated from the
Kubernetes and Knative schemas): ready pods, a pod still creating its containers, one running
but not yet ready, one unschedulable, terminating pods of the current and of an old revision, and
an evicted pod. The command itself runs against a stand-in API server on loopback that serves
those recordings, so the real kubernetes client, kubeconfig loading and error paths are used.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from knlocal.watch import HEADER, RevisionRow, pod_state, render, rows
from tests.deploy.api_models import validate

FIXTURES = Path(__file__).parent / "fixtures"
ROOT = Path(__file__).resolve().parents[2]


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


PODS = _load("pods.json")
SERVICES = _load("services.json")
AUTOSCALERS = _load("podautoscalers.json")


def test_fixtures_have_the_api_shapes() -> None:
    assert (PODS["apiVersion"], PODS["kind"]) == ("v1", "PodList")
    assert SERVICES["kind"] == "ServiceList"
    assert AUTOSCALERS["kind"] == "PodAutoscalerList"
    # A list's items carry no kind of their own in the core API; the list says what they are.
    for pod in PODS["items"]:
        validate({"apiVersion": "v1", "kind": "Pod", **pod})
    for obj in SERVICES["items"] + AUTOSCALERS["items"]:
        validate(obj)


# The fixtures' pods by name suffix (the generated part of a pod name), and their state.
POD_STATES = [
    ("4xkqp", "ready"),  # Running, Ready True
    ("9bn2z", "ready"),  # Running, Ready True, user-container restarted once
    ("t7wmc", "pending"),  # Pending: ContainerCreating
    ("h2lrd", "terminating"),  # Running but deletionTimestamp set: draining after scale-down
    ("c8vfs", "pending"),  # Running, queue-proxy not ready yet
    ("p5gjx", "ready"),
    ("m3r6t", "terminating"),  # the old revision's pod after a rollout, still Ready
    ("z4q8n", "pending"),  # Pending: Unschedulable, no container statuses
    ("w2k9d", "finished"),  # Failed: Evicted
]


@pytest.mark.parametrize(("suffix", "state"), POD_STATES)
def test_pod_state(suffix: str, state: str) -> None:
    (pod,) = [p for p in PODS["items"] if p["metadata"]["name"].endswith(f"-{suffix}")]
    assert pod_state(pod) == state


def test_rows_group_pods_by_service_and_revision() -> None:
    table = rows(PODS["items"], SERVICES["items"], AUTOSCALERS["items"])
    assert [
        (r.service, r.revision, r.desired, r.ready, r.pending, r.terminating, r.restarts)
        for r in table
    ] == [
        # An old revision after a rollout: its autoscaler wants 0, its pod drains.
        ("operation-create", "operation-create-00001", 0, 0, 0, 1, 0),
        ("operation-create", "operation-create-00002", 1, 1, 0, 0, 0),
        # At zero: no live pod (the evicted one does not count), the latest revision shows.
        ("operation-get", "operation-get-00001", 0, 0, 0, 0, 0),
        ("operation-update", "operation-update-00001", 0, 0, 0, 0, 0),
        # Mid-burst: 3 wanted, 2 ready, 1 creating; one from an earlier scale-down draining.
        ("user-approve", "user-approve-00001", 3, 2, 1, 1, 1),
        ("user-create", "user-create-00001", 1, 0, 1, 0, 0),
        ("user-create-response", "user-create-response-00001", 1, 0, 1, 0, 0),
    ]
    waiting = {r.service: dict(r.waiting) for r in table if r.waiting}
    assert waiting == {
        "user-approve": {"ContainerCreating": 1},
        "user-create-response": {"Unschedulable": 1},
    }


def test_rows_without_services_or_autoscalers_come_from_pods_alone() -> None:
    table = rows(PODS["items"])
    assert {r.service for r in table} == {
        "operation-create",
        "user-approve",
        "user-create",
        "user-create-response",
    }
    assert all(r.desired is None for r in table)
    assert table[0].cells()[2] == "-"


def test_pods_without_knative_labels_are_ignored() -> None:
    pod = json.loads(json.dumps(PODS["items"][0]))
    pod["metadata"]["labels"] = {"app": "kafka"}
    assert rows([pod]) == []


def test_render_is_the_status_table_look() -> None:
    table = rows(PODS["items"], SERVICES["items"], AUTOSCALERS["items"])
    lines = render("cluster https://10.0.0.1:6443   namespace default", table).splitlines()
    assert lines[0].startswith("cluster https://10.0.0.1:6443   namespace default")
    assert lines[1] == ""
    assert lines[2].split() == list(HEADER)
    assert len(lines) == 3 + len(table)
    # Aligned columns, two spaces apart, as knlocal.tables.table lays out `knlocal status`.
    column = lines[2].index("READY")
    for line, row in zip(lines[3:], table, strict=True):
        assert line.split()[:2] == [row.service, row.revision]
        assert line[column:].split()[0] == str(row.ready)
    assert "ContainerCreating" in lines[3 + 4]


def test_render_counts_a_waiting_reason_once_per_pod() -> None:
    row = RevisionRow("s", "s-00001", pending=3)
    row.waiting.update(["ImagePullBackOff", "ImagePullBackOff", "ContainerCreating"])
    assert row.cells()[-1] == "ImagePullBackOff (2), ContainerCreating"


def test_render_says_when_there_is_nothing() -> None:
    assert "no Knative Services here" in render("cluster x", [])


# --- the command, with the real kubernetes client ---------------------------------------------


def _knlocal(kubeconfig: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("KUBERNETES_SERVICE")  # never the in-cluster account of a CI pod
    }
    env.update(KUBECONFIG=str(kubeconfig), HOME=str(kubeconfig.parent))
    return subprocess.run(
        [sys.executable, "-m", "knlocal.cli", "watch", "--once", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_without_a_kubeconfig_it_says_a_cluster_is_needed(tmp_path: Path) -> None:
    result = _knlocal(tmp_path / "no-such-kubeconfig")
    assert result.returncode == 2
    assert result.stderr.startswith("knlocal: no kubeconfig found: ")
    assert "this command needs a Knative cluster" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


class FakeApiServer(ThreadingHTTPServer):
    """Kubernetes' API for the three lists watch reads, answering with the recordings."""

    #: Status code per resource, to play a cluster without Knative or with RBAC limits.
    statuses: dict[str, int]
    requests: list[tuple[str, dict[str, list[str]]]]


#: The API paths watch reads in namespace default, with the resource's name and its recording.
ROUTES = {
    "/api/v1/namespaces/default/pods": ("pods", PODS),
    "/apis/serving.knative.dev/v1/namespaces/default/services": ("services", SERVICES),
    "/apis/autoscaling.internal.knative.dev/v1alpha1/namespaces/default/podautoscalers": (
        "podautoscalers",
        AUTOSCALERS,
    ),
}


class _Handler(BaseHTTPRequestHandler):
    server: FakeApiServer

    def do_GET(self) -> None:
        url = urlparse(self.path)
        self.server.requests.append((url.path, parse_qs(url.query)))
        name, body = ROUTES.get(url.path, ("", {}))
        status = self.server.statuses.get(name, 200) if name else 404
        payload = body if status == 200 else {"kind": "Status", "code": status}
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    server = FakeApiServer(("127.0.0.1", 0), _Handler)
    server.statuses, server.requests = {}, []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _kubeconfig(tmp_path: Path, server: str) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "test", "cluster": {"server": server}}],
                "users": [{"name": "test", "user": {"token": "test-token"}}],
                "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
                "current-context": "test",
            }
        )
    )
    return path


def test_watch_once_prints_the_table_from_the_cluster(api: FakeApiServer, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{api.server_address[1]}"
    result = _knlocal(_kubeconfig(tmp_path, url))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"cluster {url}   namespace default")
    assert lines[2].split() == list(HEADER)
    assert lines[7].split()[:8] == [
        "user-approve",
        "user-approve-00001",
        "3",
        "2",
        "1",
        "1",
        "1",
        "ContainerCreating",
    ]
    # Only Knative's pods are asked for.
    pod_queries = [q for path, q in api.requests if path.endswith("/pods")]
    assert pod_queries == [{"labelSelector": ["serving.knative.dev/service"]}]


def test_without_access_to_autoscalers_desired_is_unknown(
    api: FakeApiServer, tmp_path: Path
) -> None:
    api.statuses["podautoscalers"] = 403
    result = _knlocal(_kubeconfig(tmp_path, f"http://127.0.0.1:{api.server_address[1]}"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[7].split()[2] == "-"


def test_a_cluster_without_knative_serving_is_named(api: FakeApiServer, tmp_path: Path) -> None:
    api.statuses["services"] = 404
    result = _knlocal(_kubeconfig(tmp_path, f"http://127.0.0.1:{api.server_address[1]}"))
    assert result.returncode == 2
    assert "has no Knative Serving" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unreachable_cluster_is_named(tmp_path: Path) -> None:
    server = FakeApiServer(("127.0.0.1", 0), _Handler)
    port = server.server_address[1]
    server.server_close()  # nothing listens there any more
    result = _knlocal(_kubeconfig(tmp_path, f"http://127.0.0.1:{port}"), timeout=30)
    assert result.returncode == 2
    assert f"cannot reach the Kubernetes API at http://127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_watch_refreshes_survives_a_failed_refresh_and_stops_on_ctrl_c(
    api: FakeApiServer, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_SERVICE")}
    env["KUBECONFIG"] = str(_kubeconfig(tmp_path, f"http://127.0.0.1:{api.server_address[1]}"))
    with subprocess.Popen(
        [sys.executable, "-m", "knlocal.cli", "watch", "--interval", "0.2"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        output: list[str] = []
        assert process.stdout and process.stderr
        stdout = process.stdout
        reader = threading.Thread(target=lambda: output.extend(iter(stdout.readline, "")))
        reader.start()

        def wait_for(text: str, screens: int = 0) -> str:
            deadline = time.monotonic() + 30
            while text not in "".join(output) or "".join(output).count("\x1b[2J") < screens:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                assert time.monotonic() < deadline, f"no {text!r} in:\n{''.join(output)}"
                time.sleep(0.05)
            return "".join(output)

        try:
            wait_for("user-approve-00001")
            api.statuses["pods"] = 500  # the API server has a hiccup
            seen = wait_for("(refresh failed, showing the last table: listing pods")
            del api.statuses["pods"]
            # The table keeps coming, the note goes once a refresh succeeds again.
            last = wait_for("", screens=seen.count("\x1b[2J") + 2).rsplit("\x1b[2J", 1)[1]
            assert "refresh failed" not in last
            assert "user-approve-00001" in last
        finally:
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=10) == 0
            reader.join(timeout=10)
        assert "Traceback" not in process.stderr.read()

"""`knlocal watch` against a real kube-apiserver with Knative Serving reconciling.

Not collected by `make test` (the name does not match test_*.py): `make cluster-check`
(tools/cluster/check.sh) runs it inside its network namespace once the bundle is Ready, with
KUBECONFIG pointing at its API server, and fails when it fails. Run by hand without that, it
fails too: there is nothing to skip to.

The objects are real: Serving's controller made the Deployments, kube-controller-manager their
ReplicaSets, the autoscaler the PodAutoscalers. There is no kubelet or scheduler, so the pods are
created here with a revision's labels, and their status is written through the status
subresource, as a kubelet would.
"""

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

SERVICE = "user-create"
REVISION = "user-create-00001"
FINALIZER = "knuser.dev/cluster-check"


def kubectl(*args: str, stdin: str | None = None) -> str:
    """Run kubectl against the cluster of KUBECONFIG; fail the test with its own message."""
    done = subprocess.run(["kubectl", *args], input=stdin, capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"kubectl {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def pod(name: str, **metadata: Any) -> dict[str, Any]:
    """A pod of the revision, as Knative's Deployment would make it."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "default",
            "labels": {
                "serving.knative.dev/service": SERVICE,
                "serving.knative.dev/revision": REVISION,
            },
            **metadata,
        },
        "spec": {"containers": [{"name": "user-container", "image": "dev.local/x:1"}]},
    }


@pytest.fixture(scope="module")
def pods() -> Iterator[None]:
    """Three pods of user-create-00001: ready, pending (image pull), terminating."""
    if not os.environ.get("KUBECONFIG"):
        pytest.fail("KUBECONFIG is not set: run this through `make cluster-check`")
    for doc in (
        pod("watch-ready"),
        pod("watch-pending"),
        pod("watch-terminating", finalizers=[FINALIZER]),
    ):
        kubectl("create", "-f", "-", stdin=json.dumps(doc))
    running = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    pulling = {
        "phase": "Pending",
        "containerStatuses": [
            {
                "name": "user-container",
                "image": "dev.local/x:1",
                "imageID": "",
                "ready": False,
                "restartCount": 2,
                "state": {"waiting": {"reason": "ImagePullBackOff"}},
            }
        ],
    }
    for name, status in (("watch-ready", running), ("watch-pending", pulling)):
        kubectl(
            "patch", "pod", name, "--subresource=status", "--type=merge",
            "-p", json.dumps({"status": status}),
        )  # fmt: skip
    kubectl("delete", "pod", "watch-terminating", "--wait=false")
    yield
    kubectl("patch", "pod", "watch-terminating", "--type=json",
            "-p", '[{"op": "remove", "path": "/metadata/finalizers"}]')  # fmt: skip
    kubectl("delete", "pod", "watch-ready", "watch-pending", "--ignore-not-found")


def test_knative_made_the_revision_objects() -> None:
    """Serving's controller made the Deployment, kube-controller-manager its ReplicaSet."""
    kubectl("get", "deployment", f"{REVISION}-deployment")
    owners = kubectl(
        "get", "replicasets", "-l", f"serving.knative.dev/revision={REVISION}",
        "-o", "jsonpath={.items[*].metadata.ownerReferences[0].name}",
    )  # fmt: skip
    assert owners.split() == [f"{REVISION}-deployment"]


def test_watch_once_shows_the_pods_by_state(pods: None) -> None:
    """One row per Knative Service; user-create's pods counted by state, desired from its PA."""
    done = subprocess.run(
        [sys.executable, "-m", "knlocal.cli", "watch", "--once", "--namespace", "default"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    table = {line.split()[0]: line.split() for line in done.stdout.splitlines()[2:] if line}
    assert set(table) - {"SERVICE"} == {
        "operation-create",
        "operation-get",
        "operation-update",
        "user-approve",
        "user-create",
        "user-create-response",
    }
    # DESIRED is the PodAutoscaler's status.desiredScale, as the autoscaler wrote it (-1 while
    # it has no metrics, which with no pod to scrape stays so here).
    desired = {
        name: kubectl("get", "podautoscaler", name, "-o", "jsonpath={.status.desiredScale}")
        for name in (REVISION, "user-approve-00001")
    }
    # SERVICE REVISION DESIRED READY PENDING TERMINATING RESTARTS WAITING
    row = [SERVICE, REVISION, desired[REVISION], "1", "1", "1", "2", "ImagePullBackOff"]
    assert table[SERVICE] == row
    idle = ["user-approve", "user-approve-00001", desired["user-approve-00001"], "0", "0", "0"]
    assert table["user-approve"][:6] == idle

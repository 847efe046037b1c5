"""`knlocal watch`: the pods of each Knative Service and revision on a real cluster, live.

The cluster's counterpart of `knlocal status`, with the same table look: one row per revision,
its desired scale (from Knative's PodAutoscaler) and its pods by state — ready, pending
(scheduled, pulling, starting, or running but not yet passing readiness), terminating (deletion
requested, still shutting down) — so a burst shows services going from zero to N and back.

It needs a cluster: the kubeconfig (KUBECONFIG, else ~/.kube/config, else the in-cluster service
account) says which. The logic from API objects to rows (:func:`rows`) is pure and works on the
JSON the Kubernetes API returns, untouched.
"""

import argparse
import json
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from knlocal.errors import LocalRuntimeError
from knlocal.tables import table as text_table

#: Labels Knative Serving puts on every pod of a revision.
SERVICE_LABEL = "serving.knative.dev/service"
REVISION_LABEL = "serving.knative.dev/revision"
#: Seconds an API call may take before the refresh reports the cluster as unreachable.
REQUEST_TIMEOUT = 10.0

ApiObject = Mapping[str, Any]


class ClusterError(LocalRuntimeError):
    """No cluster is configured, reachable, or running Knative Serving."""


@dataclass
class RevisionRow:
    """One line of the table: a revision of a Knative Service and its pods by state."""

    service: str
    revision: str
    #: The PodAutoscaler's desired scale; None when unknown (no autoscaler seen yet).
    desired: int | None = None
    ready: int = 0
    pending: int = 0
    terminating: int = 0
    #: Container restarts summed over the revision's pods (crash loops show here).
    restarts: int = 0
    #: Why containers wait (ContainerCreating, ImagePullBackOff, …), with how many.
    waiting: Counter[str] = field(default_factory=Counter)

    def cells(self) -> tuple[Any, ...]:
        """The row's cells, in the order of :data:`HEADER`."""
        waiting = ", ".join(
            f"{reason} ({n})" if n > 1 else reason for reason, n in self.waiting.items()
        )
        return (
            self.service,
            self.revision,
            "-" if self.desired is None else self.desired,
            self.ready,
            self.pending,
            self.terminating,
            self.restarts,
            waiting or "-",
        )


HEADER = (
    "SERVICE",
    "REVISION",
    "DESIRED",
    "READY",
    "PENDING",
    "TERMINATING",
    "RESTARTS",
    "WAITING",
)


def pod_state(pod: ApiObject) -> str:
    """`ready`, `pending`, `terminating` or `finished` for one Pod object.

    A pod whose deletion was requested is terminating whatever its phase: Knative scaled it down
    and it is draining. A running pod counts as ready only once its Ready condition is True
    (both user-container and queue-proxy pass readiness); until then it is pending.
    """
    if pod["metadata"].get("deletionTimestamp"):
        return "terminating"
    status = pod.get("status", {})
    phase = status.get("phase", "Pending")
    if phase in ("Succeeded", "Failed"):
        return "finished"
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions", [])
    )
    return "ready" if phase == "Running" and ready else "pending"


def _waiting_reasons(pod: ApiObject) -> list[str]:
    status = pod.get("status", {})
    reasons = [
        c["state"]["waiting"].get("reason", "Waiting")
        for c in status.get("initContainerStatuses", []) + status.get("containerStatuses", [])
        if "waiting" in c.get("state", {})
    ]
    if not reasons:
        # Not scheduled yet: no container statuses, the reason is on PodScheduled.
        reasons = [
            c.get("reason", "Unscheduled")
            for c in status.get("conditions", [])
            if c.get("type") == "PodScheduled" and c.get("status") == "False"
        ]
    # Once per pod: the table counts pods, and a pod's containers often wait for the same reason.
    return sorted(set(reasons))


def rows(
    pods: Iterable[ApiObject],
    services: Iterable[ApiObject] = (),
    autoscalers: Iterable[ApiObject] = (),
) -> list[RevisionRow]:
    """Group pods by Knative Service and revision.

    :param pods: Pod objects (a PodList's `items`); pods without Knative's labels are ignored.
    :param services: Knative Service objects: a service with no pod still gets a row (its latest
        revision at zero), so scaling from zero is visible.
    :param autoscalers: PodAutoscaler objects (one per revision), for the desired scale.
    :return: rows sorted by service, then revision.
    """
    table: dict[tuple[str, str], RevisionRow] = {}

    def row(service: str, revision: str) -> RevisionRow:
        return table.setdefault((service, revision), RevisionRow(service, revision))

    for pod in pods:
        labels = pod["metadata"].get("labels", {})
        if SERVICE_LABEL not in labels or REVISION_LABEL not in labels:
            continue
        state = pod_state(pod)
        if state == "finished":
            continue
        r = row(labels[SERVICE_LABEL], labels[REVISION_LABEL])
        if state == "ready":
            r.ready += 1
        elif state == "terminating":
            r.terminating += 1
        else:
            r.pending += 1
            r.waiting.update(_waiting_reasons(pod))
        statuses = pod.get("status", {}).get("containerStatuses", [])
        r.restarts += sum(c.get("restartCount", 0) for c in statuses)
    seen = {service for service, _ in table}
    for service in services:
        name = service["metadata"]["name"]
        if name not in seen:
            status = service.get("status", {})
            revision = status.get("latestReadyRevisionName") or status.get(
                "latestCreatedRevisionName", "-"
            )
            row(name, revision)
    for autoscaler in autoscalers:
        labels = autoscaler["metadata"].get("labels", {})
        key = (labels.get(SERVICE_LABEL, ""), autoscaler["metadata"]["name"])
        desired = autoscaler.get("status", {}).get("desiredScale")
        # Old revisions keep their autoscaler at 0 after a rollout: only those with a row show.
        if key in table and desired is not None:
            table[key].desired = desired
    return [table[key] for key in sorted(table)]


def render(where: str, table: list[RevisionRow], note: str = "") -> str:
    """The rows as the aligned table `knlocal status` prints, under a line saying where."""
    lines = [f"{where}   {time.strftime('%H:%M:%S')}" + (f"   {note}" if note else ""), ""]
    if not table:
        return "\n".join([*lines, "no Knative Services here (deploy with `make deploy`)"])
    return "\n".join(lines + text_table(HEADER, [r.cells() for r in table]))


@dataclass
class Cluster:
    """The API client of the kubeconfig's cluster, and where it is."""

    api: Any
    host: str

    @classmethod
    def connect(cls, context: str | None = None) -> "Cluster":
        """Load the kubeconfig (or the in-cluster service account).

        :raises ClusterError: neither is there.
        """
        from kubernetes import client, config
        from kubernetes.config.config_exception import ConfigException

        loader: Any = config  # the client's config loaders carry no type hints
        configuration = client.Configuration()
        # One try per refresh: a dead cluster is reported at once, the next refresh tries again.
        configuration.retries = False
        try:
            loader.load_kube_config(context=context, client_configuration=configuration)
        except (ConfigException, OSError) as no_kubeconfig:
            try:
                loader.load_incluster_config(client_configuration=configuration)
            except ConfigException:
                detail = str(no_kubeconfig).rstrip(".")
                raise ClusterError(
                    f"no kubeconfig found: {detail}; this command needs a Knative cluster"
                    " (set KUBECONFIG or create ~/.kube/config, e.g. with your cloud's"
                    " get-credentials command; `knlocal status` shows the local runtime)"
                ) from None
        return cls(client.ApiClient(configuration), configuration.host)

    def snapshot(self, namespace: str) -> list[RevisionRow]:
        """List pods, Knative Services and PodAutoscalers and turn them into rows.

        :raises ClusterError: the API is unreachable, refuses us, or has no Knative Serving.
        """
        from kubernetes import client

        # Typed as returning model objects, which _preload_content=False replaces with the raw
        # response: the rows are computed from the API's JSON as it is (and as the tests record it).
        core: Any = client.CoreV1Api(self.api)
        custom = client.CustomObjectsApi(self.api)
        pods = self._call(
            "pods",
            lambda: json.loads(
                core.list_namespaced_pod(
                    namespace,
                    label_selector=SERVICE_LABEL,
                    _preload_content=False,
                    _request_timeout=REQUEST_TIMEOUT,
                ).data
            ),
        )
        services = self._call(
            "Knative Services",
            lambda: custom.list_namespaced_custom_object(
                "serving.knative.dev",
                "v1",
                namespace,
                "services",
                _request_timeout=REQUEST_TIMEOUT,
            ),
        )
        try:
            autoscalers = self._call(
                "PodAutoscalers",
                lambda: custom.list_namespaced_custom_object(
                    "autoscaling.internal.knative.dev",
                    "v1alpha1",
                    namespace,
                    "podautoscalers",
                    _request_timeout=REQUEST_TIMEOUT,
                ),
            )
        except ClusterError:
            # An internal API that RBAC may hide from users: DESIRED then shows "-".
            autoscalers = {"items": []}
        return rows(pods["items"], services["items"], autoscalers["items"])

    def _call(self, what: str, call: Any) -> Any:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            return call()
        except ApiException as exc:
            if exc.status == 404 and what == "Knative Services":
                raise ClusterError(
                    f"the cluster at {self.host} has no Knative Serving"
                    " (serving.knative.dev/v1 services): install it (docs/cluster.md)"
                ) from None
            raise ClusterError(
                f"listing {what} at {self.host} failed: {exc.status} {exc.reason};"
                " check the kubeconfig's credentials and that they may list pods and services"
            ) from None
        except (HTTPError, OSError) as exc:
            raise ClusterError(
                f"cannot reach the Kubernetes API at {self.host} ({exc}); is the cluster up and"
                " the kubeconfig's current context the right one?"
            ) from None


def watch(args: argparse.Namespace) -> int:
    """Run `knlocal watch` with its parsed options (`namespace`, `context`, `once`, `interval`)."""
    cluster = Cluster.connect(args.context)
    where = f"cluster {cluster.host}   namespace {args.namespace}"
    # The first snapshot's error ends the command; later ones are shown and retried, so a
    # watch survives an API server hiccup during a burst.
    table = cluster.snapshot(args.namespace)
    if args.once:
        print(render(where, table))
        return 0
    note = ""
    while True:
        print("\x1b[2J\x1b[H" + render(where, table, note), flush=True)
        try:
            time.sleep(args.interval)
        except KeyboardInterrupt:
            return 0
        try:
            table, note = cluster.snapshot(args.namespace), ""
        except ClusterError as exc:
            note = f"(refresh failed, showing the last table: {exc})"
        except KeyboardInterrupt:
            return 0

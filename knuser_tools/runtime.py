"""`knlocal run` serving knuser: the runtime process with the user API's calls.

:class:`~knlocal.process.RuntimeProcess` starts and stops the runtime and knows nothing of what
it serves; this adds what knuser answers (functions/openapi.yaml) and its PingSource.
"""

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from knlocal.process import START_SECONDS, RuntimeProcess

#: The project's folder (knuser_tools/ is at its top): its manifests and pyproject.toml.
PROJECT = Path(__file__).resolve().parents[1]
#: The PingSource that re-drives stalled operations (sources/operation-sweep.yaml).
SWEEP_SOURCE = ("default", "operation-sweep")


class KnuserRuntime(RuntimeProcess):
    """A :class:`~knlocal.process.RuntimeProcess` with knuser's public API and sweep; it runs
    in :data:`PROJECT` unless told otherwise."""

    def __init__(
        self,
        data_dir: Path,
        env: Mapping[str, str] | None = None,
        *,
        args: Sequence[str] = (),
        cwd: Path = PROJECT,
        start_timeout: float = START_SECONDS,
    ) -> None:
        super().__init__(data_dir, env, args=args, cwd=cwd, start_timeout=start_timeout)

    @property
    def default_broker(self) -> str:
        """The address of the Broker default/default (brokers/), where events are sent."""
        return f"{self.broker}/default/default"

    def create_user(self, name: str) -> tuple[int, Any]:
        """`POST /users`; the status and the JSON answer."""
        return self.request(f"{self.ingress}/users", "POST", {"name": name})

    def operation(self, operation_id: str) -> Any:
        """`GET /operations/<id>`, which must answer 200."""
        status, body = self.request(f"{self.ingress}/operations/{operation_id}")
        assert status == 200, (status, body)
        return body

    def sweep(self, stalled_after: float = 2, fail_after: float = 600) -> Any:
        """Fire the PingSource operation-sweep now with this policy as its data: a ping event
        to operation-create's /sweep (a cluster-local Service, reached through the admin API).

        :return: the sweep's counts (pending, republished, failed, unpublished).
        """
        policy = {"stalledAfterSeconds": stalled_after, "failAfterSeconds": fail_after}
        status, counts = self.fire_ping_source(*SWEEP_SOURCE, policy)
        assert status == 200, (status, counts)
        return counts

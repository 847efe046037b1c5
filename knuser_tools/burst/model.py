"""What a burst is: its configuration, and one user creation as the client saw it."""

from dataclasses import dataclass
from pathlib import Path

from knlocal.settings import Settings

#: The local runtime's addresses with nothing set (knlocal/settings.py's defaults).
LOCAL_INGRESS = f"http://{Settings.host}:{Settings.ingress_port}"
LOCAL_ADMIN = f"http://{Settings.host}:{Settings.admin_port}"
#: How often the runtime's /status is sampled.
SAMPLE_INTERVAL = 0.25
#: Growth of the wait between two reads of one operation.
POLL_GROWTH = 1.25
#: Operation states that end an operation (openapi.yaml).
FINAL_STATES = frozenset({"completed", "failed"})


@dataclass(frozen=True)
class BurstConfig:
    """What a burst does.

    :ivar count: users to create.
    :ivar rate: POSTs per second the driver aims at.
    :ivar concurrency: most POSTs in flight at once.
    :ivar url: the public ingress.
    :ivar admin: the runtime's admin address (`/status`), or None for none.
    :ivar poll_interval: seconds before the first read of an operation; each next wait is
        :data:`POLL_GROWTH` times longer, up to 0.5 s. So an operation is read about 4 times
        if it ends within 100 ms and 9 times within 500 ms (reads are load on the system too),
        and a time to the final state is over by at most the last wait.
    :ivar follow_timeout: seconds after its `202` an operation may take to end; past that it is
        counted as lost.
    :ivar settle_timeout: seconds after the last operation ended to wait for every service to be
        back at zero instances.
    :ivar out_dir: where the JSON report and the PNG plot go.
    :ivar data_dir: the runtime's DATA_DIR, whose SQLite stores (functions/stores/) are checked
        after the burst (see :func:`check_stores`), or None to check nothing.
    """

    count: int = 300
    rate: float = 100.0
    concurrency: int = 32
    url: str = LOCAL_INGRESS
    admin: str | None = LOCAL_ADMIN
    poll_interval: float = 0.02
    follow_timeout: float = 30.0
    settle_timeout: float = 30.0
    out_dir: Path = Path("bench/results")
    data_dir: Path | None = None


@dataclass
class Operation:
    """One user creation, as the client saw it; times in seconds since the burst started."""

    index: int
    scheduled: float
    sent: float | None = None
    answered: float | None = None
    status_code: int | None = None
    operation_id: str | None = None
    finished: float | None = None
    state: str | None = None
    error: str | None = None
    reads: int = 0

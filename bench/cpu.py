"""CPU time by process role over a burst, from the kernel's accounting.

Wall-clock rates swing with whatever else runs on a shared 2-core machine; the CPU time each
process spends on a fixed burst swings far less, and says where the time goes. The kernel counts
it per process in `/proc/<pid>/stat` (utime + stime, in clock ticks).

Instances come and go during a burst (the autoscaler forks and retires them) and the zygote does
not wait for them (SIGCHLD ignored), so their time never reaches a parent's `cutime`. A sampler
thread therefore walks `/proc` every `interval` seconds and keeps the last count of every process
of the runtime's tree; a process that exits between two samples loses at most one interval of
its time, which the result states (`sample_interval_ms`).

Roles, by place in the tree of the runtime process:

- `runtime`: the runtime process itself;
- one role per direct child of the runtime, named by the module it runs (`python -m NAME`), with
  its own descendants; except the zygote's descendants, which are
- `instances`: every function instance;
- any extra process named by the caller (e.g. `kafka` for the broker's JVM);
- `load_generator`: this process (the burst driver runs in it), threads included.
"""

import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
ZYGOTE_MODULE = "knlocal.serving.zygote"


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, utime + stime in ticks) of `pid`, or None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # After the command name: state, ppid, …; utime and stime are fields 14 and 15 of stat(5).
    return int(fields[1]), int(fields[11]) + int(fields[12])


def _module(pid: int) -> str:
    """The module a Python child runs (`-m NAME`), else its executable's name."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "unknown"
    words = [word.decode(errors="replace") for word in argv if word]
    if "-m" in words[:-1]:
        return words[words.index("-m") + 1]
    return Path(words[0]).name if words else "unknown"


class CpuMeter:
    """Measures CPU time by role while it is entered (a context manager).

    :param runtime_pid: the runtime process, root of the tree that is measured.
    :param extra: other processes to measure, by role name (e.g. ``{"kafka": pid}``).
    :param interval: seconds between two walks of `/proc`.
    """

    def __init__(
        self, runtime_pid: int, extra: Mapping[str, int] | None = None, interval: float = 0.1
    ) -> None:
        self.runtime_pid = runtime_pid
        self.extra = dict(extra or {})
        self.interval = interval
        self._first: dict[int, int] = {}
        self._last: dict[int, int] = {}
        self._roles: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-meter", daemon=True)
        self._self_start = 0.0
        self._self_cpu = 0.0
        self._seconds = 0.0
        self._meter_cpu = 0.0

    def __enter__(self) -> "CpuMeter":
        self._sample(first=True)
        self._self_start = time.monotonic()
        self._self_cpu = _own_cpu_seconds()
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        self._sample(first=False)
        self._self_cpu = _own_cpu_seconds() - self._self_cpu - self._meter_cpu
        self._seconds = time.monotonic() - self._self_start

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample(first=False)
        # The walks cost this process CPU time that is not the load generator's.
        self._meter_cpu = time.thread_time()

    def _sample(self, first: bool) -> None:
        parents: dict[int, int] = {}
        ticks: dict[int, int] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
                parents[int(entry.name)], ticks[int(entry.name)] = stat
        for pid, count in ticks.items():
            role = self._roles.get(pid) or self._role(pid, parents)
            if role is None:
                continue
            self._roles[pid] = role
            # A process born after the first sample started from zero.
            self._first.setdefault(pid, count if first else 0)
            self._last[pid] = count

    def _role(self, pid: int, parents: Mapping[int, int]) -> str | None:
        for name, extra_pid in self.extra.items():
            if pid == extra_pid:
                return name
        if pid == self.runtime_pid:
            return "runtime"
        chain = [pid]
        while (parent := parents.get(chain[-1], 0)) not in (0, 1, self.runtime_pid):
            chain.append(parent)
            if len(chain) > 32:
                return None
        if parents.get(chain[-1]) != self.runtime_pid:
            return None
        child_module = _module(chain[-1])
        if child_module == ZYGOTE_MODULE and len(chain) > 1:
            return "instances"
        return child_module.rsplit(".", 1)[-1]

    def result(self, completed: int) -> dict[str, Any]:
        """CPU milliseconds by role, in all and per completed user; call after the block."""
        by_role: dict[str, float] = {}
        for pid, role in self._roles.items():
            spent = (self._last[pid] - self._first[pid]) * 1000 / TICKS_PER_SECOND
            by_role[role] = by_role.get(role, 0.0) + spent
        by_role["load_generator"] = self._self_cpu * 1000
        total = sum(by_role.values())
        per_user = (
            {role: round(ms / completed, 2) for role, ms in by_role.items()} if completed else {}
        )
        return {
            "completed_users": completed,
            "wall_seconds": round(self._seconds, 1),
            "cpu_ms": {role: round(ms) for role, ms in sorted(by_role.items())},
            "cpu_ms_total": round(total),
            "cpu_ms_per_user": dict(sorted(per_user.items())),
            "cpu_ms_per_user_total": round(total / completed, 2) if completed else None,
            "sample_interval_ms": round(self.interval * 1000),
            "meter_cpu_ms": round(self._meter_cpu * 1000),
            "source": "/proc/<pid>/stat utime+stime, sampled; load_generator: os.times()",
        }


def _own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system

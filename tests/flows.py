"""What the fault tests do to knuser through a runtime: bursts of `POST /users`, waits for the
operations to end, and the users the stores hold (read behind the runtime's back)."""

import concurrent.futures
import json
import sqlite3
import string
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

from knuser_tools.runtime import KnuserRuntime


def name(index: int, prefix: str = "Fault") -> str:
    """A name the approval rules accept (letters only), distinct per index below 676."""
    letters = string.ascii_lowercase
    return f"{prefix} {letters[index // 26 % 26]}{letters[index % 26]}"


def post_users(
    runtime: KnuserRuntime,
    count: int,
    per_second: float,
    during: Callable[[], None] | None = None,
    after: int = 0,
) -> list[tuple[int, Any]]:
    """POST `count` users at `per_second` from a few threads; run `during()` after `after` POSTs.

    :return: each POST's status and answer, in sending order.
    """
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        started = time.monotonic()
        futures = []
        for index in range(count):
            if during is not None and index == after:
                pool.submit(during)
            time.sleep(max(0.0, started + index / per_second - time.monotonic()))
            futures.append(pool.submit(runtime.create_user, name(index)))
        return [future.result() for future in futures]


def wait_final(
    runtime: KnuserRuntime, operation_ids: list[str], seconds: float, sweep: bool = False
) -> dict[str, Any]:
    """Each operation once it is final; what is still pending after `seconds` is left out.

    :param sweep: between two rounds of reads, do what the PingSource does every 5 minutes:
        re-send the events that never got to the broker.
    """
    deadline = time.monotonic() + seconds
    final: dict[str, Any] = {}
    while len(final) < len(operation_ids) and time.monotonic() < deadline:
        for operation_id in set(operation_ids) - set(final):
            operation = runtime.operation(operation_id)
            if operation["status"] != "pending":
                final[operation_id] = operation
        if sweep:
            runtime.sweep()
        time.sleep(1.0 if sweep else 0.2)
    return final


def records(data_dir: Path, service: str) -> list[dict[str, Any]]:
    """Every record of a service's SQLite file (functions/stores/sqlite.py)."""
    path = data_dir / f"{service}.sqlite3"
    if not path.exists():
        return []
    with closing(sqlite3.connect(path)) as db:
        return [json.loads(body) for (body,) in db.execute("SELECT body FROM records")]


def users_by_operation(data_dir: Path) -> dict[str, int]:
    """How many user rows each operation has."""
    counts: dict[str, int] = {}
    for user in records(data_dir, "users"):
        counts[user["operationId"]] = counts.get(user["operationId"], 0) + 1
    return counts

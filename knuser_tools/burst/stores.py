"""What knuser's stores say of a burst's operations: the claims at-least-once must keep."""

import json
import sqlite3
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path
from typing import Any


def check_stores(
    data_dir: Path, operation_ids: Sequence[str], lost: Sequence[str]
) -> dict[str, Any]:
    """What the stores say of the burst's operations: the claims at-least-once must keep.

    Read from the SQLite files under the runtime's DATA_DIR (functions/stores/sqlite.py):

    - `lost`: accepted, and never seen final by the client;
    - `duplicate_users`: more than one user row for one operation;
    - `stranded_pending`: still `pending` in the operations store;
    - `wrongly_failed`: `failed`, though its user's approval was decided (the flow finished);
    - `completed_without_user`: `completed`, and no user row.

    Each is a list of operation ids; `ok` is true when every list is empty.
    """
    operations_db, users_db = data_dir / "operations.sqlite3", data_dir / "users.sqlite3"
    if not operations_db.exists() or not users_db.exists():
        return {"ok": None, "why": f"no SQLite stores under {data_dir} (STORE=sqlite only)"}
    wanted = set(operation_ids)
    with closing(sqlite3.connect(operations_db)) as db:
        states = {i: st for i, st in db.execute("SELECT id, status FROM records") if i in wanted}
    users: dict[str, list[str]] = {}
    with closing(sqlite3.connect(users_db)) as db:
        for (body,) in db.execute("SELECT body FROM records"):
            user = json.loads(body)
            if user.get("operationId") in wanted:
                users.setdefault(user["operationId"], []).append(user["status"])
    decided = {"approved", "rejected"}
    claims = {
        "lost": sorted(lost),
        "duplicate_users": sorted(i for i, found in users.items() if len(found) > 1),
        "stranded_pending": sorted(i for i in wanted if states.get(i, "pending") == "pending"),
        "wrongly_failed": sorted(
            i for i, st in states.items() if st == "failed" and decided & set(users.get(i, []))
        ),
        "completed_without_user": sorted(
            i for i, st in states.items() if st == "completed" and i not in users
        ),
    }
    return {"ok": not any(claims.values()), "checked": len(wanted), **claims}

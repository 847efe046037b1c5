"""`knlocal burst`'s store check finds each broken claim, in stores the functions really wrote."""

from pathlib import Path

from functions.stores.base import OperationStore, UserStore
from functions.stores.sqlite import SqliteTable
from knuser_tools.burst import check_stores


def test_check_stores_lists_the_operations_that_break_a_claim(tmp_path: Path) -> None:
    operations = OperationStore(SqliteTable(tmp_path / "operations.sqlite3"))
    users = UserStore(SqliteTable(tmp_path / "users.sqlite3"))
    for operation_id in ("good", "twice", "pending", "wrong", "empty", "other-run"):
        operations.create(operation_id, "user.create", {"name": "Ada"})
    for operation_id in ("good", "twice", "wrong", "other-run"):
        users.create(f"user-{operation_id}", "Ada", operation_id)
        users.decide(f"user-{operation_id}", approved=True, reason=None)
    users.create("user-twice-again", "Ada", "twice")  # a second user for one operation
    for operation_id in ("good", "twice", "empty"):
        operations.complete(operation_id, {"user": {}})
    operations.fail("wrong", "dead-lettered")  # its user was approved: the flow did finish
    checked = ["good", "twice", "pending", "wrong", "empty", "lost"]

    verdict = check_stores(tmp_path, checked, lost=["lost"])

    assert verdict == {
        "ok": False,
        "checked": 6,
        "lost": ["lost"],
        "duplicate_users": ["twice"],
        "stranded_pending": ["lost", "pending"],
        "wrongly_failed": ["wrong"],
        "completed_without_user": ["empty"],
    }
    assert check_stores(tmp_path, ["good"], lost=[])["ok"] is True


def test_check_stores_says_why_it_checked_nothing(tmp_path: Path) -> None:
    assert check_stores(tmp_path, ["x"], lost=[]) == {
        "ok": None,
        "why": f"no SQLite stores under {tmp_path} (STORE=sqlite only)",
    }

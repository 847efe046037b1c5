"""The SQLite store's own promises; the behaviour every store shares is in tests/conformance."""

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from functions.errors import StoreError
from functions.settings import Settings
from functions.stores import UserStore, open_table
from functions.stores.sqlite import SqliteTable


def test_database_runs_in_wal_mode(tmp_path: Path) -> None:
    # WAL lets the instances of a service read while one of them writes.
    path = tmp_path / "users.sqlite3"
    SqliteTable(path).put_if_absent({"id": "u1", "status": "approval_pending"})
    with closing(sqlite3.connect(path)) as other_process_view:
        mode = other_process_view.execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_each_service_has_its_own_file(tmp_path: Path) -> None:
    settings = Settings(function="test", store="sqlite", data_dir=tmp_path / "data")
    operations = open_table(settings, "operations")
    users = UserStore(open_table(settings, "users"))
    users.create("same-id", "Ada", "op-1")

    assert sorted(p.name for p in (tmp_path / "data").glob("*.sqlite3")) == [
        "operations.sqlite3",
        "users.sqlite3",
    ]
    assert users.get("same-id") is not None
    assert operations.get("same-id") is None


@pytest.mark.parametrize("kind", ["a directory", "not a database"])
def test_unopenable_file_is_a_store_error_naming_it(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "users.sqlite3"
    if kind == "a directory":
        path.mkdir()
    else:
        path.write_bytes(b"these bytes are not an SQLite database" * 100)

    with pytest.raises(StoreError) as raised:
        SqliteTable(path)

    assert str(path) in raised.value.message
    # The app answers a StoreError with 503, so the broker retries the delivery.
    assert raised.value.status == 503

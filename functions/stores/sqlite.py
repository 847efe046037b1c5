"""The embedded default store: one SQLite database file per service, in WAL mode.

Several processes (gunicorn workers, scaled-out instances) share the file; WAL lets readers run
beside the one writer, and `busy_timeout` makes writers wait for each other instead of failing.
Each thread gets its own connection because sqlite3 connections must not be shared across threads.
"""

import json
import sqlite3
import threading
from pathlib import Path

from functions.errors import StoreError
from functions.stores.base import Record, Table

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    id     TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    body   TEXT NOT NULL
) WITHOUT ROWID
"""
#: The sweep lists pending operations; the index keeps that cheap however many finished ones exist.
_INDEX = "CREATE INDEX IF NOT EXISTS records_status ON records (status)"


class SqliteTable(Table):
    """A :class:`Table` in one SQLite file.

    :param path: the database file; created with its parent folder if missing.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._connection().execute(_SCHEMA)
        self._connection().execute(_INDEX)

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
                conn.execute("PRAGMA journal_mode=WAL")
                # NORMAL in WAL mode survives a killed process (not a power cut) and skips an
                # fsync per commit; see the README's durability note.
                conn.execute("PRAGMA synchronous=NORMAL")
            except sqlite3.Error as exc:
                raise StoreError(f"cannot open SQLite database {self.path}: {exc}") from exc
            self._local.conn = conn
        return conn

    def put_if_absent(self, record: Record) -> Record:
        """See :meth:`Table.put_if_absent`; one `INSERT … ON CONFLICT DO NOTHING`."""
        try:
            conn = self._connection()
            cursor = conn.execute(
                "INSERT INTO records (id, status, body) VALUES (?, ?, ?)"
                " ON CONFLICT (id) DO NOTHING",
                (record["id"], record["status"], json.dumps(record)),
            )
            if cursor.rowcount == 1:
                return record
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite insert into {self.path} failed: {exc}") from exc
        stored = self.get(record["id"])
        assert stored is not None, "a record that conflicted on insert cannot be missing"
        return stored

    def get(self, record_id: str) -> Record | None:
        """See :meth:`Table.get`."""
        try:
            row = (
                self._connection()
                .execute("SELECT body FROM records WHERE id = ?", (record_id,))
                .fetchone()
            )
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite read from {self.path} failed: {exc}") from exc
        if row is None:
            return None
        record: Record = json.loads(row[0])
        return record

    def replace_if_status(self, record: Record, expected_status: str) -> bool:
        """See :meth:`Table.replace_if_status`; one `UPDATE … WHERE status = ?`."""
        try:
            cursor = self._connection().execute(
                "UPDATE records SET status = ?, body = ? WHERE id = ? AND status = ?",
                (record["status"], json.dumps(record), record["id"], expected_status),
            )
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite update in {self.path} failed: {exc}") from exc
        return cursor.rowcount == 1

    def with_status(self, status: str, limit: int) -> list[Record]:
        """See :meth:`Table.with_status`; one indexed `SELECT`."""
        try:
            rows = (
                self._connection()
                .execute("SELECT body FROM records WHERE status = ? LIMIT ?", (status, limit))
                .fetchall()
            )
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite read from {self.path} failed: {exc}") from exc
        return [json.loads(body) for (body,) in rows]

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

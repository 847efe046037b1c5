"""Stores: a database per service, behind one small interface (see :mod:`functions.stores.base`)."""

from functions.settings import Settings
from functions.stores.base import OperationStore, Table, UserStore

__all__ = ["OperationStore", "UserStore", "open_table"]


def open_table(settings: Settings, service: str) -> Table:
    """Open the table of one service (`operations` or `users`) on the configured backend.

    :param settings: selects the backend (`STORE`) and where its data lives.
    :param service: the owning service; each has its own database (SQLite file or DynamoDB table).
    """
    if settings.store == "dynamodb":
        from functions.stores.dynamodb import DynamoTable

        table: Table = DynamoTable.open(settings, service)
        return table
    from functions.stores.sqlite import SqliteTable

    return SqliteTable(settings.data_dir / f"{service}.sqlite3")

"""DynamoDB Local for the tests: reachability, fresh tables per test, raw access for checks.

The server is the one `make dynamodb` starts (tools/dynamodb.sh); set DYNAMODB_ENDPOINT to use
another. Each test gets a table prefix of its own, so tests never see each other's records, and
its tables are dropped afterwards, so the shared in-memory server does not fill up.
"""

import contextlib
import os
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from functions.settings import Settings
from functions.stores.dynamodb import SERVICES
from tests.servers import require_server

ENDPOINT = os.environ.get("DYNAMODB_ENDPOINT") or "http://127.0.0.1:8000"


def admin_client() -> Any:
    """A boto3 client of our own, to check behind the store's back (any keys do for Local)."""
    return boto3.session.Session().client(
        "dynamodb",
        endpoint_url=ENDPOINT,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(connect_timeout=1, read_timeout=5, retries={"max_attempts": 1}),
    )


def _reachable(client: Any) -> bool:
    try:
        client.list_tables(Limit=1)
    except (BotoCoreError, ClientError):
        return False
    return True


@contextlib.contextmanager
def fresh_tables() -> Iterator[Settings]:
    """Settings of a function on DynamoDB Local with a table prefix no other test uses.

    Skips the test when DynamoDB Local is down (fails it when `CI=true`); drops the tables after.

    :return: the settings; the tables are created by the store on first use.
    """
    client = admin_client()
    require_server(f"DynamoDB Local at {ENDPOINT}", _reachable(client), "run `make dynamodb`")
    prefix = f"test-{uuid.uuid4().hex[:12]}-"
    try:
        yield Settings(
            function="test",
            store="dynamodb",
            dynamodb_endpoint=ENDPOINT,
            dynamodb_table_prefix=prefix,
        )
    finally:
        for service in SERVICES:
            with contextlib.suppress(client.exceptions.ResourceNotFoundException):
                client.delete_table(TableName=f"{prefix}{service}")


def count_items(settings: Settings, service: str) -> int:
    """How many records the service's table holds (a strongly consistent scan)."""
    response = admin_client().scan(
        TableName=f"{settings.dynamodb_table_prefix}{service}",
        Select="COUNT",
        ConsistentRead=True,
    )
    count: int = response["Count"]
    return count

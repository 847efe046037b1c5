"""The DynamoDB store's own promises; the behaviour every store shares is in tests/conformance.

Against DynamoDB Local (`make dynamodb`); the tests about an unreachable or malformed endpoint
need no server.
"""

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from functions.errors import StoreError
from functions.settings import Settings
from functions.stores import OperationStore, open_table
from functions.stores.dynamodb import DynamoTable
from tests.functions.stores import dynamodb_local
from tests.functions.stores.concurrency import race


@pytest.fixture
def settings() -> Iterator[Settings]:
    with dynamodb_local.fresh_tables() as fresh:
        yield fresh


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.mark.dynamodb
def test_table_follows_the_documented_key_design(settings: Settings) -> None:
    table = open_table(settings, "operations")
    OperationStore(table).create("op-1", "user.create", {"name": "Ada"})

    described = dynamodb_local.admin_client().describe_table(
        TableName=f"{settings.dynamodb_table_prefix}operations"
    )["Table"]
    assert described["TableStatus"] == "ACTIVE"
    assert described["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert described["AttributeDefinitions"] == [{"AttributeName": "id", "AttributeType": "S"}]
    assert described["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"


@pytest.mark.dynamodb
def test_item_is_id_status_and_the_record_as_json(settings: Settings) -> None:
    record = {
        "id": "rec-1",
        "status": "pending",
        "nothing": None,
        "nested": {"list": [1, 2.5, "three"], "flag": True},
        "name": "Zoë 🚀",
    }
    table = open_table(settings, "operations")
    assert table.put_if_absent(record) == record
    assert table.get("rec-1") == record

    item = dynamodb_local.admin_client().get_item(
        TableName=f"{settings.dynamodb_table_prefix}operations",
        Key={"id": {"S": "rec-1"}},
        ConsistentRead=True,
    )["Item"]
    assert set(item) == {"id", "status", "body"}
    assert item["status"] == {"S": "pending"}
    assert json.loads(item["body"]["S"]) == record


@pytest.mark.dynamodb
def test_concurrent_first_use_creates_the_table_once(settings: Settings) -> None:
    # Every instance of a service opens the table at once when a burst scales it from zero:
    # all but one CreateTable lose the race, and none of them may fail for it.
    tables = [DynamoTable.open(settings, "users") for _ in range(8)]
    stored = race(
        [
            partial(table.put_if_absent, {"id": f"u{i}", "status": "approval_pending"})
            for i, table in enumerate(tables)
        ]
    )
    assert [r["id"] for r in stored] == [f"u{i}" for i in range(8)]
    assert dynamodb_local.count_items(settings, "users") == 8


@pytest.mark.dynamodb
def test_a_deleted_table_is_created_again_by_the_next_request(settings: Settings) -> None:
    # DynamoDB Local keeps tables in memory: restarting it under a running system drops them.
    table = open_table(settings, "users")
    table.put_if_absent({"id": "u1", "status": "approval_pending"})
    dynamodb_local.admin_client().delete_table(TableName=f"{settings.dynamodb_table_prefix}users")

    with pytest.raises(StoreError) as raised:
        table.get("u1")
    assert "ResourceNotFoundException" in raised.value.message
    assert "the next request creates it" in raised.value.message

    assert table.get("u1") is None
    table.put_if_absent({"id": "u2", "status": "approval_pending"})
    assert table.get("u2") == {"id": "u2", "status": "approval_pending"}


@pytest.mark.dynamodb
def test_works_without_aws_credentials_in_the_environment(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(variable, raising=False)
    # Nor any other source of credentials, so that without dummy keys the request would fail.
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    # A region no other test uses: clients are cached per endpoint and region, so this one is new.
    no_credentials = Settings(
        function="test",
        store="dynamodb",
        dynamodb_endpoint=settings.dynamodb_endpoint,
        dynamodb_table_prefix=settings.dynamodb_table_prefix,
        aws_region="eu-north-1",
    )
    table = open_table(no_credentials, "users")
    assert table.put_if_absent({"id": "u1", "status": "approval_pending"})["id"] == "u1"


def test_unreachable_endpoint_is_a_store_error_naming_it() -> None:
    endpoint = f"http://127.0.0.1:{closed_port()}"
    settings = Settings(function="test", store="dynamodb", dynamodb_endpoint=endpoint)
    # Opening makes no request, so a function starts even while DynamoDB is down ...
    table = open_table(settings, "operations")

    started = time.monotonic()
    with pytest.raises(StoreError) as raised:
        table.get("op-1")
    # ... and each request fails fast with what to do, which the app answers with 503.
    assert time.monotonic() - started < 5
    assert endpoint in raised.value.message
    assert "knuser-operations" in raised.value.message
    assert "make dynamodb" in raised.value.message
    assert raised.value.status == 503


@pytest.mark.parametrize("endpoint", ["127.0.0.1:8000", "not a url"])
def test_malformed_endpoint_fails_at_open(endpoint: str) -> None:
    settings = Settings(function="test", store="dynamodb", dynamodb_endpoint=endpoint)
    with pytest.raises(StoreError) as raised:
        open_table(settings, "users")
    assert endpoint in raised.value.message
    assert "http://127.0.0.1:8000" in raised.value.message  # the example of a valid value


def make_tables(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run what `make dynamodb-tables` runs."""
    return subprocess.run(
        [sys.executable, "-m", "functions.stores.dynamodb"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.dynamodb
def test_make_dynamodb_tables_creates_every_table(settings: Settings) -> None:
    env = {
        "DYNAMODB_ENDPOINT": str(settings.dynamodb_endpoint),
        "DYNAMODB_TABLE_PREFIX": settings.dynamodb_table_prefix,
    }
    for attempt in ("first", "again"):
        done = make_tables(env)
        assert done.returncode == 0, f"{attempt}: {done.stderr}"
    admin: Any = dynamodb_local.admin_client()
    for service in ("operations", "users"):
        name = f"{settings.dynamodb_table_prefix}{service}"
        assert f"table {name} is ACTIVE" in done.stdout
        assert admin.describe_table(TableName=name)["Table"]["TableStatus"] == "ACTIVE"


def test_make_dynamodb_tables_reports_an_unreachable_endpoint() -> None:
    endpoint = f"http://127.0.0.1:{closed_port()}"
    done = make_tables({"DYNAMODB_ENDPOINT": endpoint})
    assert done.returncode == 1
    assert endpoint in done.stderr
    assert "make dynamodb" in done.stderr
    assert "Traceback" not in done.stderr

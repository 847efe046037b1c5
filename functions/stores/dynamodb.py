"""The DynamoDB store: one table per service, reached with boto3 (`STORE=dynamodb`).

Key design. Each service owns one table, `<DYNAMODB_TABLE_PREFIX><service>` (by default
`knuser-operations` and `knuser-users`), holding one item per record:

- `id` (S) — the partition key: the operation's or user's id, a UUID. There is **no sort key**:
  every access is to one record by its id (read it, create it once, replace it on a state
  change); nothing lists or ranges over records, and UUIDs spread items evenly over partitions.
- `status` (S) — the record's state, duplicated at the top level so that a condition expression
  can compare it.
- `body` (S) — the whole record as JSON text. The record is always read and written whole, so a
  map would buy nothing, and JSON keeps nulls, nesting and numbers exactly as the SQLite store
  does (a map would turn numbers into `Decimal`).

Idempotency and forward-only states come from conditional writes on that one item, which
DynamoDB applies atomically: creation is a PutItem with `attribute_not_exists(id)`, a state change
a PutItem with `#status = :expected` (a compare-and-set). Concurrent duplicate deliveries in any
number of processes therefore have exactly one winner, with no transaction and no lock. Reads are
strongly consistent, so a delivery that follows a write always sees it. Billing is
PAY_PER_REQUEST: no capacity to plan, and bursts are absorbed.

Tables are created by the project: by each process on its first request if missing (CreateTable,
then wait until ACTIVE; a concurrent creator's ResourceInUseException is expected), or ahead of
time with `make dynamodb-tables` (`python -m functions.stores.dynamodb`). Opening a table makes no
request on purpose: a function whose DynamoDB is down still starts, answers 503 with an error
naming the endpoint, and recovers by itself once DynamoDB is back. A function that failed to
start instead would leave requests held by the activator until they time out.
"""

import contextlib
import json
import os
import sys
import threading
from functools import cache
from typing import Any

import boto3
from botocore.config import Config
from botocore.credentials import EnvProvider
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from functions.errors import FunctionError, StoreError
from functions.settings import Settings
from functions.stores.base import Record, Table

#: The services that own a table.
SERVICES = ("operations", "users")

#: Fail fast when DynamoDB is unreachable (a refused connection fails in under a second, over the
#: 3 attempts) and retry throttling and 5xx only a little: the broker retries the whole delivery.
_CLIENT_CONFIG = Config(
    connect_timeout=2,
    read_timeout=10,
    retries={"mode": "standard", "max_attempts": 3},
)
#: A new PAY_PER_REQUEST table on AWS is ACTIVE within seconds; DynamoDB Local's at once.
_TABLE_WAITER = {"Delay": 1, "MaxAttempts": 60}
_CONDITION_FAILED = "ConditionalCheckFailedException"


#: A session of our own (creating boto3's default session from several threads is unsafe), made
#: at import: a process forked from the warm template inherits its loaded service models, so
#: building the client costs milliseconds instead of ~0.1 s.
_SESSION = boto3.session.Session()


def warm_up() -> None:
    """Load the DynamoDB service model into the session; no request is made."""
    _SESSION.client(
        "dynamodb",
        region_name="us-east-1",
        endpoint_url="http://127.0.0.1:1",
        aws_access_key_id="warm",
        aws_secret_access_key="warm",
    )


@cache
def _client(endpoint: str | None, region: str) -> Any:
    """The process's DynamoDB client for this endpoint and region.

    One per process: boto3 clients are thread-safe, and each costs ~0.1 s to build.
    """
    credentials = {}
    if endpoint is not None and EnvProvider().load() is None:
        # DynamoDB Local checks that requests are signed, not by whom: any keys will do.
        credentials = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}
    return _SESSION.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name=region,
        config=_CLIENT_CONFIG,
        **credentials,
    )


class DynamoTable(Table):
    """A :class:`Table` in one DynamoDB table; see the module docstring for the key design.

    Safe to share between threads. Use :meth:`open` rather than the constructor.

    :param client: a boto3 DynamoDB client.
    :param name: the table's name.
    :param endpoint: the endpoint URL, or None for AWS's own (only used in error messages).
    """

    def __init__(self, client: Any, name: str, endpoint: str | None) -> None:
        self.client = client
        self.name = name
        self.endpoint = endpoint
        self._ready = False
        self._ready_lock = threading.Lock()

    @classmethod
    def open(cls, settings: Settings, service: str) -> "DynamoTable":
        """Open the table of `service` (`operations` or `users`); makes no request yet.

        :param settings: the endpoint (None ⇒ AWS), the region and the table-name prefix.
        :param service: the owning service; the table is `<prefix><service>`.
        :return: the table; it is created on the first request if missing.
        :raises StoreError: the endpoint or region is malformed, or the credentials are partial.
        """
        endpoint = settings.dynamodb_endpoint
        try:
            client = _client(endpoint, settings.aws_region)
        except (BotoCoreError, ValueError) as exc:
            raise StoreError(
                f"cannot make a DynamoDB client for endpoint {endpoint or 'AWS'} in region"
                f" {settings.aws_region!r}: {exc}; expected DYNAMODB_ENDPOINT to be a URL such as"
                " http://127.0.0.1:8000 (or unset for AWS), AWS_REGION a region name, and the"
                " AWS_* credential variables complete"
            ) from exc
        return cls(client, f"{settings.dynamodb_table_prefix}{service}", endpoint)

    def put_if_absent(self, record: Record) -> Record:
        """See :meth:`Table.put_if_absent`; one PutItem with `attribute_not_exists(id)`."""
        try:
            self._request(
                "put_item",
                Item=_item(record),
                ConditionExpression="attribute_not_exists(id)",
                # The failed condition returns the stored item: no second read, and no window.
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:  # only a failed condition gets here; see _request
            return _record(exc.response["Item"])
        return record

    def get(self, record_id: str) -> Record | None:
        """See :meth:`Table.get`; a strongly consistent GetItem."""
        response = self._request("get_item", Key={"id": {"S": record_id}}, ConsistentRead=True)
        return _record(response["Item"]) if "Item" in response else None

    def replace_if_status(self, record: Record, expected_status: str) -> bool:
        """See :meth:`Table.replace_if_status`; one PutItem with `#status = :expected`."""
        try:
            self._request(
                "put_item",
                Item=_item(record),
                ConditionExpression="#status = :expected",
                # `status` is a DynamoDB reserved word: it must be named through a placeholder.
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={":expected": {"S": expected_status}},
            )
        except ClientError:  # only a failed condition gets here; see _request
            return False
        return True

    def with_status(self, status: str, limit: int) -> list[Record]:
        """See :meth:`Table.with_status`; a Scan filtered on the status, page by page.

        A Scan reads the whole table: fine for the sweep's one call a minute on a table of
        operations; a much larger table would want a sparse index on the pending ones.
        """
        found: list[Record] = []
        params: dict[str, Any] = {
            "FilterExpression": "#status = :status",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": {":status": {"S": status}},
            "ConsistentRead": True,
        }
        while len(found) < limit:
            response = self._request("scan", **params)
            found.extend(_record(item) for item in response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                break
            params["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return found[:limit]

    def ensure_exists(self) -> None:
        """Create the table if it is missing and wait until it is ACTIVE (once per process).

        :raises StoreError: DynamoDB is unreachable, refused, or the table never became ACTIVE.
        """
        if self._ready:
            return
        with self._ready_lock:
            if self._ready:
                return
            try:
                self._create_if_missing()
            except (BotoCoreError, ClientError) as exc:
                raise self._error(f"opening table {self.name}", exc) from exc
            self._ready = True

    def _create_if_missing(self) -> None:
        try:
            status = self.client.describe_table(TableName=self.name)["Table"]["TableStatus"]
        except self.client.exceptions.ResourceNotFoundException:
            # Another process may create it between our describe and our create: that is fine.
            with contextlib.suppress(self.client.exceptions.ResourceInUseException):
                self.client.create_table(
                    TableName=self.name,
                    AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                    KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                    BillingMode="PAY_PER_REQUEST",
                )
            status = "CREATING"
        if status != "ACTIVE":
            self.client.get_waiter("table_exists").wait(
                TableName=self.name, WaiterConfig=_TABLE_WAITER
            )

    def _request(self, operation: str, **params: Any) -> dict[str, Any]:
        """Call `operation` (a client method, e.g. `put_item`) on this table.

        :return: DynamoDB's response.
        :raises ClientError: only ConditionalCheckFailedException: the caller's answer.
        :raises StoreError: any other failure, naming the table, the endpoint and what to do.
        """
        self.ensure_exists()
        method = getattr(self.client, operation)
        try:
            response: dict[str, Any] = method(TableName=self.name, **params)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code == _CONDITION_FAILED:
                raise
            if code == "ResourceNotFoundException":
                self._ready = False  # e.g. DynamoDB Local restarted: the next request recreates it
            raise self._error(f"{operation} on table {self.name}", exc) from exc
        except BotoCoreError as exc:
            raise self._error(f"{operation} on table {self.name}", exc) from exc
        return response

    def _error(self, what: str, exc: BotoCoreError | ClientError) -> StoreError:
        where = self.endpoint or f"AWS DynamoDB in {self.client.meta.region_name}"
        if isinstance(exc, BotoConnectionError | HTTPClientError):
            found = f"cannot reach {where}: {exc}"
            fix = (
                "is DynamoDB Local running? Start it with `make dynamodb`"
                if self.endpoint
                else "check the network and AWS_REGION, or set DYNAMODB_ENDPOINT"
            )
        elif isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            found = f"{where} answered {error.get('Code')}: {error.get('Message')}"
            fix = (
                "the table was missing (DynamoDB Local restarted?); the next request creates it"
                if error.get("Code") == "ResourceNotFoundException"
                else "check DYNAMODB_TABLE_PREFIX, AWS_REGION and the AWS credentials"
            )
        else:
            found = f"{type(exc).__name__} at {where}: {exc}"
            fix = "check DYNAMODB_ENDPOINT, AWS_REGION and the AWS credentials"
        return StoreError(f"DynamoDB {what} failed: {found}; {fix}")


def _item(record: Record) -> dict[str, Any]:
    return {
        "id": {"S": record["id"]},
        "status": {"S": record["status"]},
        "body": {"S": json.dumps(record, separators=(",", ":"))},
    }


def _record(item: dict[str, Any]) -> Record:
    record: Record = json.loads(item["body"]["S"])
    return record


def main() -> int:
    """Create every service's table now rather than on first use: `make dynamodb-tables`.

    Reads the functions' settings (DYNAMODB_ENDPOINT, DYNAMODB_TABLE_PREFIX, AWS_REGION); with no
    DYNAMODB_ENDPOINT the tables are made in AWS.

    :return: the exit status: 0 when every table is ACTIVE, 1 with the reason on stderr.
    """
    try:
        settings = Settings.from_env({**os.environ, "FUNCTION": "dynamodb-tables"})
        for service in SERVICES:
            table = DynamoTable.open(settings, service)
            table.ensure_exists()
            print(f"table {table.name} is ACTIVE at {table.endpoint or 'AWS'}")
    except FunctionError as exc:
        print(f"dynamodb-tables: {exc.message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Every setting a function reads, from the environment, in one place.

Precedence: the environment (set by the Knative Service manifest or the local runtime) over the
defaults below. Nothing else in `functions` reads `os.environ`.
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from functions.errors import ConfigError

#: Store backends by the value of `STORE`.
STORE_BACKENDS = ("sqlite", "dynamodb")


@dataclass(frozen=True)
class Settings:
    """A function process's configuration."""

    #: Which handler to serve: the Knative Service name, e.g. `user-approve`.
    function: str
    #: `sqlite` (embedded, default) or `dynamodb`.
    store: str = "sqlite"
    #: Folder of the SQLite files, one per service.
    data_dir: Path = Path(".data")
    #: Where operation-create sends events: the broker ingress (Knative's SinkBinding sets it).
    sink: str | None = None
    #: DynamoDB endpoint, e.g. `http://127.0.0.1:8000` for DynamoDB Local; None = AWS's own.
    dynamodb_endpoint: str | None = None
    #: Prefix of the DynamoDB table names (`<prefix>operations`, `<prefix>users`).
    dynamodb_table_prefix: str = "knuser-"
    aws_region: str = "us-east-1"
    #: Largest request body accepted, in bytes; larger gets 413.
    max_body_bytes: int = 64 * 1024
    #: Seconds operation-create waits for the broker to accept an event; past it the operation
    #: stays pending with its event stored, and the sweep publishes it again.
    sink_timeout: float = 3.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        """Read the settings from `env` (default: the process environment).

        :raises ConfigError: when `FUNCTION` is missing or a value is invalid.
        """
        env = os.environ if env is None else env
        function = env.get("FUNCTION") or env.get("K_SERVICE")
        if not function:
            raise ConfigError("FUNCTION is not set: expected the name of a function to serve")
        store = env.get("STORE", "sqlite")
        if store not in STORE_BACKENDS:
            raise ConfigError(f"STORE must be one of {', '.join(STORE_BACKENDS)}; found {store!r}")
        try:
            max_body = int(env.get("MAX_BODY_BYTES", str(cls.max_body_bytes)))
            sink_timeout = float(env.get("SINK_TIMEOUT_SECONDS", str(cls.sink_timeout)))
        except ValueError as exc:
            raise ConfigError(f"expected a number: {exc}") from exc
        return cls(
            function=function,
            store=store,
            data_dir=Path(env.get("DATA_DIR", ".data")),
            sink=env.get("K_SINK") or None,
            dynamodb_endpoint=env.get("DYNAMODB_ENDPOINT") or None,
            dynamodb_table_prefix=env.get("DYNAMODB_TABLE_PREFIX", cls.dynamodb_table_prefix),
            aws_region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or cls.aws_region,
            max_body_bytes=max_body,
            sink_timeout=sink_timeout,
        )

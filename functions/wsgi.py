"""gunicorn's entry point: `gunicorn 'functions.wsgi:create_app()'`.

The function is chosen by `FUNCTION` (the Knative Service name); see :mod:`functions.settings`.
"""

import json
import logging
import os
import sys
import time

from flask import Flask

from functions import app, tracing
from functions.registry import load_function
from functions.settings import Settings

_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with every `extra` field (e.g. `operationid`) as a key."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "service": os.environ.get("K_SERVICE", ""),
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging() -> None:
    """Send the functions' logs to stderr as JSON lines, at `LOG_LEVEL` (default WARNING)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("functions")
    logger.handlers[:] = [handler]
    logger.setLevel(os.environ.get("LOG_LEVEL", "WARNING").upper())
    logger.propagate = False


def warm_up() -> None:
    """Load what every function needs, so processes forked from a warm template start fast."""
    import sqlite3  # noqa: F401

    import urllib3  # noqa: F401

    import functions.gunicorn_worker  # noqa: F401
    from functions.catalog import load_catalog
    from functions.operation_create import create_user_schema
    from functions.stores import dynamodb

    load_catalog()
    create_user_schema()
    tracing.warm_up(os.environ)
    dynamodb.warm_up()
    app.warm_up()


def create_app() -> Flask:
    """Build the app of the function named by the environment."""
    configure_logging()
    settings = Settings.from_env()
    tracing.configure(settings.function, os.environ)
    return app.create_app(load_function(settings), settings)

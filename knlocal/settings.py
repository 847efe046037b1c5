"""Every setting of the local runtime, read from the environment in one place.

Precedence: command-line flags (see `knlocal run --help`) over environment variables over the
application's `[tool.knlocal]` (knlocal/appconfig.py) over the defaults below. Each variable is
listed in the README.
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, ClassVar

from knlocal.appconfig import application_settings
from knlocal.errors import ConfigError

#: Valid values of the switches, in the order the README lists them.
BROKERS = ("inmemory", "kafka", "rabbitmq", "nats")
STORES = ("sqlite", "dynamodb")
PROFILES = ("local", "knative")


@dataclass(frozen=True)
class Settings:
    """The local runtime's configuration."""

    #: Broker backend: selects `brokers/<broker>/` (env BROKER).
    broker: str = "inmemory"
    #: Store backend of the functions (env STORE).
    store: str = "sqlite"
    #: `local` adds knative/local/ (the local cluster's config-autoscaler: start at zero, short
    #: windows); `knative` runs with Knative's defaults, as a stock install.
    profile: str = "local"
    #: The folder holding knative/, brokers/ and triggers/ (env MANIFESTS).
    manifests: Path = Path(".")
    #: Address everything binds to (env HOST); loopback unless the user asks otherwise.
    host: str = "127.0.0.1"
    #: The public API's ingress (env INGRESS_PORT).
    ingress_port: int = 8080
    #: The broker ingress, `POST /<namespace>/<broker>` (env BROKER_PORT).
    broker_port: int = 8081
    #: Runtime metrics and status, `/metrics` and `/status` (env ADMIN_PORT).
    admin_port: int = 8082
    #: SQLite files, function logs (env DATA_DIR).
    data_dir: Path = Path(".data")
    #: Kafka for BROKER=kafka (env KAFKA_BOOTSTRAP_SERVERS); overrides the ConfigMap's address,
    #: which names the cluster's Kafka.
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    #: RabbitMQ for BROKER=rabbitmq (env RABBITMQ_URL); stands in for the RabbitmqCluster the
    #: Broker's RabbitmqBrokerConfig references on a cluster.
    rabbitmq_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    #: NATS with JetStream for BROKER=nats (env NATS_URL); overrides config-nats's cluster URL.
    nats_url: str = "nats://127.0.0.1:4222"
    #: DynamoDB for STORE=dynamodb (env DYNAMODB_ENDPOINT).
    dynamodb_endpoint: str = "http://127.0.0.1:8000"
    #: The WSGI app every Knative Service's container runs (the image's gunicorn target), e.g.
    #: `package.module:create_app()` (env KNLOCAL_WSGI_APP; the application's `wsgi-app`).
    wsgi_app: str = ""
    #: The gunicorn settings the instances run with, e.g. `python:package.gunicorn_conf` (env
    #: KNLOCAL_GUNICORN_CONFIG; the application's `gunicorn-config`); empty: gunicorn's own.
    gunicorn_config: str = ""
    #: CloudEvents extensions every runtime log line about an event names (env
    #: KNLOCAL_CORRELATION_EXTENSIONS, comma-separated; the application's
    #: `correlation-extensions`).
    correlation_extensions: tuple[str, ...] = ()
    #: Function log level (env LOG_LEVEL).
    log_level: str = "warning"
    #: Seconds a client of any listener has to send its request headers, and again its body
    #: (env READ_TIMEOUT_SECONDS); also how long an idle keep-alive connection stays open.
    read_timeout: int = 60
    #: A fault plan (YAML) to inject in the event path (env FAULTS); none by default.
    faults: Path | None = None

    _ENV: ClassVar[dict[str, str]] = {
        "broker": "BROKER",
        "store": "STORE",
        "profile": "PROFILE",
        "manifests": "MANIFESTS",
        "host": "HOST",
        "ingress_port": "INGRESS_PORT",
        "broker_port": "BROKER_PORT",
        "admin_port": "ADMIN_PORT",
        "data_dir": "DATA_DIR",
        "kafka_bootstrap_servers": "KAFKA_BOOTSTRAP_SERVERS",
        "rabbitmq_url": "RABBITMQ_URL",
        "nats_url": "NATS_URL",
        "dynamodb_endpoint": "DYNAMODB_ENDPOINT",
        "wsgi_app": "KNLOCAL_WSGI_APP",
        "gunicorn_config": "KNLOCAL_GUNICORN_CONFIG",
        "correlation_extensions": "KNLOCAL_CORRELATION_EXTENSIONS",
        "log_level": "LOG_LEVEL",
        "read_timeout": "READ_TIMEOUT_SECONDS",
        "faults": "FAULTS",
    }

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> "Settings":
        """Read the settings from `env` (default: the process environment), then `overrides`.

        :param overrides: values from command-line flags; None means "not given".
        :raises ConfigError: a value is not one of the valid choices or not a number.
        """
        env = os.environ if env is None else env
        given: dict[str, Any] = {}
        for field in fields(cls):
            raw = overrides.get(field.name)
            if raw is None:
                raw = env.get(cls._ENV[field.name]) or None
            if raw is not None:
                given[field.name] = raw
        application = application_settings(Path(given.get("manifests", cls.manifests)))
        values: dict[str, Any] = {}
        for field in fields(cls):
            raw = given.get(field.name, application.get(field.name))
            if raw is not None:
                values[field.name] = _convert(field.name, cls._ENV[field.name], raw, field.type)
        settings = replace(cls(), **values)
        if not settings.dynamodb_endpoint.startswith(("http://", "https://")):
            raise ConfigError(
                f"DYNAMODB_ENDPOINT={settings.dynamodb_endpoint!r} is not a URL; expected e.g."
                " http://127.0.0.1:8000"
            )
        if settings.read_timeout < 1:
            raise ConfigError(
                f"READ_TIMEOUT_SECONDS must be at least 1; found {settings.read_timeout}"
            )
        for name, choices in (("broker", BROKERS), ("store", STORES), ("profile", PROFILES)):
            value = getattr(settings, name)
            if value not in choices:
                raise ConfigError(
                    f"{cls._ENV[name]}={value!r} is not valid; expected one of {', '.join(choices)}"
                )
        return settings


def _convert(name: str, variable: str, raw: Any, kind: Any) -> Any:
    if kind in (int, "int"):
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{variable} must be a whole number; found {raw!r}") from None
    if kind in (Path, "Path", Path | None, "Path | None"):
        return Path(raw)
    if kind in (tuple[str, ...], "tuple[str, ...]"):
        return tuple(part.strip() for part in str(raw).split(",") if part.strip())
    return str(raw)

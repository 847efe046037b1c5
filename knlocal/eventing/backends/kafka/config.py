"""What every process of the Kafka data plane shares: names, settings, client options.

The topic and consumer-group names and the producer's and consumers' settings are Knative's
(knative-semantics.md §3.1); where a value differs for speed, its comment says why and by how
much it was measured.
"""

import socket
import time
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar

from kafka.errors import KafkaError, RetriableError

from knlocal.apis.eventing import Broker
from knlocal.errors import BackendError, ConfigError

#: ConfigMap keys of the Kafka broker (`kafka-broker-config`, §3.1).
PARTITIONS_KEY: Final = "default.topic.partitions"
REPLICATION_FACTOR_KEY: Final = "default.topic.replication.factor"
TOPIC_CONFIG_PREFIX: Final = "default.topic.config."

#: Records handed to the runtime and not yet acknowledged, per subscription. At this bound the
#: consumer stops fetching until acknowledgements come back: the bound on the receive queue.
MAX_UNACKED: Final = 1000
#: Records one poll returns at most (Knative's dispatcher uses 50; bigger batches cost less
#: Python per record, and MAX_UNACKED bounds what is in flight anyway).
MAX_POLL_RECORDS: Final = 500
#: How long a poll waits for records before acknowledgements are applied and committed.
POLL_TIMEOUT_MS: Final = 100
#: Pause after a poll that returned records, so that under load each poll returns a batch: each
#: poll costs kafka-python a fetch round trip and several hand-offs between threads, whatever it
#: returns. Measured here (bench/, 60 users/s on BROKER=kafka, a loaded machine, one run each):
#: 5 ms → 20 ms cut the dispatcher process from 3.97 to 3.27 CPU ms per user and Kafka's JVM
#: from 1.92 to 1.40. Costs at most this much latency per hop.
POLL_BATCH_SECONDS: Final = 0.02
#: Least time between two commits of a subscription: a commit is a round trip to Kafka that the
#: poll thread waits for; under load, committing after every poll would delay every fetch. A
#: crash redelivers at most this much acknowledged work (at least once, §3.1); a rebalance
#: commits the acknowledged prefix at once (on revoke).
COMMIT_INTERVAL_SECONDS: Final = 0.5
#: Most time a member keeps the count of the records its prefilter dropped before it tells the
#: runtime (with the next records handed over, or alone after this long): the Trigger's status
#: counts them as filtered out at most this late, for one frame per interval at most.
PREFILTER_REPORT_SECONDS: Final = 1.0
#: Bound on connecting, admin requests and commits; Kafka runs on loopback.
REQUEST_TIMEOUT_MS: Final = 5000
#: Knative's receiver gives a record this long to be stored before the ingress answers 503
#: (`delivery.timeout.ms`, §3.1): a Kafka restart within it costs latency, not events.
DELIVERY_TIMEOUT_MS: Final = 120_000
#: Knative's producer sends at once (`linger.ms=0`); a few ms let a burst share one request per
#: partition instead of one request per event, for at most that much latency per hop.
LINGER_MS: Final = 5

_T = TypeVar("_T")


def topic_name(broker: Broker) -> str:
    """The topic of a Broker, named as Knative names it (§3.1)."""
    return f"knative-broker-{broker.namespace}-{broker.name}"


def topic_settings(broker: Broker, config: Mapping[str, str]) -> dict[str, Any]:
    """The topic's partitions, replication factor and configs, from the Broker's ConfigMap.

    :raises ConfigError: the partitions or replication factor is missing or not a number ≥ 1.
    """
    where = f"ConfigMap {broker.config.name if broker.config else '?'} of Broker"
    where += f" {broker.namespace}/{broker.name}"
    numbers = {}
    for key in (PARTITIONS_KEY, REPLICATION_FACTOR_KEY):
        value = config.get(key)
        if value is None or not str(value).isdigit() or int(value) < 1:
            raise ConfigError(
                f"{where}: {key} must be a whole number of at least 1; found {value!r}"
            )
        numbers[key] = int(value)
    return {
        "num_partitions": numbers[PARTITIONS_KEY],
        "replication_factor": numbers[REPLICATION_FACTOR_KEY],
        "configs": {
            key.removeprefix(TOPIC_CONFIG_PREFIX): str(value)
            for key, value in config.items()
            if key.startswith(TOPIC_CONFIG_PREFIX)
        },
    }


def client_config(servers: str, client_id: str) -> dict[str, Any]:
    """The settings every kafka-python client of the data plane shares.

    :param servers: the bootstrap servers.
    :param client_id: how Kafka's logs name the client.
    :return: keyword arguments for a kafka-python client.
    """
    return {
        "bootstrap_servers": servers,
        "client_id": client_id,
        "bootstrap_timeout_ms": REQUEST_TIMEOUT_MS,
        # Reconnect within a second after Kafka restarts (kafka-python's default backs off up
        # to 30 s).
        "reconnect_backoff_max_ms": 1000,
    }


def retrying(servers: str, call: Callable[[], _T], what: str) -> _T:
    """Run a blocking client call, retrying Kafka's retriable errors for a few seconds.

    A fresh Kafka answers "coordinator not available" until its offsets topic exists.

    :param servers: the Kafka address, for the error message.
    :param call: the call, run in the calling thread.
    :param what: what it does, for the error message.
    :return: what the call returned.
    :raises BackendError: the call failed for good.
    """
    deadline = time.monotonic() + REQUEST_TIMEOUT_MS / 1000
    while True:
        try:
            return call()
        except RetriableError as exc:
            if time.monotonic() >= deadline:
                raise BackendError(f"{what} on Kafka at {servers} failed: {exc}") from exc
            time.sleep(0.1)
        except KafkaError as exc:
            raise BackendError(f"{what} on Kafka at {servers} failed: {exc}") from exc


def connect_any(servers: str) -> None:
    """Open and close a TCP connection to the first of `servers` that accepts one.

    :raises OSError: none accepts a connection.
    """
    error = OSError(f"no bootstrap server in {servers!r}")
    for server in servers.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            socket.create_connection((host, int(port)), timeout=REQUEST_TIMEOUT_MS / 1000).close()
            return
        except (OSError, ValueError) as exc:
            error = OSError(f"{server.strip()}: {exc}")
    raise error

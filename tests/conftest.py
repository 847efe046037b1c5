"""Fixtures shared by every test; the servers behind them are in tests/servers.py."""

from collections.abc import Iterator

import pytest

from tests.servers import PrivateServer, require_kafka


@pytest.fixture(scope="module")
def private_kafka() -> Iterator[PrivateServer]:
    """A Kafka of the test module's own (tools/kafka.sh on free ports), for tests that kill it
    or that must not share the manifests' fixed topic and group names with another runtime."""
    require_kafka()  # the shared one runs: Java and Kafka's jars are there to start another
    kafka = PrivateServer("kafka")
    kafka.start()
    try:
        yield kafka
    finally:
        kafka.stop()

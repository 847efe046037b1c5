"""The Kafka receiver process: the Broker's producer, as Knative's `kafka-broker-receiver`.

`python -m knlocal.eventing.backends.kafka.receiver <fd>`, started by the runtime
(:mod:`knlocal.eventing.backends.kafka.supervisor`). It creates the topic, then produces every
record the runtime sends (binary mode, already encoded) with Knative's producer settings
(`acks=all`, no idempotence, retries until the delivery timeout, knative-semantics.md §3.1),
and tells the runtime once Kafka acknowledged each — so the ingress answers 202 only for stored
events, and 503 otherwise (§2.2).

Threads: the main thread reads the runtime's frames and calls `send`, which appends the record
to a batch; kafka-python's I/O thread calls back once a batch is acknowledged; one settle
thread sends the acknowledgements of whatever was settled since its last frame in one frame.
"""

import collections
import contextlib
import logging
import sys
import threading
from typing import Any

from kafka import KafkaAdminClient, KafkaProducer
from kafka.errors import KafkaError, TopicAlreadyExistsError

from knlocal.errors import BackendError
from knlocal.eventing.backends.kafka.config import (
    DELIVERY_TIMEOUT_MS,
    LINGER_MS,
    REQUEST_TIMEOUT_MS,
    client_config,
    connect_any,
    retrying,
)
from knlocal.eventing.backends.kafka.wire import Channel, Message, run_process

log = logging.getLogger("knlocal.eventing")


class Settler:
    """Sends the runtime the outcome of records, one frame per batch of outcomes.

    :param channel: the link to the runtime.
    """

    def __init__(self, channel: Channel) -> None:
        self._channel = channel
        self._settled: collections.deque[tuple[int, str | None]] = collections.deque()
        self._ready = threading.Event()
        threading.Thread(target=self._run, name="settle", daemon=True).start()

    def settle(self, ident: int, error: BaseException | None) -> None:
        """Report record `ident` stored (no error) or not (from any thread)."""
        self._settled.append((ident, None if error is None else str(error) or repr(error)))
        self._ready.set()

    def _run(self) -> None:
        while True:
            self._ready.wait()
            self._ready.clear()
            batch = []
            while self._settled:
                batch.append(self._settled.popleft())
            if batch:
                self._channel.send([("settled", batch)])


def open_topic(
    servers: str, topic: str, settings: dict[str, Any], where: str
) -> tuple[KafkaAdminClient, KafkaProducer, list[int]]:
    """Create the topic if needed (Knative leaves an existing one as it is), connect a producer.

    :param where: the Broker, for the error message.
    :return: the admin client, the producer and the topic's partitions.
    :raises BackendError: Kafka cannot be reached or refused the topic.
    """
    client_id = f"knlocal-{topic}"
    try:
        # A plain connect first: it fails at once where kafka-python would retry until its
        # bootstrap timeout, and leave its sockets open.
        connect_any(servers)
        admin = KafkaAdminClient(**client_config(servers, client_id))
    except (OSError, KafkaError) as exc:
        raise BackendError(
            f"cannot reach Kafka at {servers} ({exc}) for {where}: start it with `make kafka`,"
            " or set KAFKA_BOOTSTRAP_SERVERS to a running Kafka"
        ) from exc

    def create() -> None:
        with contextlib.suppress(TopicAlreadyExistsError):
            admin.create_topics(
                {topic: settings}, timeout_ms=REQUEST_TIMEOUT_MS, wait_for_metadata=True
            )

    retrying(servers, create, f"creating topic {topic}")
    producer = KafkaProducer(
        **client_config(servers, client_id),
        # Knative's receiver (§3.1): acks=all, no idempotence, retries until the delivery
        # timeout; so a record is acknowledged only once every in-sync replica has it.
        acks="all",
        enable_idempotence=False,
        delivery_timeout_ms=DELIVERY_TIMEOUT_MS,
        linger_ms=LINGER_MS,
    )
    # Also loads the topic's metadata, so that `send` never waits for it.
    partitions = retrying(servers, lambda: producer.partitions_for(topic), f"reading topic {topic}")
    return admin, producer, sorted(partitions)


def serve(channel: Channel, opening: Message) -> int:
    """Open as `opening` says, then produce until the runtime closes or goes away."""
    _, servers, topic, settings, where = opening
    try:
        admin, producer, partitions = open_topic(servers, topic, settings, where)
    except BackendError as exc:
        channel.send([("failed", str(exc))])
        return 1
    channel.send([("opened", partitions)])
    settler = Settler(channel)
    while (messages := channel.receive()) is not None:
        for message in messages:
            if message[0] == "close":
                producer.close(timeout=REQUEST_TIMEOUT_MS / 1000)
                admin.close()
                return 0
            _, ident, headers, key, value = message
            try:
                sent = producer.send(topic, value=value, key=key, headers=headers)
            except KafkaError as exc:
                settler.settle(ident, exc)
                continue
            sent.add_callback(lambda _, ident=ident: settler.settle(ident, None))
            sent.add_errback(lambda exc, ident=ident: settler.settle(ident, exc))
    # The runtime is gone: what it waited for has no one to tell.
    producer.close(timeout=1)
    return 0


if __name__ == "__main__":
    sys.exit(run_process(sys.argv, serve))

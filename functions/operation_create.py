"""operation-create: accept `POST /users`, store a pending operation, emit the creation request.

This is the synchronous-to-asynchronous conversion: the client gets `202 Accepted` and the
operation's URL at once; the rest of the flow runs on the broker.

The operation is the unit of truth (a transactional outbox): the pending operation and the event
that starts its flow are stored in one record, by one atomic write, before anything is sent. The
event is then published; if the broker cannot take it now, the client still gets `202` and the
operation stays pending. `POST /sweep`, called every 5 minutes by the PingSource `operation-sweep`
(sources/operation-sweep.yaml), publishes the stored event of every operation still pending after
a while again (the handlers are idempotent, so a flow driven twice makes one user) and fails only
the operations that did not finish within a bounded time.
"""

import calendar
import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from functions import jsonbody, tracing
from functions.catalog import USER_CREATION_REQUESTED, load_catalog
from functions.ce import BaseCloudEvent, decode_http, encode_structured, new_event
from functions.contract import HttpRequest, HttpResponse, Route
from functions.errors import (
    IdempotencyKeyReused,
    InvalidEvent,
    InvalidRequest,
    NotFound,
    ServiceUnavailable,
    UnsupportedMediaType,
)
from functions.schema import Schema
from functions.stores.base import OperationStore, Record

log = logging.getLogger("functions")

ROUTES = (Route("POST", "/users"), Route("POST", "/sweep"))

#: Operation ids derived from a client's `Idempotency-Key` live in this namespace.
_IDEMPOTENCY_NAMESPACE = uuid.UUID("0b7e8c0e-3f3a-4a53-9a6f-9c1f4d1e7c21")
#: The longest `Idempotency-Key` accepted (functions/openapi.yaml says the same).
MAX_IDEMPOTENCY_KEY = 200
#: The type of the events a PingSource sends (Knative's `v1.PingSourceEventType`).
PING_EVENT_TYPE = "dev.knative.sources.ping"
#: Most pending operations one sweep looks at; the next sweep takes the rest.
SWEEP_LIMIT = 1000

Publish = Callable[[BaseCloudEvent], None]


def serve(request: HttpRequest, *, operations: OperationStore, publish: Publish) -> HttpResponse:
    """Route operation-create's requests: `POST /users` to :func:`handle`, `POST /sweep` to
    :func:`sweep`."""
    if request.path == "/users":
        return handle(request, operations=operations, publish=publish)
    if request.path == "/sweep":
        return sweep(request, operations=operations, publish=publish)
    raise NotFound(f"no route {request.method} {request.path} on operation-create")


def handle(request: HttpRequest, *, operations: OperationStore, publish: Publish) -> HttpResponse:
    """Create a user asynchronously.

    :param request: `POST /users` with a JSON body `{"name": "…"}`; an optional `Idempotency-Key`
        header makes retries of the same request return the same operation.
    :param operations: the operation service's store.
    :param publish: sends an event to the broker; returns once the broker accepted it.
    :return: `202` with the pending operation and its `Location`, also when the broker cannot
        take the event now: it is stored with the operation, and the sweep publishes it later.
    :raises InvalidRequest: the body or the `Idempotency-Key` is invalid; nothing is stored.
    :raises IdempotencyKeyReused: the key names an operation of another request (422).
    :raises StoreError: the operation store is down (503); nothing was accepted.
    """
    name = parse_create_user(request)
    key = request.headers.get("Idempotency-Key")
    if key is not None and not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY:
        raise InvalidRequest(
            f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} characters; found {len(key)}"
        )
    operation_id = str(uuid.uuid5(_IDEMPOTENCY_NAMESPACE, key) if key else uuid.uuid4())
    event = new_event(
        USER_CREATION_REQUESTED,
        load_catalog().source,
        {"operationId": operation_id, "name": name},
        operation_id=operation_id,
    )
    outbox = json.loads(encode_structured(event)[1])
    operation = operations.create(operation_id, "user.create", {"name": name}, outbox)
    if operation["kind"] != "user.create" or operation["request"] != {"name": name}:
        raise IdempotencyKeyReused(
            f"Idempotency-Key {key!r} was used for another request (operation {operation_id});"
            " expected the same body as that request, or a new key for a new request"
        )
    if operation["status"] == "pending":
        # A retry of a pending operation sends its stored event again: the same event id.
        try:
            publish(stored_event(operation))
        except ServiceUnavailable as exc:
            log.warning("operation %s stays pending, the sweep re-sends it: %s", operation_id, exc)
    return HttpResponse(
        202, public_operation(operation), {"Location": f"/operations/{operation_id}"}
    )


def stored_event(operation: Record) -> BaseCloudEvent:
    """The event stored with an operation (its outbox), ready to publish again."""
    if operation.get("outbox") is None:  # stored before operations kept their event
        return new_event(
            USER_CREATION_REQUESTED,
            load_catalog().source,
            {"operationId": operation["id"], "name": operation["request"]["name"]},
            operation_id=operation["id"],
        )
    body = json.dumps(operation["outbox"]).encode()
    return decode_http({"Content-Type": "application/cloudevents+json"}, body)


@dataclass(frozen=True)
class SweepPolicy:
    """When the sweep re-drives a pending operation and when it gives up; the ping's `data`."""

    #: A pending operation older than this is published again.
    stalled_after_seconds: float
    #: A pending operation older than this is failed with the reason.
    fail_after_seconds: float

    @classmethod
    def from_data(cls, data: Any) -> "SweepPolicy":
        """Read `{"stalledAfterSeconds": s, "failAfterSeconds": f}` (0 < s < f).

        :raises InvalidEvent: anything else.
        """
        if isinstance(data, bytes | str):
            try:
                data = jsonbody.loads(data, what="ping data")
            except jsonbody.JsonBodyError as exc:
                raise InvalidEvent(str(exc)) from exc
        expected = 'expected data {"stalledAfterSeconds": s, "failAfterSeconds": f}, 0 < s < f'
        if not isinstance(data, dict) or set(data) != {"stalledAfterSeconds", "failAfterSeconds"}:
            raise InvalidEvent(f"{expected}; found {data!r}")
        stalled, fail = data["stalledAfterSeconds"], data["failAfterSeconds"]
        numbers = all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in (stalled, fail)
        )
        if not numbers or not 0 < stalled < fail:
            raise InvalidEvent(f"{expected}; found {data!r}")
        return cls(float(stalled), float(fail))


def sweep(request: HttpRequest, *, operations: OperationStore, publish: Publish) -> HttpResponse:
    """Re-drive stalled operations; fail those that did not finish in time.

    :param request: a PingSource's event (type `dev.knative.sources.ping`), binary or structured,
        whose data is a :class:`SweepPolicy`.
    :return: `200` with the counts: pending operations seen, re-published, failed, and those left
        for the next sweep because the broker cannot be reached.
    :raises InvalidEvent: the request is not a ping event with a valid policy (400).
    """
    event = decode_http(request.headers, request.body)
    if event.get_type() != PING_EVENT_TYPE:
        raise InvalidEvent(f"expected an event of type {PING_EVENT_TYPE}; found {event.get_type()}")
    policy = SweepPolicy.from_data(event.get_data())
    now = time.time()
    counts = {"pending": 0, "republished": 0, "failed": 0, "unpublished": 0}
    broker_down: str | None = None
    for operation in operations.pending(SWEEP_LIMIT):
        counts["pending"] += 1
        age = now - calendar.timegm(time.strptime(operation["createdAt"], "%Y-%m-%dT%H:%M:%SZ"))
        if age >= policy.fail_after_seconds:
            reason = f"the flow did not finish within {policy.fail_after_seconds:g} s"
            if (transition := operations.fail(operation["id"], reason)) and transition.changed:
                counts["failed"] += 1
        elif age >= policy.stalled_after_seconds:
            if broker_down is None:
                try:
                    publish(stored_event(operation))
                    counts["republished"] += 1
                    continue
                except ServiceUnavailable as exc:
                    broker_down = exc.message  # do not wait on it once per operation
            counts["unpublished"] += 1
    if counts["republished"] or counts["failed"] or broker_down:
        log.warning("sweep: %s%s", counts, f"; broker: {broker_down}" if broker_down else "")
    return HttpResponse(200, counts)


def parse_create_user(request: HttpRequest) -> str:
    """Validate a create-user request against the OpenAPI schema.

    :return: the name, with surrounding white space removed.
    :raises UnsupportedMediaType: the body is not declared as JSON.
    :raises InvalidRequest: the body is not JSON, or fails the schema, or the name is blank.
    """
    content_type = request.headers.get("Content-Type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise UnsupportedMediaType(
            f"expected Content-Type: application/json; found {content_type or 'none'}"
        )
    body = jsonbody.loads(request.body)
    errors = sorted(create_user_schema().errors(body), key=lambda e: list(e.absolute_path))
    if errors:
        where = "/".join(str(p) for p in errors[0].absolute_path)
        # The schema's one `pattern` is the name's "not blank" (openapi.yaml says what blank is).
        problem = "must not be blank" if errors[0].validator == "pattern" else errors[0].message
        raise InvalidRequest(f"invalid body{' at ' + where if where else ''}: {problem}")
    name: str = body["name"].strip()
    return name


def public_operation(record: Record) -> dict[str, Any]:
    """The operation as the public API shows it (see `openapi.yaml`, schema `Operation`)."""
    return {
        "id": record["id"],
        "status": record["status"],
        "createdAt": record["createdAt"],
        "updatedAt": record["updatedAt"],
        "result": record.get("result"),
        "error": record.get("error"),
        # The trace the operation's flow runs in (its stored event's `traceparent`), or None.
        "traceId": tracing.trace_id((record.get("outbox") or {}).get("traceparent")),
    }


@cache
def create_user_schema() -> Schema:
    """The schema ``CreateUserRequest`` (openapi.yaml), built once; wsgi warms it up."""
    spec: Mapping[str, Any] = yaml.safe_load(
        (Path(__file__).parent / "openapi.yaml").read_text(encoding="utf-8")
    )
    return Schema(spec["components"]["schemas"]["CreateUserRequest"], check_formats=False)

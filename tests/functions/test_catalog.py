"""The event catalog: valid schemas, and agreement with the Knative Services and Triggers."""

from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

import functions
from functions.catalog import (
    APPROVAL_DECIDED,
    OPERATION_COMPLETED,
    OPERATION_FAILED,
    USER_CREATED,
    USER_CREATION_REQUESTED,
    load_catalog,
)
from functions.ce import new_event
from functions.errors import InvalidEvent
from knlocal.apis import loader
from knlocal.eventing.classes import KAFKA_BROKER, MT_CHANNEL_BASED_BROKER
from knlocal.eventing.filters import FilterResult, build_trigger_filter
from knlocal.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
OPERATION_ID = "3a9c1e7b-2d4f-4a6b-8c0e-5f7a9b1c3d5e"
USER_ID = "4b0d2f8c-3e5a-4b7c-9d1f-6a8b0c2d4e6f"
USER = {"id": USER_ID, "name": "Ada", "status": "approved", "reason": None}

#: The flow of ARCHITECTURE.md §2, written by hand: type → (producer, consumers).
FLOW: dict[str, tuple[str, frozenset[str]]] = {
    USER_CREATION_REQUESTED: ("operation-create", frozenset({"user-create"})),
    USER_CREATED: ("user-create", frozenset({"user-approve"})),
    APPROVAL_DECIDED: ("user-approve", frozenset({"user-create-response"})),
    OPERATION_COMPLETED: ("user-create-response", frozenset({"operation-update"})),
    OPERATION_FAILED: ("user-create-response", frozenset({"operation-update"})),
}

#: One valid `data` per type, and one that breaks it at a named field.
EXAMPLES: dict[str, tuple[dict[str, Any], dict[str, Any], str]] = {
    USER_CREATION_REQUESTED: (
        {"operationId": OPERATION_ID, "name": "Ada"},
        {"operationId": OPERATION_ID, "name": ""},
        "name",
    ),
    USER_CREATED: (
        {"operationId": OPERATION_ID, "user": {**USER, "status": "approval_pending"}},
        {"operationId": OPERATION_ID, "user": {**USER, "status": "unknown"}},
        "user/status",
    ),
    APPROVAL_DECIDED: (
        {"operationId": OPERATION_ID, "userId": USER_ID, "approved": False, "reason": "no"},
        {"operationId": OPERATION_ID, "userId": USER_ID, "approved": 1, "reason": None},
        "approved",
    ),
    OPERATION_COMPLETED: (
        {"operationId": OPERATION_ID, "user": USER},
        {"operationId": "not-a-uuid", "user": USER},
        "operationId",
    ),
    OPERATION_FAILED: (
        {"operationId": OPERATION_ID, "reason": "user rejected: x"},
        {"operationId": OPERATION_ID, "reason": "x", "extra": 1},
        "(root)",
    ),
}

BROKERS = [("inmemory", MT_CHANNEL_BASED_BROKER), ("kafka", KAFKA_BROKER)]


def system(broker: str = "inmemory") -> loader.System:
    """The real manifests, as the local runtime loads them."""
    return loader.load(Settings(broker=broker, manifests=ROOT))


def test_catalog_loads_every_type_of_the_flow() -> None:
    """catalog.yaml loads with the five types of the flow and our source."""
    catalog = load_catalog()
    assert catalog.source == "/users-service"
    assert set(catalog.types) == set(FLOW)


@pytest.mark.parametrize("event_type", list(FLOW))
def test_schema_of_each_type_is_a_valid_json_schema(event_type: str) -> None:
    """Each type's `data` schema, with the shared definitions, is valid JSON Schema 2020-12."""
    raw = yaml.safe_load((Path(functions.__file__).parent / "catalog.yaml").read_text("utf-8"))
    schema = {**raw["types"][event_type]["data"], "definitions": raw.get("definitions", {})}
    Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("event_type", list(FLOW))
def test_schema_accepts_good_data_and_names_the_field_of_bad_data(event_type: str) -> None:
    """An example event of each type validates; a broken one is refused at the broken field."""
    good, bad, where = EXAMPLES[event_type]
    catalog = load_catalog()
    event = new_event(event_type, catalog.source, good, operation_id=OPERATION_ID)
    assert catalog.validate(event, accept=(event_type,)) == good
    broken = new_event(event_type, catalog.source, bad, operation_id=OPERATION_ID)
    with pytest.raises(InvalidEvent) as caught:
        catalog.validate(broken, accept=(event_type,))
    assert f"is invalid at {where}:" in caught.value.message


@pytest.mark.parametrize("event_type", list(FLOW))
def test_producer_and_consumers_are_those_of_the_flow(event_type: str) -> None:
    """The catalog's producer and consumers of each type are the flow's."""
    row = load_catalog().types[event_type]
    producer, consumers = FLOW[event_type]
    assert row.producer == producer
    assert frozenset(row.consumers) == consumers


def test_every_producer_and_consumer_is_a_knative_service() -> None:
    """Every service the catalog names has a manifest in knative/services/."""
    services = system().services
    named = set()
    for row in load_catalog().types.values():
        named |= {row.producer, *row.consumers}
    assert named <= set(services)
    on_disk = {p.stem for p in (ROOT / "knative" / "services").glob("*.yaml")}
    assert named <= on_disk


def consumed_by(service: str) -> set[str]:
    """The catalog types `service` consumes."""
    return {t.name for t in load_catalog().types.values() if service in t.consumers}


CONSUMERS = sorted({c for _, consumers in FLOW.values() for c in consumers})


@pytest.mark.parametrize(("broker", "broker_class"), BROKERS, ids=[b for b, _ in BROKERS])
@pytest.mark.parametrize("service", CONSUMERS)
def test_each_consumer_has_one_trigger_passing_exactly_its_types(
    broker: str, broker_class: str, service: str
) -> None:
    """The consumer's Trigger lets through the catalog types it consumes and no other type."""
    triggers = [
        t
        for t in system(broker).triggers
        if t.subscriber.ref is not None and t.subscriber.ref.name == service
    ]
    assert len(triggers) == 1, f"expected one Trigger subscribing {service}"
    event_filter = build_trigger_filter(triggers[0].filters, broker_class)
    catalog = load_catalog()
    passed = set()
    for event_type in catalog.types:
        event = new_event(event_type, catalog.source, {}, operation_id=OPERATION_ID)
        if event_filter.evaluate(event.get_attributes()) is not FilterResult.FAIL:
            passed.add(event_type)
    assert passed == consumed_by(service)
    # The filter really filters on type: an unknown type does not get through.
    other = new_event("com.example.other", catalog.source, {}, operation_id=OPERATION_ID)
    assert event_filter.evaluate(other.get_attributes()) is FilterResult.FAIL


@pytest.mark.parametrize("broker", [b for b, _ in BROKERS])
def test_every_trigger_subscribes_a_catalog_consumer(broker: str) -> None:
    """No Trigger delivers to a service the catalog does not list as a consumer."""
    subscribers = {t.subscriber.ref.name for t in system(broker).triggers if t.subscriber.ref}
    assert subscribers == set(CONSUMERS)


@pytest.mark.parametrize("broker", [b for b, _ in BROKERS])
def test_every_trigger_dead_letters_to_operation_update(broker: str) -> None:
    """As the catalog says, dead letters go to operation-update, which fails the operation."""
    for trigger in system(broker).triggers:
        assert trigger.delivery is not None and trigger.delivery.dead_letter_sink is not None
        sink = trigger.delivery.dead_letter_sink.ref
        assert sink is not None
        assert (sink.kind, sink.name) == ("Service", "operation-update"), trigger.name

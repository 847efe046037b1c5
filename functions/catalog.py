"""The event catalog (`catalog.yaml`) loaded once, and validation of events against it."""

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Final

import yaml

from functions.ce import BaseCloudEvent
from functions.errors import InvalidEvent
from functions.schema import Schema

USER_CREATION_REQUESTED: Final = "dev.knuser.user.creation.requested.v1"
USER_CREATED: Final = "dev.knuser.user.created.v1"
APPROVAL_DECIDED: Final = "dev.knuser.user.approval.decided.v1"
OPERATION_COMPLETED: Final = "dev.knuser.operation.completed.v1"
OPERATION_FAILED: Final = "dev.knuser.operation.failed.v1"

#: The extension attribute naming the operation an event belongs to.
OPERATION_ID_EXTENSION: Final = "operationid"


@dataclass(frozen=True)
class EventType:
    """One row of the catalog."""

    name: str
    summary: str
    producer: str
    consumers: tuple[str, ...]
    schema: Schema


@dataclass(frozen=True)
class Catalog:
    """Every event type of the flow, and the `source` our services stamp on events."""

    source: str
    types: dict[str, EventType]

    def validate(self, event: BaseCloudEvent, *, accept: tuple[str, ...]) -> dict[str, Any]:
        """Check an event's type and `data` against the catalog.

        :param event: the received event.
        :param accept: the types the receiving function handles.
        :return: the event's data, a JSON object that matches the type's schema.
        :raises InvalidEvent: naming the type, or the first schema violation and where it is.
        """
        event_type = event.get_type()
        if event_type not in accept:
            raise InvalidEvent(
                f"expected an event of type {' or '.join(accept)}; found {event_type!r}"
            )
        data = event.get_data()
        if not isinstance(data, dict):
            raise InvalidEvent(
                f"expected JSON object data for {event_type}; found {type(data).__name__}"
            )
        errors = sorted(self.types[event_type].schema.errors(data), key=str)
        if errors:
            first = errors[0]
            where = "/".join(str(p) for p in first.absolute_path) or "(root)"
            raise InvalidEvent(f"data of {event_type} is invalid at {where}: {first.message}")
        return data


@cache
def load_catalog() -> Catalog:
    """Load `catalog.yaml` shipped with the package (once per process)."""
    text = (Path(__file__).parent / "catalog.yaml").read_text(encoding="utf-8")
    raw = yaml.safe_load(text)
    definitions = raw.get("definitions", {})
    types = {}
    for name, spec in raw["types"].items():
        types[name] = EventType(
            name=name,
            summary=spec["summary"],
            producer=spec["producer"],
            consumers=tuple(spec["consumers"]),
            schema=Schema({**spec["data"], "definitions": definitions}, check_formats=True),
        )
    return Catalog(source=raw["source"], types=types)

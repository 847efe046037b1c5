"""The CloudEvents extensions that say what an event belongs to, in the runtime's log lines.

The application names them (`correlation-extensions` in its `[tool.knlocal]`, knlocal/
appconfig.py): every log line about an event carries their values, in its text and as `extra`
fields of its record, as the application's own log lines do, so that one grep follows one
piece of work across the runtime and the functions.
"""

from dataclasses import dataclass

from knlocal.eventing.events import BaseCloudEvent


@dataclass(frozen=True)
class Correlation:
    """:ivar extensions: the extension names, in the order log lines show them."""

    extensions: tuple[str, ...] = ()

    def extra(self, event: BaseCloudEvent) -> dict[str, object]:
        """The `extra` of a log record about `event`: each extension's value (None if absent)."""
        return {name: event.get_extension(name) for name in self.extensions}

    def label(self, event: BaseCloudEvent) -> str:
        """The event's id with the extensions' values, e.g. `e-1 (operationid 7c2…)`."""
        if not self.extensions:
            return str(event.get_id())
        values = ", ".join(f"{name} {value}" for name, value in self.extra(event).items())
        return f"{event.get_id()} ({values})"


#: Log lines that name no extension (the application named none).
NO_CORRELATION = Correlation()

"""The MT broker's loop protection, `knativebrokerttl` (knative-semantics.md §2.9).

Knative: `pkg/broker/ttl.go` (`TTLDefaulter`, `GetTTL`, `SetTTL`) and the broker ingress
(`pkg/broker/ingress/ingress_handler.go`), which refuses an event whose TTL is exhausted.
"""

import math
from typing import Final

from knlocal.eventing.events import BaseCloudEvent, replace_attributes

#: The loop-protection extension of the MT broker.
TTL_EXTENSION: Final = "knativebrokerttl"

_INT32_MIN: Final = -(2**31)
_INT32_MAX: Final = 2**31 - 1


def _go_to_integer(raw: object) -> int | None:
    """sdk-go's `types.ToInteger`: an integer, or a string holding a (truncated) number."""
    if isinstance(raw, bool):
        return None
    try:
        number = float(raw) if isinstance(raw, str | int | float) else math.nan
    except ValueError:
        return None
    if math.isnan(number) or not _INT32_MIN <= number <= _INT32_MAX:
        return None
    return int(number)


def next_ttl(event: BaseCloudEvent, max_ttl: int) -> int:
    """The TTL the ingress gives `event` (`TTLDefaulter`).

    Absent or not an integer: `max_ttl`; otherwise one less, but not below 0. The ingress
    refuses the event with 400 when the result is 0 or less.
    """
    current = _go_to_integer(event.get_extension(TTL_EXTENSION))
    if current is None:
        return max_ttl
    return max(current - 1, 0)


def strip(event: BaseCloudEvent) -> tuple[BaseCloudEvent, object | None]:
    """Remove the TTL before the subscriber sees the event; return the event and the TTL."""
    ttl = event.get_extension(TTL_EXTENSION)
    if ttl is None:
        return event, None
    return replace_attributes(event, remove=(TTL_EXTENSION,)), ttl


def reattach(reply: BaseCloudEvent, ttl: object | None) -> BaseCloudEvent:
    """Put the original's TTL, unchanged, on a reply (`filter_handler.go` `writeResponse`)."""
    if ttl is None:
        return reply
    return replace_attributes(reply, {TTL_EXTENSION: ttl})

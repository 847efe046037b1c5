"""user-approve: apply the approval rules to a new user and reply with the decision.

The rules are pure and deterministic, so a duplicate delivery yields the same decision.
"""

import unicodedata
from typing import Final

from functions.catalog import APPROVAL_DECIDED, USER_CREATED, load_catalog
from functions.ce import BaseCloudEvent, new_event

#: Names nobody may register: they impersonate the system or its operators.
BLOCKED_NAMES: Final = frozenset(
    {"admin", "administrator", "root", "system", "support", "null", "none", "undefined"}
)
#: Characters allowed besides letters: name separators used across languages.
_SEPARATORS: Final = frozenset(" -'.\u2019")  # \u2019: the typographic apostrophe


def decide(name: str) -> str | None:
    """Apply the approval rules to a name.

    - at least two letters;
    - only letters (any script) and the separators space, hyphen, apostrophe and dot;
    - not a reserved name (:data:`BLOCKED_NAMES`, case-insensitive).

    :return: None when approved, else the reason for the rejection, for a person to read.
    """
    for char in name:
        if char not in _SEPARATORS and not unicodedata.category(char).startswith(("L", "M")):
            return (
                "a name may contain only letters, spaces, hyphens, apostrophes and dots;"
                f" found {char!r}"
            )
    if sum(1 for c in name if unicodedata.category(c).startswith("L")) < 2:
        return "a name needs at least two letters"
    if name.strip().casefold() in BLOCKED_NAMES:
        return f"the name {name.strip()!r} is reserved"
    return None


def handle(event: BaseCloudEvent) -> BaseCloudEvent:
    """Decide on the user of a `user.created` event."""
    catalog = load_catalog()
    data = catalog.validate(event, accept=(USER_CREATED,))
    user = data["user"]
    reason = decide(user["name"])
    return new_event(
        APPROVAL_DECIDED,
        catalog.source,
        {
            "operationId": data["operationId"],
            "userId": user["id"],
            "approved": reason is None,
            "reason": reason,
        },
        operation_id=data["operationId"],
        caused_by=event,
    )

"""The dispatcher process's prefilter: a Trigger's `filter.attributes` read on record headers.

Knative's Kafka dispatcher filters before it delivers, in the dispatcher itself
(knative-semantics.md §3.1, `RecordDispatcherImpl.java`: filter → subscriber → DLS), so a
Trigger never pays for the events it does not want. Here the runtime applies the full filter
(:mod:`knlocal.eventing.filters`: every dialect, CESQL, each class's rules); the dispatcher
process only drops the records whose headers show that the Trigger's exact attributes cannot
match. Such a record is handled where it is (acknowledged, for the ordered commit) and is never
decoded, pickled or sent to the runtime. Every other record is handed over as before.

A record is dropped only if the full filter would refuse it under either class's legacy rules
(§2.3; :func:`knlocal.eventing.filters.build_trigger_filter`), reading the headers as
:func:`knlocal.eventing.events.decode_kafka` (the CloudEvents SDK's Kafka binding) does:

- binary mode when some header name starts with ``ce_`` in any case; a structured record keeps
  its attributes in the value: it is handed over;
- header names are lowercased; of equal names the last value wins (`dict(headers)`), and of
  names equal once lowercased, the later one; ``content-type`` is ``datacontenttype``; the
  record's key, when set, is ``partitionkey`` (over a ``ce_partitionkey`` header);
- values are UTF-8 text, with no percent-decoding (the Kafka binding has none, unlike HTTP's):
  the text equals the wanted value exactly when the bytes equal its UTF-8, and bytes that are
  not UTF-8 (or a header without a value) make the record invalid, which the runtime skips;
- every attribute read from a header is a string, except ``time``: so the classes' renderings
  (`go_sprint`, `java_to_string`) are the text itself, and a missing attribute never equals a
  non-empty value (the MT broker fails it, the Kafka broker reads ``""``).

Never judged here, so always handed over: a value ``""`` (the MT broker wants the attribute
present and non-empty, the Kafka broker drops the entry), ``time`` (parsed, then rendered
differently by each class), ``specversion`` and ``id`` when absent (the SDK fills them in), and
names a class looks up elsewhere (``dataschema``/``schemaurl``, ``datamediatype``,
``datacontentencoding``). Two things differ from the runtime's view: a prefiltered record that
is not a valid CloudEvent is not logged as skipped, and prefiltered records are counted apart
(:attr:`knlocal.eventing.backends.base.Subscription.prefiltered`).
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

#: A record's headers as kafka-python gives them (a header may have no value).
Headers = Sequence[tuple[str, bytes | None]]

#: Attributes whose value the SDK's decoder fills in when the record has no header for it.
_FILLED_IN: Final = frozenset({"specversion", "id"})
#: Attributes the prefilter never judges (see the module docstring).
_NOT_JUDGED: Final = frozenset(
    {"time", "dataschema", "schemaurl", "datamediatype", "datacontentencoding"}
)
_CE_PREFIX: Final = "ce_"


def header_attributes(headers: Headers, key: bytes | None) -> dict[str, bytes | None] | None:
    """A binary-mode record's attributes, undecoded, as the SDK's Kafka binding names them.

    :return: the raw value of each attribute, or None for a structured-mode record.
    """
    found: dict[str, bytes | None] = {}
    binary = False
    for name, value in dict(headers).items():
        lowered = name.lower()
        if lowered.startswith(_CE_PREFIX):
            binary = True
            found[lowered[len(_CE_PREFIX) :]] = value
        elif lowered == "content-type":
            found["datacontenttype"] = value
    if not binary:
        return None
    if key is not None:
        found["partitionkey"] = key
    return found


@dataclass(frozen=True)
class Prefilter:
    """The entries of a Trigger's `filter.attributes` that records' headers can refute.

    :ivar wanted: each judged attribute and the UTF-8 of its wanted value.
    """

    wanted: tuple[tuple[str, bytes], ...]

    @classmethod
    def of(cls, attributes: Mapping[str, str]) -> "Prefilter":
        """The prefilter of `filter.attributes` (empty when there is none: admits all)."""
        return cls(
            tuple(
                # surrogatepass: a value no strict UTF-8 header decodes to still gets bytes.
                (name, value.encode("utf-8", "surrogatepass"))
                for name, value in attributes.items()
                if value != "" and name not in _NOT_JUDGED
            )
        )

    def admits(self, headers: Headers, key: bytes | None) -> bool:
        """False only if the Trigger's filter cannot accept the record's event."""
        if not self.wanted:
            return True
        found = header_attributes(headers, key)
        if found is None:
            return True
        for name, wanted in self.wanted:
            if name in found:
                if found[name] != wanted:
                    return False
            elif name not in _FILLED_IN:
                return False
        return True


#: The prefilter of a Trigger without `filter.attributes`.
ADMIT_ALL: Final = Prefilter(())

"""Delivery specs and destinations, and which delivery applies to a Trigger, per broker class.

Parses ``spec.delivery`` of Brokers and Triggers as Knative validates it and works out the
delivery that applies to a Trigger (knative-semantics.md §2.7, §6); the retry and backoff
rules that follow from it are in :mod:`knlocal.eventing.retries`, the dead-letter extensions
in :mod:`knlocal.eventing.deadletter`:

* ``MTChannelBasedBroker`` (Go): the Trigger's delivery replaces the Broker's as a whole,
  dead-letter sink included; retry k waits ``d·2^(k-1)``
  (exponential) or ``d·(k-1)`` (linear), and only when both policy and delay are set.
* ``Kafka`` (Java): Trigger and Broker delivery merge field by field; with ``retry`` set
  the controller defaults the delay to 1 s and the policy to exponential; retry k waits
  ``d·2^k`` or ``d·k``.

Everything here is pure: no I/O, no clock, no state.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final
from urllib.parse import urlsplit

from knlocal.errors import ManifestError
from knlocal.eventing.classes import BrokerClass, DataPlane

__all__ = [
    "BROKER_DEFAULT_DELIVERY",
    "KAFKA_DEFAULT_BACKOFF_DELAY",
    "BackoffPolicy",
    "DeliverySpec",
    "Destination",
    "ObjectRef",
    "effective_delivery",
    "parse_iso8601_duration",
]

#: Kafka controller's ``BROKER_DEFAULT_BACKOFF_DELAY_MS`` (1000 ms), in seconds (§2.7).
KAFKA_DEFAULT_BACKOFF_DELAY: Final = 1.0

_DELIVERY_FIELDS: Final = (
    "deadLetterSink",
    "retry",
    "backoffPolicy",
    "backoffDelay",
    "timeout",
    "retryAfterMax",
    "format",
)
_DESTINATION_FIELDS: Final = ("ref", "uri")
_REF_FIELDS: Final = ("apiVersion", "kind", "name", "namespace")
_FORMATS: Final = ("json", "binary")
_INT32_MAX: Final = 2**31 - 1

# ISO-8601 duration as rickb777/date/period parses it (the parser Knative uses), restricted
# to components of fixed length: weeks, days, hours, minutes, seconds.
_NUMBER: Final = r"\d+(?:[.,]\d+)?"
_DURATION: Final = re.compile(
    rf"P(?:(?P<Y>{_NUMBER})Y)?(?:(?P<MO>{_NUMBER})M)?(?:(?P<W>{_NUMBER})W)?(?:(?P<D>{_NUMBER})D)?"
    rf"(?:T(?:(?P<H>{_NUMBER})H)?(?:(?P<MI>{_NUMBER})M)?(?:(?P<S>{_NUMBER})S)?)?"
)
_SECONDS_PER: Final = {"W": 604800, "D": 86400, "H": 3600, "MI": 60, "S": 1}
_DURATION_EXAMPLES: Final = "PT0.2S, PT1M, P1D or PT1H30M"


class BackoffPolicy(enum.Enum):
    """How the wait between retries grows (``spec.delivery.backoffPolicy``)."""

    EXPONENTIAL = "exponential"
    LINEAR = "linear"


@dataclass(frozen=True)
class ObjectRef:
    """A ``ref`` to a Kubernetes object (Knative's ``KReference``)."""

    api_version: str
    kind: str
    name: str
    namespace: str | None


@dataclass(frozen=True)
class Destination:
    """A Knative ``Destination``: an object ``ref``, a ``uri``, or both (uri relative to ref)."""

    ref: ObjectRef | None
    uri: str | None

    @classmethod
    def from_manifest(cls, data: Any, *, field: str = "destination") -> Destination:
        """Parse and validate a Destination as Knative's ``ValidateDestination`` does.

        Rules (knative-semantics.md §2.1, §2.4): at least one of ``ref`` and ``uri``;
        ``uri`` alone must be absolute with a host; with ``ref`` it must be relative;
        ``ref`` needs ``apiVersion``, ``kind`` and ``name``.

        :param data: the mapping from the manifest.
        :param field: path of the field, for error messages (e.g. ``spec.subscriber``).
        :return: the destination.
        :raises ManifestError: the destination is invalid; the message says what was
            expected and what was found.
        """
        section = _section(data, field, _DESTINATION_FIELDS)
        raw_ref, uri = section.get("ref"), section.get("uri")
        if uri is not None and not isinstance(uri, str):
            raise ManifestError(f"{field}.uri: expected a string, found {_describe(uri)}")
        ref = None if raw_ref is None else _parse_ref(raw_ref, f"{field}.ref")
        if ref is None and uri is None:
            raise ManifestError(f"{field}: expected at least one of ref and uri, found none")
        if uri is not None:
            parts = urlsplit(uri)
            absolute = bool(parts.scheme) and bool(parts.netloc)
            if ref is None and not absolute:
                raise ManifestError(
                    f"{field}.uri: expected an absolute URI with a host when ref is absent, "
                    f"found {uri!r}"
                )
            if ref is not None and parts.scheme:
                raise ManifestError(
                    f"{field}.uri: expected a URI relative to ref (e.g. /path), found {uri!r}"
                )
        return cls(ref=ref, uri=uri)


def _parse_ref(data: Any, field: str) -> ObjectRef:
    section = _section(data, field, _REF_FIELDS)
    values: dict[str, str] = {}
    for key in ("apiVersion", "kind", "name"):
        value = section.get(key)
        if not isinstance(value, str) or not value:
            raise ManifestError(
                f"{field}.{key}: expected a non-empty string, found {_describe(value)}"
            )
        values[key] = value
    namespace = section.get("namespace")
    if namespace is not None and not isinstance(namespace, str):
        raise ManifestError(f"{field}.namespace: expected a string, found {_describe(namespace)}")
    # An empty namespace is the same as none: the parent's namespace (§2.4).
    return ObjectRef(values["apiVersion"], values["kind"], values["name"], namespace or None)


@dataclass(frozen=True)
class DeliverySpec:
    """A ``spec.delivery`` (Knative's ``DeliverySpec``); ``None`` means the field is unset.

    Durations are in seconds.
    """

    retry: int | None = None
    backoff_policy: BackoffPolicy | None = None
    backoff_delay: float | None = None
    timeout: float | None = None
    dead_letter_sink: Destination | None = None
    retry_after_max: float | None = None
    format: str | None = None

    @classmethod
    def from_manifest(
        cls, data: Mapping[str, Any] | None, *, field: str = "spec.delivery"
    ) -> DeliverySpec | None:
        """Parse and validate a ``spec.delivery`` as Knative's webhook does.

        Rules (knative-semantics.md §2.7, EVENTING ``delivery_types.go``): ``retry`` is
        an integer >= 0; ``backoffDelay``, ``timeout`` and ``retryAfterMax`` are
        ISO-8601 durations; ``timeout`` is not zero; ``backoffPolicy`` is ``linear`` or
        ``exponential``; ``format`` is ``json`` or ``binary``; unknown fields are
        refused. ``retryAfterMax`` is accepted although Knative gates it behind the
        ``delivery-retryafter`` feature.

        :param data: the mapping from the manifest, or ``None`` when the field is absent.
        :param field: path of the field, for error messages.
        :return: the spec, or ``None`` when ``data`` is ``None``.
        :raises ManifestError: the spec is invalid; the message says what was expected
            and what was found.
        """
        if data is None:
            return None
        section = _section(data, field, _DELIVERY_FIELDS)

        retry = section.get("retry")
        if retry is not None and (
            not isinstance(retry, int) or isinstance(retry, bool) or not 0 <= retry <= _INT32_MAX
        ):
            raise ManifestError(
                f"{field}.retry: expected an integer >= 0, found {_describe(retry)}"
            )

        policy = section.get("backoffPolicy")
        backoff_policy = None
        if policy is not None:
            choices = [p.value for p in BackoffPolicy]
            if policy not in choices:
                raise ManifestError(
                    f"{field}.backoffPolicy: expected one of {', '.join(choices)}, "
                    f"found {_describe(policy)}"
                )
            backoff_policy = BackoffPolicy(policy)

        timeout = _optional_duration(section, "timeout", field)
        if timeout == 0:
            raise ManifestError(
                f"{field}.timeout: expected a non-zero duration, found {section['timeout']!r}"
            )

        delivery_format = section.get("format")
        if delivery_format is not None and delivery_format not in _FORMATS:
            raise ManifestError(
                f"{field}.format: expected one of {', '.join(_FORMATS)}, "
                f"found {_describe(delivery_format)}"
            )

        sink = section.get("deadLetterSink")
        return cls(
            retry=retry,
            backoff_policy=backoff_policy,
            backoff_delay=_optional_duration(section, "backoffDelay", field),
            timeout=timeout,
            dead_letter_sink=(
                None
                if sink is None
                else Destination.from_manifest(sink, field=f"{field}.deadLetterSink")
            ),
            retry_after_max=_optional_duration(section, "retryAfterMax", field),
            format=delivery_format,
        )


#: ``config-br-defaults``: what a Broker without ``spec.delivery`` gets (§0.10, §2.7).
BROKER_DEFAULT_DELIVERY: Final = DeliverySpec(
    retry=10, backoff_policy=BackoffPolicy.EXPONENTIAL, backoff_delay=0.2
)


def _section(data: Any, field: str, allowed: tuple[str, ...]) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise ManifestError(f"{field}: expected a mapping, found {_describe(data)}")
    unknown = sorted(str(key) for key in data if key not in allowed)
    if unknown:
        raise ManifestError(
            f"{field}: unknown field(s) {', '.join(unknown)}: expected only {', '.join(allowed)}"
        )
    return data


def _describe(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def _optional_duration(section: Mapping[str, Any], key: str, field: str) -> float | None:
    value = section.get(key)
    if value is None:
        return None
    return parse_iso8601_duration(value, field=f"{field}.{key}")


def parse_iso8601_duration(text: Any, *, field: str = "duration") -> float:
    """Parse an ISO-8601 duration such as ``PT0.2S``, ``PT1M``, ``P1D`` or ``PT1H30M``.

    Accepts weeks, days, hours, minutes and seconds; only the last component may have a
    fraction (``.`` or ``,``). Years and months are refused because their length is not
    fixed, and negative durations because no delivery field means anything by them.

    :param text: the duration text.
    :param field: path of the field, for error messages.
    :return: the duration in seconds.
    :raises ManifestError: ``text`` is not such a duration.
    """
    expected = f"{field}: expected an ISO-8601 duration such as {_DURATION_EXAMPLES}"
    if not isinstance(text, str):
        raise ManifestError(f"{expected}, found {_describe(text)}")
    if text.startswith("-"):
        raise ManifestError(f"{expected} (not negative), found {text!r}")
    match = _DURATION.fullmatch(text)
    components = {} if match is None else {k: v for k, v in match.groupdict().items() if v}
    if match is None or not components or text.endswith(("P", "T")):
        raise ManifestError(f"{expected}, found {text!r}")
    if "Y" in components or "MO" in components:
        raise ManifestError(f"{expected} (years and months have no fixed length), found {text!r}")
    # ISO 8601: only the smallest (last) component may carry a fraction.
    order = [key for key in _SECONDS_PER if key in components]
    if any(("." in components[k] or "," in components[k]) for k in order[:-1]):
        raise ManifestError(
            f"{expected} (only the last component may have a fraction), found {text!r}"
        )
    seconds = sum(
        (Decimal(components[key].replace(",", ".")) * _SECONDS_PER[key] for key in order),
        Decimal(0),
    )
    return float(seconds)


# --- Which delivery applies ---------------------------------------------------------------


@dataclass(frozen=True)
class _KafkaEgress:
    """The Kafka control plane's ``EgressConfig``: zero values mean "unset"."""

    dead_letter_sink: Destination | None
    retry: int
    backoff_policy: BackoffPolicy
    backoff_delay: float
    timeout: float


def _kafka_egress(spec: DeliverySpec) -> _KafkaEgress | None:
    """Convert a DeliverySpec as the Kafka controller's ``EgressConfigFromDelivery`` does.

    knative-semantics.md §2.7: without ``deadLetterSink``, ``retry`` or ``timeout`` there
    is no egress config at all; with ``retry`` a missing delay becomes 1 s and a missing
    policy exponential; without ``retry`` delay and policy keep their zero values.
    """
    if spec.dead_letter_sink is None and spec.retry is None and spec.timeout is None:
        return None
    if spec.retry is None:
        retry, policy, delay = 0, BackoffPolicy.EXPONENTIAL, 0.0
    else:
        retry = spec.retry
        policy = spec.backoff_policy or BackoffPolicy.EXPONENTIAL
        delay = KAFKA_DEFAULT_BACKOFF_DELAY if spec.backoff_delay is None else spec.backoff_delay
    return _KafkaEgress(spec.dead_letter_sink, retry, policy, delay, spec.timeout or 0.0)


def _merge_kafka_egress(trigger: _KafkaEgress, broker: _KafkaEgress) -> _KafkaEgress:
    """``MergeEgressConfig``: the Trigger's non-zero fields win; its policy always wins."""
    return _KafkaEgress(
        dead_letter_sink=trigger.dead_letter_sink or broker.dead_letter_sink,
        retry=trigger.retry or broker.retry,
        backoff_policy=trigger.backoff_policy,
        backoff_delay=trigger.backoff_delay or broker.backoff_delay,
        timeout=trigger.timeout or broker.timeout,
    )


def effective_delivery(
    broker: DeliverySpec | None, trigger: DeliverySpec | None, broker_class: BrokerClass
) -> DeliverySpec:
    """Work out the delivery a Trigger's events get.

    A Broker without ``spec.delivery`` gets :data:`BROKER_DEFAULT_DELIVERY`, whatever
    its class (knative-semantics.md §2.7). Then, per class:

    * MT: the Trigger's delivery, if it has one, replaces the Broker's as a whole: the
      reconciler copies it to the Subscription, so a Trigger delivery without
      ``deadLetterSink`` has none (EVENTING ``pkg/reconciler/broker/trigger/trigger.go``;
      knative-semantics.md, corrections to §2.7).
    * Kafka: both are converted to egress configs (retry set ⇒ delay defaults to 1 s and
      policy to exponential) and merged field by field, the Trigger's non-zero fields
      winning and its policy always winning when it has an egress config. A Trigger
      cannot lower the Broker's ``retry`` to 0 this way, as in Kafka. ``format`` and
      ``retryAfterMax`` are dropped: the Kafka broker ignores them.

    :param broker: the Broker's ``spec.delivery``, or ``None``.
    :param trigger: the Trigger's ``spec.delivery``, or ``None``.
    :param broker_class: class of the Broker.
    :return: the delivery spec to dispatch with.
    """
    broker_spec = BROKER_DEFAULT_DELIVERY if broker is None else broker
    if broker_class.data_plane is DataPlane.GO:
        return broker_spec if trigger is None else trigger

    trigger_egress = None if trigger is None else _kafka_egress(trigger)
    broker_egress = _kafka_egress(broker_spec)
    if trigger_egress is None:
        egress = broker_egress
    elif broker_egress is None:
        egress = trigger_egress
    else:
        egress = _merge_kafka_egress(trigger_egress, broker_egress)
    if egress is None:
        return DeliverySpec()
    return DeliverySpec(
        retry=egress.retry,
        backoff_policy=egress.backoff_policy,
        backoff_delay=egress.backoff_delay,
        timeout=egress.timeout or None,
        dead_letter_sink=egress.dead_letter_sink,
    )

"""Fault injection in the event path: a plan of its own, never in the manifests the cluster gets.

A plan names Triggers (`<namespace>/<trigger>`) and Broker ingresses (`<namespace>/<broker>`),
each with rules; a rule picks a fraction of deliveries (`probability`, drawn from a seeded
generator, or `every` n-th, counted) and does one thing to each:

| kind | where | what the dispatcher or publisher sees |
|---|---|---|
| `drop` | trigger | never reaches the subscriber: a timeout, after `wait` (or the timeout) |
| `duplicate` | both | delivered (stored) twice, the copy after `delay`; the copy's answer |
| `delay` | both | the delivery waits `delay` before it goes |
| `reorder` | trigger | held until `window` deliveries are held (or `delay`), released shuffled |
| `fail` | both | the injected `status` (e.g. 503), as if the destination answered it |
| `slow_reply` | trigger | handled; the answer comes `delay` later, or times out |
| `rebalance` | trigger | Kafka only: a rebalance; what the last commit missed comes again |

A rule applies to every attempt, retries included, so a retried delivery draws again; `times`
caps how often it hits one event (by id) there: with `times` below the Trigger's 1 + `retry`
attempts (or the publisher's), every hit event still gets through, so the plan only tests that
the retries absorb it. A delay
is seconds, or `[min, max]` for a uniform random wait. The plan is seeded (`seed`, default 0):
with `every`, which deliveries are hit repeats exactly; with `probability`, the draws repeat,
though which concurrent delivery gets which draw follows the scheduling.

`rebalance` needs a Trigger on the Kafka backend: the hit delivery goes on, but first the
Trigger's consumer loses its partitions without committing and gets them back
(:meth:`KafkaSubscription.redeliver_uncommitted`), as after a member missed its session: every
record handed over since the last commit, the hit one included, is delivered again, as real
Kafka redelivers after a rebalance (knative-semantics.md §3.1: offsets committed only once
handled). `knlocal status` counts the rebalances, and the records redelivered as `redelivered`.
Two rebalances of one Trigger are at least `wait` seconds apart (default 1 s; a hit sooner is
no hit): redelivered records are deliveries too, and a group that rebalanced faster than it
commits (every 0.1 s) would never get ahead; Kafka's own rebalances are seconds apart.

Trigger rules wrap the subscriber (a :class:`~knlocal.eventing.sender.Target`), so retries,
replies and dead letters run as for a real failure; Broker rules wrap the ingress
(:meth:`RunningBroker.ingest`), which events from publishers and replies alike cross.
"""

import asyncio
import json
import logging
import random
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import yaml

from knlocal.errors import LocalRuntimeError
from knlocal.eventing.broker import BrokerRejected, RunningBroker
from knlocal.eventing.events import BaseCloudEvent
from knlocal.eventing.sender import Reply, Target

log = logging.getLogger("knlocal.faults")

TRIGGER_KINDS = frozenset(
    {"drop", "duplicate", "delay", "reorder", "fail", "slow_reply", "rebalance"}
)
BROKER_KINDS = frozenset({"duplicate", "delay", "fail"})
#: Seconds between two deliveries a `reorder` window releases, in their shuffled order.
REORDER_GAP = 0.002
_RULE_KEYS = frozenset(
    {"kind", "probability", "every", "times", "delay", "status", "window", "wait"}
)
#: Events whose hits `times` remembers per Trigger or Broker; older ones are forgotten.
_TIMES_MEMORY = 65536


class FaultPlanError(LocalRuntimeError, ValueError):
    """A fault plan file is missing, malformed, or names what the manifests do not have."""


@runtime_checkable
class Redelivering(Protocol):
    """A consumer that can act out a rebalance (the Kafka backend's subscription)."""

    #: Records delivered again after a rebalance it acted out.
    redelivered: int

    async def redeliver_uncommitted(self) -> int:
        """Go back to the last committed offsets; return how many records come again."""


@dataclass(frozen=True)
class Delay:
    """A wait: fixed (`low == high`) or uniform in `[low, high]` seconds."""

    low: float
    high: float

    def draw(self, rng: random.Random) -> float:
        """Seconds to wait this time."""
        return self.low if self.low == self.high else rng.uniform(self.low, self.high)


@dataclass(frozen=True)
class Rule:
    """One fault on a fraction of deliveries; see the module docstring."""

    kind: str
    probability: float | None = None
    every: int | None = None
    delay: Delay = Delay(0.0, 0.0)
    status: int = 503
    window: int = 4
    #: At most this many hits per event id on the Trigger or Broker; None: no cap.
    times: int | None = None
    #: `drop`: how long the dispatcher waits for the answer that never comes (at most its
    #: request timeout). `rebalance`: the least time between two rebalances of the Trigger.
    wait: float = 1.0


@dataclass(frozen=True)
class FaultPlan:
    """Rules per Trigger and per Broker ingress, keyed `<namespace>/<name>`."""

    path: Path
    seed: int
    triggers: Mapping[str, tuple[Rule, ...]]
    brokers: Mapping[str, tuple[Rule, ...]]

    def check_names(self, triggers: set[str], brokers: set[str]) -> None:
        """:raises FaultPlanError: the plan names a Trigger or Broker the manifests lack."""
        for section, names, known in (
            ("triggers", self.triggers, triggers),
            ("brokers", self.brokers, brokers),
        ):
            for name in names:
                if name not in known:
                    raise FaultPlanError(
                        f"{self.path}: {section}.{name}: expected one of"
                        f" {', '.join(sorted(known))}; found no such object in the manifests"
                    )


def load(path: Path) -> FaultPlan:
    """Read and check a fault plan file.

    :raises FaultPlanError: saying the file, the key, what was expected and what was found.
    """
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise FaultPlanError(f"{path}: cannot read the fault plan: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise FaultPlanError(f"{path}: not valid YAML: {exc}") from exc
    doc = _mapping(doc, path, "the document")
    unknown = set(doc) - {"seed", "triggers", "brokers"}
    if unknown:
        raise FaultPlanError(
            f"{path}: expected the keys seed, triggers, brokers; found {', '.join(sorted(unknown))}"
        )
    seed = doc.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise FaultPlanError(f"{path}: seed: expected an integer; found {seed!r}")
    return FaultPlan(
        path,
        seed,
        _section(doc, "triggers", TRIGGER_KINDS, path),
        _section(doc, "brokers", BROKER_KINDS, path),
    )


def _mapping(value: object, path: Path, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise FaultPlanError(f"{path}: {where}: expected a mapping; found {value!r}")
    return value


def _section(
    doc: Mapping[str, Any], key: str, kinds: frozenset[str], path: Path
) -> dict[str, tuple[Rule, ...]]:
    section = _mapping(doc.get(key) or {}, path, key)
    plan = {}
    for name, rules in section.items():
        where = f"{key}.{name}"
        if not isinstance(name, str) or name.count("/") != 1:
            raise FaultPlanError(f"{path}: {where}: expected <namespace>/<name>; found {name!r}")
        if not isinstance(rules, list) or not rules:
            raise FaultPlanError(f"{path}: {where}: expected a list of rules; found {rules!r}")
        plan[name] = tuple(
            _rule(_mapping(r, path, f"{where}[{i}]"), kinds, path, f"{where}[{i}]")
            for i, r in enumerate(rules)
        )
    return plan


def _rule(raw: Mapping[str, Any], kinds: frozenset[str], path: Path, where: str) -> Rule:
    def fail(key: str, expected: str) -> FaultPlanError:
        return FaultPlanError(f"{path}: {where}.{key}: expected {expected}; found {raw[key]!r}")

    unknown = set(raw) - _RULE_KEYS
    if unknown:
        raise FaultPlanError(
            f"{path}: {where}: expected keys among {', '.join(sorted(_RULE_KEYS))};"
            f" found {', '.join(sorted(map(str, unknown)))}"
        )
    if raw.get("kind") not in kinds:
        raise FaultPlanError(
            f"{path}: {where}.kind: expected one of {', '.join(sorted(kinds))};"
            f" found {raw.get('kind')!r}"
        )
    if ("probability" in raw) == ("every" in raw):
        raise FaultPlanError(
            f"{path}: {where}: expected one of probability or every; found "
            + ("both" if "probability" in raw else "neither")
        )
    probability = raw.get("probability")
    if probability is not None and (not _number(probability) or not 0 < probability <= 1):
        raise fail("probability", "a number in (0, 1]")
    every = raw.get("every")
    if every is not None and (not isinstance(every, int) or isinstance(every, bool) or every < 1):
        raise fail("every", "a positive integer")
    times = raw.get("times")
    if times is not None and (not isinstance(times, int) or isinstance(times, bool) or times < 1):
        raise fail("times", "a positive integer")
    delay = Delay(0.0, 0.0)
    if "delay" in raw:
        value = raw["delay"]
        if _number(value) and value >= 0:
            delay = Delay(float(value), float(value))
        elif (
            isinstance(value, list)
            and len(value) == 2
            and all(_number(v) for v in value)
            and 0 <= value[0] <= value[1]
        ):
            delay = Delay(float(value[0]), float(value[1]))
        else:
            raise fail("delay", "seconds ≥ 0, or [min, max]")
    status = raw.get("status", 503)
    if not isinstance(status, int) or isinstance(status, bool) or not 400 <= status <= 599:
        raise fail("status", "an HTTP error status (400-599)")
    window = raw.get("window", 4)
    if not isinstance(window, int) or isinstance(window, bool) or window < 2:
        raise fail("window", "an integer ≥ 2")
    wait = raw.get("wait", 1.0)
    if not _number(wait) or wait <= 0:
        raise fail("wait", "seconds > 0")
    return Rule(
        raw["kind"], probability, every, delay, status, window, times=times, wait=float(wait)
    )


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class Injector:
    """Decides which deliveries a plan hits, and counts what it injected per name and kind."""

    def __init__(self, plan: FaultPlan) -> None:
        self.plan = plan
        self.counts: Counter[tuple[str, str]] = Counter()
        #: The consumers `rebalance` rules act on, per Trigger, for their `redelivered` count.
        self.consumers: dict[str, Redelivering] = {}
        self._seen: Counter[tuple[str, int]] = Counter()
        #: Hits per (name, rule index, event id), for `times`; insertion-ordered, bounded.
        self._hits: dict[tuple[str, int, str], int] = {}
        self._rngs: dict[str, random.Random] = {}
        #: When each Trigger's consumer last rebalanced (loop time), for `rebalance`'s `wait`.
        self._rebalanced: dict[str, float] = {}

    def rng(self, name: str) -> random.Random:
        """The generator of one Trigger or Broker, seeded from the plan's seed and the name."""
        if name not in self._rngs:
            self._rngs[name] = random.Random(f"{self.plan.seed}/{name}")
        return self._rngs[name]

    def pick(self, name: str, rules: tuple[Rule, ...], event_id: str) -> Rule | None:
        """The first rule that hits this delivery, counted and logged; None if none does."""
        rng = self.rng(name)
        for index, rule in enumerate(rules):
            self._seen[(name, index)] += 1
            if rule.every is not None:
                hit = self._seen[(name, index)] % rule.every == 0
            else:
                hit = rng.random() < (rule.probability or 0.0)
            if hit and rule.times is not None:
                hit = self._count_hit((name, index, event_id), rule.times)
            if hit and rule.kind == "rebalance":
                now = time.monotonic()
                hit = now - self._rebalanced.get(name, -rule.wait) >= rule.wait
                self._rebalanced[name] = now if hit else self._rebalanced[name]
            if hit:
                self.counts[(name, rule.kind)] += 1
                log.warning("fault %s injected at %s on event %s", rule.kind, name, event_id)
                return rule
        return None

    def _count_hit(self, key: tuple[str, int, str], times: int) -> bool:
        """Count one more hit of an event under a `times` rule; False once it had them all."""
        hits = self._hits.pop(key, 0)
        self._hits[key] = min(hits + 1, times)  # re-inserted: most recent last
        if len(self._hits) > _TIMES_MEMORY:
            del self._hits[next(iter(self._hits))]
        return hits < times

    def snapshot(self) -> dict[str, dict[str, int]]:
        """Injected faults per name and kind, for /status."""
        view: dict[str, dict[str, int]] = {}
        for (name, kind), count in sorted(self.counts.items()):
            view.setdefault(name, {})[kind] = count
        for name, consumer in sorted(self.consumers.items()):
            if consumer.redelivered:
                view.setdefault(name, {})["redelivered"] = consumer.redelivered
        return view


class FaultyTarget:
    """A Trigger's subscriber under the plan's rules for that Trigger."""

    def __init__(self, inner: Target, name: str, rules: tuple[Rule, ...], injector: Injector):
        self.inner = inner
        self.url = inner.url
        self.name = name
        self.rules = rules
        self.injector = injector
        self._held: list[asyncio.Future[int]] = []
        self._consumer: Redelivering | None = None

    def attach(self, subscription: object) -> None:
        """Give the Trigger's consumer group, which `rebalance` rules act on.

        :raises FaultPlanError: a `rebalance` rule, and a backend that cannot rebalance.
        """
        if not any(rule.kind == "rebalance" for rule in self.rules):
            return
        if not isinstance(subscription, Redelivering):
            raise FaultPlanError(
                f"{self.injector.plan.path}: triggers.{self.name}: a rebalance fault expects a"
                f" Trigger on the Kafka backend (BROKER=kafka); found"
                f" {type(subscription).__name__}"
            )
        self._consumer = subscription
        self.injector.consumers[self.name] = subscription

    async def send(self, headers: Mapping[str, str], body: bytes, timeout: float | None) -> Reply:
        """See :class:`knlocal.eventing.sender.Target`."""
        event_id = headers.get("ce-id", "") or _structured_id(body)
        rule = self.injector.pick(self.name, self.rules, event_id)
        if rule is None:
            return await self.inner.send(headers, body, timeout)
        rng = self.injector.rng(self.name)
        if rule.kind == "drop":
            # A lost request costs the whole request timeout (600 s for the Kafka class, none
            # for the MT broker's): the plan's `wait` stands for it, the timeout if shorter.
            waited = rule.wait if timeout is None else min(rule.wait, timeout)
            await asyncio.sleep(waited)
            error = f"no response from {self.url} in {waited} s (fault: dropped)"
            return Reply(None, {}, b"", error=error, timed_out=True)
        if rule.kind == "fail":
            message = f'{{"error": "fault: injected {rule.status}"}}'.encode()
            return Reply(rule.status, {"Content-Type": "application/json"}, message)
        if rule.kind == "delay":
            await asyncio.sleep(rule.delay.draw(rng))
            return await self.inner.send(headers, body, timeout)
        if rule.kind == "duplicate":
            await self.inner.send(headers, body, timeout)
            await asyncio.sleep(rule.delay.draw(rng))
            return await self.inner.send(headers, body, timeout)
        if rule.kind == "reorder":
            await self._reorder(rule, rng)
            return await self.inner.send(headers, body, timeout)
        if rule.kind == "rebalance":
            assert self._consumer is not None, "attach() refuses a backend without rebalances"
            rewound = await self._consumer.redeliver_uncommitted()
            log.warning(
                "rebalance at %s: %d records since the last commit come again", self.name, rewound
            )
            return await self.inner.send(headers, body, timeout)
        return await self._slow_reply(rule, rng, headers, body, timeout)

    async def _reorder(self, rule: Rule, rng: random.Random) -> None:
        """Hold until `window` deliveries are held (or `delay`, 0.5 s by default, passed)."""
        mine: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._held.append(mine)
        if len(self._held) >= rule.window:
            self._release(rng)
        try:
            position = await asyncio.wait_for(asyncio.shield(mine), rule.delay.draw(rng) or 0.5)
        except TimeoutError:
            self._release(rng)
            position = mine.result()
        # Tasks woken together resume in no promised order: the shuffled places are spaced.
        await asyncio.sleep(position * REORDER_GAP)

    def _release(self, rng: random.Random) -> None:
        held, self._held = self._held, []
        rng.shuffle(held)
        for position, waiter in enumerate(held):
            waiter.set_result(position)

    async def _slow_reply(
        self,
        rule: Rule,
        rng: random.Random,
        headers: Mapping[str, str],
        body: bytes,
        timeout: float | None,
    ) -> Reply:
        loop = asyncio.get_running_loop()
        started = loop.time()
        answer = await self.inner.send(headers, body, timeout)
        delay = rule.delay.draw(rng)
        left = None if timeout is None else timeout - (loop.time() - started)
        if left is not None and delay >= left:
            # The subscriber did its work; the dispatcher gives up before the answer comes.
            await asyncio.sleep(max(0.0, left))
            error = f"no response from {self.url} in {timeout} s (fault: slow reply)"
            return Reply(None, {}, b"", error=error, timed_out=True)
        await asyncio.sleep(delay)
        return answer


def _structured_id(body: bytes) -> str:
    """The id of a structured-mode event, for the log line (binary mode has `ce-id`)."""
    try:
        data = json.loads(body)
    except ValueError:
        return "?"
    return str(data.get("id", "?")) if isinstance(data, dict) else "?"


class FaultyBroker(RunningBroker):
    """A Broker whose ingress (publishers' events and replies alike) runs the plan's rules."""

    def __init__(
        self, running: RunningBroker, name: str, rules: tuple[Rule, ...], injector: Injector
    ):
        super().__init__(running.broker, running.backend)
        self.name = name
        self.rules = rules
        self.injector = injector

    async def ingest(self, event: BaseCloudEvent) -> None:
        """See :meth:`RunningBroker.ingest`; a `fail` rule refuses as the backend failing would."""
        rule = self.injector.pick(self.name, self.rules, event.get_id())
        if rule is None:
            await super().ingest(event)
        elif rule.kind == "fail":
            self.rejected += 1
            raise BrokerRejected(
                rule.status, f"broker {self.broker.name}: fault: injected {rule.status}"
            )
        elif rule.kind == "delay":
            await asyncio.sleep(rule.delay.draw(self.injector.rng(self.name)))
            await super().ingest(event)
        else:  # duplicate: stored twice, as a publisher's retry after a lost 202 would
            await super().ingest(event)
            await asyncio.sleep(rule.delay.draw(self.injector.rng(self.name)))
            await super().ingest(event)

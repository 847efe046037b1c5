"""A revision of a Knative Service: its instances, its activator and its autoscaling loop.

Requests enter through :meth:`Revision.handle`, which plays the activator and queue-proxy:

- at zero instances the request is held while an instance starts (scale from zero), never
  dropped; the wait is bounded by `timeoutSeconds` ⇒ 504 (knative-semantics.md §1.8, §1.9);
- `containerConcurrency` > 0 is a hard limit per instance; requests beyond it wait for a free
  slot, and past the queue bound (Knative's activator: 10 000) get 503 (§1.8);
- requests are spread over the ready instances with free capacity as Knative's activator does
  (§1.8): round robin when containerConcurrency > 3, the first available one when it is 1 to 3,
  the less busy of two random ones when it is 0 (unlimited).

Every second the revision records its average concurrency; every tick its scaler decides how many
instances it wants, and the revision starts or stops instances to match.
"""

import asyncio
import itertools
import json
import logging
import math
import random
import time
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
from multidict import CIMultiDict

from knlocal import tracing
from knlocal.apis.serving import KnativeService
from knlocal.serving.autoscaler.scaler import ScaleDecision
from knlocal.serving.instances import Instance, InstanceStartError, Launcher

log = logging.getLogger("knlocal.serving")

#: The activator's per-revision queue bound (knative-semantics.md §1.8).
ACTIVATOR_QUEUE_DEPTH = 10_000
#: Cold starts kept per revision for the status quantiles (the most recent ones).
COLD_START_SAMPLES = 1000
#: How long an instance may take to become ready (Knative's progress deadline is 600 s).
READY_TIMEOUT_SECONDS = 60.0
#: Hop-by-hop headers a proxy must not forward (RFC 9110 §7.6.1).
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "host",
    }
)


class Scaler(Protocol):
    """One revision's autoscaler: fed 1-second samples, asked for a decision every tick."""

    @property
    def TICK_INTERVAL(self) -> float:
        """Seconds between decisions."""
        ...

    def record(self, now: float, concurrency: float, requests: float = 0.0) -> None:
        """Add the sample of the second ending at `now`."""
        ...

    def decide(self, now: float, ready: int) -> ScaleDecision:
        """Return the decision at `now` with `ready` ready instances."""
        ...

    def poke(self, now: float, ready: int, concurrency: float) -> ScaleDecision | None:
        """Decide out of cycle when a request arrives at zero scale, or return None."""
        ...


@dataclass(frozen=True)
class Response:
    """A response relayed from an instance, or produced by the activator."""

    status: int
    headers: Mapping[str, str]
    body: bytes


@dataclass
class RevisionStats:
    """Counters and gauges a status view and /metrics show."""

    requests: int = 0
    responses_503: int = 0
    responses_504: int = 0
    cold_starts: int = 0
    #: The latest cold starts, at most :data:`COLD_START_SAMPLES`, oldest first.
    cold_start_seconds: list[float] = field(default_factory=list)
    desired: int = 0
    panic: bool = False
    requests_last_second: float = 0.0


class Revision:
    """The running revision of one Knative Service.

    :param service: the Service's manifest.
    :param env: the container environment (manifest env, runtime-contract variables, K_SINK).
    :param launcher: starts instances.
    :param scaler: decides the instance count.
    :param session: the HTTP client used to reach instances (keep-alive, pooled).
    :param queue_depth: requests that may wait for a free slot; one more gets 503.
    """

    def __init__(
        self,
        service: KnativeService,
        env: Mapping[str, str],
        launcher: Launcher,
        scaler: Scaler,
        session: aiohttp.ClientSession,
        queue_depth: int = ACTIVATOR_QUEUE_DEPTH,
    ) -> None:
        self.service = service
        self.env = dict(env)
        self.launcher = launcher
        self.scaler = scaler
        self.session = session
        self.queue_depth = queue_depth
        self.instances: list[Instance] = []
        self.starting = 0
        self.stats = RevisionStats()
        self._in_flight = 0
        self._waiting = 0
        self._capacity = asyncio.Condition()
        self._area = 0.0
        self._area_since = time.monotonic()
        self._bucket_start = self._area_since
        self._requests_in_bucket = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._turn = itertools.count()

    # -- request path (activator + queue-proxy) ------------------------------------------------

    @property
    def in_flight(self) -> int:
        """Requests inside the revision now: held by the activator or served by an instance."""
        return self._in_flight

    @property
    def ready(self) -> int:
        """Instances that take requests."""
        return sum(1 for i in self.instances if not i.draining)

    async def handle(
        self, method: str, path_qs: str, headers: Mapping[str, str], body: bytes
    ) -> Response:
        """Serve one request, holding it while the revision scales from zero.

        :return: the instance's response, or the activator's 503 (queue full) / 504 (timeout).
        """
        deadline = time.monotonic() + self.service.template.timeout_seconds
        if self._waiting >= self.queue_depth:
            self.stats.responses_503 += 1
            return _error(503, f"{self.service.name}: pending request queue full")
        self._track(+1)
        self._requests_in_bucket += 1
        self.stats.requests += 1
        # Counted before the first await: a request waiting for the condition's lock is queued
        # too, and the bound must see it.
        self._waiting += 1
        try:
            with tracing.activator_span(self.service.name) as activator:
                cold = not self.ready
                try:
                    instance = await self._acquire(deadline)
                finally:
                    self._waiting -= 1
                if instance is None:
                    self.stats.responses_504 += 1
                    return _error(504, f"{self.service.name}: activator request timeout")
                if activator is not None:
                    # Held while the revision scaled from zero: the instance's cold start.
                    activator.held(instance.cold_start_seconds if cold else None)
                try:
                    return await self._forward(instance, method, path_qs, headers, body, deadline)
                finally:
                    instance.active -= 1
                    async with self._capacity:
                        self._capacity.notify()
        finally:
            self._track(-1)

    async def _acquire(self, deadline: float) -> Instance | None:
        limit = self.service.template.container_concurrency or math.inf
        async with self._capacity:
            while True:
                candidates = [i for i in self.instances if not i.draining and i.active < limit]
                if candidates:
                    instance = self._choose(candidates)
                    instance.active += 1
                    return instance
                if not self.ready and not self.starting:
                    self._poke()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                try:
                    await asyncio.wait_for(self._capacity.wait(), remaining)
                except TimeoutError:
                    return None

    def _choose(self, candidates: list[Instance]) -> Instance:
        """Pick an instance with free capacity the way Knative's activator does (§1.8)."""
        cc = self.service.template.container_concurrency
        if cc == 0:
            pair = random.sample(candidates, 2) if len(candidates) > 1 else candidates
            return min(pair, key=lambda i: i.active)
        if cc <= 3:
            return candidates[0]
        return candidates[next(self._turn) % len(candidates)]

    async def _forward(
        self,
        instance: Instance,
        method: str,
        path_qs: str,
        headers: Mapping[str, str],
        body: bytes,
        deadline: float,
    ) -> Response:
        forward = CIMultiDict(
            (k, v) for k, v in tracing.inject(headers).items() if k.lower() not in _HOP_BY_HOP
        )
        try:
            async with self.session.request(
                method,
                instance.url + path_qs,
                headers=forward,
                data=body,
                timeout=aiohttp.ClientTimeout(total=max(0.001, deadline - time.monotonic())),
            ) as response:
                payload = await response.read()
                return Response(
                    response.status,
                    {k: v for k, v in response.headers.items() if k.lower() not in _HOP_BY_HOP},
                    payload,
                )
        except TimeoutError:
            self.stats.responses_504 += 1
            return _error(504, f"{self.service.name}: request timeout")
        except aiohttp.ClientError as exc:
            # The instance died under the request (e.g. it was killed): the caller may retry.
            return _error(502, f"{self.service.name}: instance {instance.port} failed: {exc}")

    # -- metrics and scaling ------------------------------------------------------------------

    def _track(self, delta: int) -> None:
        now = time.monotonic()
        self._area += self._in_flight * (now - self._area_since)
        self._area_since = now
        self._in_flight += delta

    def _sample(self, now: float) -> None:
        """Record the average concurrency of the last second into the scaler."""
        self._track(0)
        elapsed = max(1e-6, now - self._bucket_start)
        concurrency = self._area / elapsed
        self.stats.requests_last_second = self._requests_in_bucket / elapsed
        self.scaler.record(now, concurrency, self._requests_in_bucket)
        self._area = 0.0
        self._requests_in_bucket = 0
        self._bucket_start = now

    def _poke(self) -> None:
        # knative-semantics.md §1.5 "Poke": a request at zero scale runs the scaler at once
        # instead of waiting for the next tick. Before the scaler's first decision (no data yet)
        # Knative would wait up to one tick; deciding now is the same decision, 2 s earlier.
        now = time.monotonic()
        concurrency = float(max(1, self._in_flight))
        self.scaler.record(now, concurrency, self._requests_in_bucket)
        decision = self.scaler.poke(now, self.ready, concurrency)
        self._apply(decision or self.scaler.decide(now, self.ready))

    def _apply(self, decision: ScaleDecision) -> None:
        self.stats.desired = decision.desired
        self.stats.panic = decision.panic
        running = self.ready + self.starting
        for _ in range(decision.desired - running):
            self.starting += 1
            self._spawn(self._start_instance())
        if decision.desired < self.ready:
            idle_first = sorted(
                (i for i in self.instances if not i.draining), key=lambda i: i.active
            )
            for instance in idle_first[: self.ready - decision.desired]:
                instance.draining = True
                self._spawn(self._stop_instance(instance))

    async def _start_instance(self) -> None:
        try:
            instance = await self.launcher.start(self.service.name, self.env, READY_TIMEOUT_SECONDS)
        except InstanceStartError as exc:
            log.error("%s: %s", self.service.name, exc)
            return
        finally:
            self.starting -= 1
        if self._stopping:
            await instance.stop()
            return
        self.instances.append(instance)
        self.stats.cold_starts += 1
        self.stats.cold_start_seconds.append(instance.cold_start_seconds)
        # Bounded: the quantiles are of the latest cold starts, not of the whole run.
        del self.stats.cold_start_seconds[:-COLD_START_SAMPLES]
        log.info(
            "%s: instance on port %d ready in %.1f ms (%d ready)",
            self.service.name,
            instance.port,
            instance.cold_start_seconds * 1000,
            self.ready,
        )
        async with self._capacity:
            self._capacity.notify_all()

    async def _stop_instance(self, instance: Instance) -> None:
        # Let in-flight requests finish before SIGTERM, as Kubernetes drains a terminating pod.
        while instance.active and instance.alive():
            await asyncio.sleep(0.01)
        await instance.stop()
        if instance in self.instances:
            self.instances.remove(instance)
        log.info(
            "%s: instance on port %d stopped (%d ready)",
            self.service.name,
            instance.port,
            self.ready,
        )

    async def _loop(self) -> None:
        """Sample every second, decide every tick, and replace instances that died."""
        tick = self.scaler.TICK_INTERVAL
        next_decision = time.monotonic() + tick
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            self._sample(now)
            for dead in [i for i in self.instances if not i.alive() and not i.draining]:
                log.warning(
                    "%s: instance on port %d exited with code %s",
                    self.service.name,
                    dead.port,
                    dead.process.returncode,
                )
                self.instances.remove(dead)
            if now >= next_decision:
                next_decision = now + tick
                self._apply(self.scaler.decide(now, self.ready))

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.append(task)
        task.add_done_callback(self._tasks.remove)

    def start(self) -> None:
        """Start the autoscaling loop (and the initial instances, if the scaler wants any)."""
        self._spawn(self._loop())
        self._apply(self.scaler.decide(time.monotonic(), 0))

    async def stop(self) -> None:
        """Stop the loop and every instance."""
        self._stopping = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*(i.stop() for i in self.instances), return_exceptions=True)
        self.instances.clear()


def _error(status: int, message: str) -> Response:
    body = json.dumps({"error": message}).encode()
    return Response(status, {"Content-Type": "application/json"}, body)

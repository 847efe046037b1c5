"""The activator and queue-proxy of a revision (knative-semantics.md §1.8, §1.9), really run.

Each test runs a real :class:`Revision` with Knative's KPA, whose instances are forked by the
real :class:`ForkLauncher` and served by gunicorn; the app is a tiny WSGI app
(`wsgi_sleeper.py`) that sleeps on request and reports its pid and the most requests it served
at once. Nothing of ours is replaced.
"""

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp

from knlocal.apis.serving import Container, KnativeService, RevisionTemplate
from knlocal.serving.autoscaler.config import AutoscalerDefaults
from knlocal.serving.autoscaler.scaler import KPA
from knlocal.serving.autoscaler.spec import RevisionScaling
from knlocal.serving.revision import ACTIVATOR_QUEUE_DEPTH, Response, Revision
from knlocal.serving.zygote import ForkLauncher

WSGI_APP = "tests.knlocal.serving.wsgi_sleeper:create_app()"
#: The function image's gunicorn settings (gthread, CONTAINER_CONCURRENCY threads), as knuser's
#: [tool.knlocal] in pyproject.toml gives them to the runtime.
GUNICORN_CONFIG = "python:functions.gunicorn_conf"
#: Start at zero, as the project's Services do (knative/config-autoscaler.yaml).
CONFIG = {"allow-zero-initial-scale": "true"}
#: Bound on every wait, so a broken revision fails the test instead of hanging it.
WAIT_SECONDS = 20.0


@asynccontextmanager
async def running_revision(
    log_dir: Path,
    *,
    cc: int,
    annotations: Mapping[str, str],
    timeout_seconds: int = 30,
    queue_depth: int = ACTIVATOR_QUEUE_DEPTH,
    env: Mapping[str, str] | None = None,
) -> AsyncIterator[Revision]:
    """A started revision of the sleeper app; stopped, with its instances, on exit.

    :param annotations: short autoscaling annotation names (`min-scale`, …) and values.
    :param env: more container environment (e.g. the sleeper's `READY_DELAY`).
    """
    service = KnativeService(
        name="sleeper",
        namespace="default",
        template=RevisionTemplate(
            annotations={f"autoscaling.knative.dev/{k}": v for k, v in annotations.items()},
            container_concurrency=cc,
            timeout_seconds=timeout_seconds,
            container=Container(image="test"),
        ),
    )
    scaling = RevisionScaling.resolve(
        service.template.annotations, cc, AutoscalerDefaults.from_configmap(CONFIG)
    )
    async with aiohttp.ClientSession() as session:
        launcher = ForkLauncher(
            WSGI_APP, "127.0.0.1", log_dir, session, gunicorn_config=GUNICORN_CONFIG
        )
        launcher.open()
        # gunicorn gets more threads than containerConcurrency: the activator alone must keep
        # the limit.
        revision = Revision(
            service,
            {"CONTAINER_CONCURRENCY": "8", **(env or {})},
            launcher,
            KPA(scaling, time.monotonic()),
            session,
            queue_depth=queue_depth,
        )
        revision.start()
        try:
            yield revision
        finally:
            await revision.stop()
            launcher.close()


async def wait_until(condition: Callable[[], bool]) -> None:
    """Poll `condition` until it holds; fail after WAIT_SECONDS."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def sleep_request(revision: Revision, seconds: float) -> Response:
    """One request through the revision's activator."""
    return await revision.handle("GET", f"/sleep?seconds={seconds}", {}, b"")


def test_requests_at_zero_are_held_until_an_instance_is_ready(tmp_path: Path) -> None:
    """§1.8: a revision at zero holds every request while it scales up; none is dropped."""

    async def scenario() -> None:
        async with running_revision(tmp_path, cc=4, annotations={"initial-scale": "0"}) as rev:
            assert (rev.ready, rev.starting) == (0, 0)
            responses = await asyncio.gather(*(sleep_request(rev, 0.05) for _ in range(12)))
            assert [r.status for r in responses] == [200] * 12
            assert rev.stats.cold_starts >= 1
            assert rev.stats.cold_start_seconds[0] > 0
            served_by = {json.loads(r.body)["pid"] for r in responses}
            assert served_by <= {i.process.pid for i in rev.instances}
            assert (rev.stats.responses_503, rev.stats.responses_504) == (0, 0)

    asyncio.run(scenario())


def test_container_concurrency_is_a_hard_limit_and_overflow_gets_503(tmp_path: Path) -> None:
    """§1.8: CC in flight per instance, a bounded queue, and 503 for one request too many."""

    async def scenario() -> None:
        one_instance = {"initial-scale": "1", "min-scale": "1", "max-scale": "1"}
        async with running_revision(tmp_path, cc=2, annotations=one_instance, queue_depth=2) as rev:
            await wait_until(lambda: rev.ready == 1)
            # 2 served at once, 2 queued, the fifth finds the queue full.
            calls = [asyncio.ensure_future(sleep_request(rev, 0.4)) for _ in range(5)]
            first = next(asyncio.as_completed(calls))
            rejected = await first
            assert rejected.status == 503
            assert b"pending request queue full" in rejected.body
            responses = await asyncio.gather(*calls)
            assert sorted(r.status for r in responses) == [200, 200, 200, 200, 503]
            peaks = [json.loads(r.body)["peak"] for r in responses if r.status == 200]
            assert max(peaks) == 2, peaks
            assert rev.stats.responses_503 == 1

    asyncio.run(scenario())


def test_a_request_served_past_timeout_seconds_gets_504(tmp_path: Path) -> None:
    """§1.9: a response that has not started within `timeoutSeconds` is a 504."""

    async def scenario() -> None:
        async with running_revision(
            tmp_path, cc=1, annotations={"initial-scale": "1"}, timeout_seconds=1
        ) as rev:
            await wait_until(lambda: rev.ready == 1)
            response = await sleep_request(rev, 3)
            assert response.status == 504
            assert b"sleeper: request timeout" in response.body
            assert rev.stats.responses_504 == 1

    asyncio.run(scenario())


def test_a_request_held_past_timeout_seconds_gets_504(tmp_path: Path) -> None:
    """§1.8: the activator holds a request at most `timeoutSeconds` for a slow cold start."""

    async def scenario() -> None:
        async with running_revision(
            tmp_path,
            cc=1,
            annotations={"initial-scale": "0"},
            timeout_seconds=1,
            env={"READY_DELAY": "3"},
        ) as rev:
            response = await sleep_request(rev, 0)
            assert response.status == 504
            assert b"activator request timeout" in response.body
            assert rev.stats.responses_504 == 1
            # The instance was being started, and becomes ready later: the next request is served.
            assert rev.starting >= 1
            await wait_until(lambda: rev.ready >= 1)
            assert (await sleep_request(rev, 0)).status == 200

    asyncio.run(scenario())


def test_requests_are_spread_over_ready_instances(tmp_path: Path) -> None:
    """§1.8: with containerConcurrency > 3 the activator sends requests round robin."""

    async def scenario() -> None:
        three = {"initial-scale": "3", "min-scale": "3"}
        async with running_revision(tmp_path, cc=8, annotations=three) as rev:
            await wait_until(lambda: rev.ready == 3)
            pids: Counter[int] = Counter()
            for _ in range(30):
                response = await sleep_request(rev, 0)
                assert response.status == 200
                pids[json.loads(response.body)["pid"]] += 1
            assert set(pids) == {i.process.pid for i in rev.instances}
            assert sorted(pids.values()) == [10, 10, 10]

    asyncio.run(scenario())

"""knlocal/serving/instances.py: an instance gets the computed environment and nothing else.

A pod's container sees the variables of its spec and the Knative runtime contract
(knative-semantics.md §1.1), not the environment of the node that runs it. Both launchers (a
fresh gunicorn process, and a fork of the warm zygote) must give the same: a variable of the
runtime's own environment that was not passed on must not reach the instance.
"""

import asyncio
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from knlocal.serving.instances import GunicornLauncher, Launcher
from knlocal.serving.zygote import ForkLauncher

WSGI_APP = "tests.knlocal.serving.wsgi_sleeper:create_app()"


def gunicorn(log_dir: Path, session: aiohttp.ClientSession) -> Launcher:
    return GunicornLauncher(WSGI_APP, "127.0.0.1", log_dir, session)


def fork(log_dir: Path, session: aiohttp.ClientSession) -> Launcher:
    launcher = ForkLauncher(WSGI_APP, "127.0.0.1", log_dir, session)
    launcher.open()
    return launcher


async def environment_names(
    log_dir: Path, make_launcher: Callable[[Path, aiohttp.ClientSession], Launcher]
) -> set[str]:
    """Start one instance, ask it for its environment's names, stop it."""
    async with aiohttp.ClientSession() as session:
        launcher = make_launcher(log_dir, session)
        try:
            instance = await launcher.start(
                "sleeper", {"K_SERVICE": "sleeper", "READY_DELAY": "0"}, 20.0
            )
            try:
                async with session.get(f"{instance.url}/env") as response:
                    return set(await response.json())
            finally:
                await instance.stop(grace=2.0)
        finally:
            launcher.close()


@pytest.mark.parametrize("make_launcher", [gunicorn, fork], ids=["gunicorn", "fork"])
def test_an_instance_sees_only_the_environment_it_was_given(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    make_launcher: Callable[[Path, aiohttp.ClientSession], Launcher],
) -> None:
    monkeypatch.setenv("KNLOCAL_TEST_RUNTIME_ONLY", "secret")
    names = asyncio.run(environment_names(tmp_path, make_launcher))
    assert {"K_SERVICE", "READY_DELAY", "PORT"} <= names
    assert "KNLOCAL_TEST_RUNTIME_ONLY" not in names

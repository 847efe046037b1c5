"""Helpers shared by every test."""

import os

import pytest


def require_server(name: str, reachable: bool, how: str) -> None:
    """Skip the calling test when a server it needs is down, or fail it when `CI=true`.

    CI starts every server itself (`.ci/run`), so there a missing server is a broken build, not a
    reason to skip; on a developer machine the skip message says how to run the test.

    :param name: the server and its address, e.g. `DynamoDB Local at http://127.0.0.1:8000`.
    :param reachable: whether the server answered.
    :param how: what to do to enable the test, e.g. "run `make dynamodb`".
    :raises pytest.fail.Exception: the server is unreachable and `CI=true`.
    :raises pytest.skip.Exception: the server is unreachable elsewhere.
    """
    if reachable:
        return
    message = f"{name} is not reachable; to run this test, {how}"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} (CI=true: a missing server fails the build)")
    pytest.skip(message)

"""knlocal.ingress: the public API's routes (the VirtualService's rules) before any revision.

Requests that reach a revision are tests/knlocal/test_e2e.py's; these are the ones the route
table answers itself.
"""

import asyncio

from aiohttp.test_utils import TestClient, TestServer

from knlocal.apis.networking import Route
from knlocal.ingress import public_ingress_app

ROUTES = (
    Route(method="POST", path_exact="/users", path_prefix=None, service="operation-create"),
    Route(method="GET", path_exact=None, path_prefix="/operations/", service="operation-get"),
)


def call(method: str, path: str) -> tuple[int, dict[str, str], dict[str, str]]:
    """Send one request to the ingress; return its status, headers and JSON body."""

    async def main() -> tuple[int, dict[str, str], dict[str, str]]:
        app = public_ingress_app(ROUTES, {})
        async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
            response = await client.request(method, path)
            return response.status, dict(response.headers), await response.json()

    return asyncio.run(main())


def test_a_path_no_route_matches_is_404_naming_it() -> None:
    status, _, body = call("GET", "/nowhere")
    assert status == 404
    assert "no route for /nowhere" in str(body)


def test_a_method_the_route_does_not_take_is_405_with_allow() -> None:
    status, headers, body = call("GET", "/users")
    assert status == 405
    assert headers["Allow"] == "POST"
    assert "method GET not allowed on /users" in str(body)

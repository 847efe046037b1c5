"""The public ingress: the VirtualService's routes, and cluster hosts, to revisions.

A request whose Host is `<service>.<namespace>.svc.cluster.local` goes to that Service's
revision unless the Service is cluster-local (a cluster's ingress has no route to it); any other
request follows the routes of the VirtualService.
"""

import urllib.parse
from collections.abc import Mapping, Sequence

from aiohttp import web

from knlocal import edge, tracing
from knlocal.apis.networking import Route
from knlocal.edge import json_error
from knlocal.serving.revision import Revision


def public_ingress_app(
    routes: Sequence[Route], revisions: Mapping[str, Revision]
) -> web.Application:
    """The public API's aiohttp application over `revisions` (by Knative Service name)."""
    public = [r for r in revisions.values() if not r.service.cluster_local]
    by_host = {r.service.cluster_host: r for r in public}

    async def handle(request: web.Request) -> web.Response:
        # Routed and forwarded on the same, normalised path (edge.normalised_path).
        raw_path = edge.normalised_path(request.raw_path)
        path = urllib.parse.unquote(raw_path)
        path_qs = raw_path + (f"?{request.query_string}" if request.query_string else "")
        revision = by_host.get(request.host.split(":")[0])
        if revision is None:
            matching = [r for r in routes if r.matches_path(path)]
            if not matching:
                return json_error(404, f"no route for {path}")
            chosen = next((r for r in matching if r.method in (None, request.method)), None)
            if chosen is None:
                allowed = ", ".join(sorted({r.method for r in matching if r.method}))
                return json_error(
                    405, f"method {request.method} not allowed on {path}", {"Allow": allowed}
                )
            revision = revisions[chosen.service]
        with tracing.ingress_span(request.method, path, request.headers) as span:
            response = await revision.handle(
                request.method, path_qs, request.headers, await request.read()
            )
            tracing.response(span, response.status)
        return web.Response(status=response.status, headers=response.headers, body=response.body)

    app = web.Application(client_max_size=16 * 1024 * 1024)
    # Any path, a decoded newline included (`.` alone stops at one).
    app.router.add_route("*", r"/{tail:[\s\S]*}", handle)
    return app

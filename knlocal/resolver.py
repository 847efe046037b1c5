"""Destinations resolved to targets, as Knative's `pkg/resolver` resolves them to URLs.

A `ref` to a Knative Service is reached through its revision's activator, in process; an
absolute `uri` over HTTP; a `ref` to a Broker (a SinkBinding's sink) is the Broker's ingress
URL (knative-semantics.md §2.4).
"""

import asyncio
from collections.abc import Mapping

import aiohttp

from knlocal.errors import ManifestError
from knlocal.eventing.delivery import Destination
from knlocal.eventing.sender import Reply
from knlocal.serving.revision import Revision

#: The Knative Service kind a `ref` may name locally.
SERVICE_API_VERSION = "serving.knative.dev/v1"


class RevisionTarget:
    """A Knative Service as a delivery destination, reached through its activator."""

    def __init__(self, revision: Revision, path: str) -> None:
        self.revision = revision
        self.path = path or "/"
        self.url = f"http://{revision.service.cluster_host}{self.path if path else ''}"

    async def send(self, headers: Mapping[str, str], body: bytes, timeout: float | None) -> Reply:
        """See :class:`knlocal.eventing.sender.Target`."""
        call = self.revision.handle("POST", self.path, headers, body)
        try:
            response = await (asyncio.wait_for(call, timeout) if timeout else call)
        except TimeoutError:
            error = f"no response from {self.url} in {timeout} s"
            return Reply(None, {}, b"", error=error, timed_out=True)
        return Reply(response.status, response.headers, response.body)


class HttpTarget:
    """An absolute URI as a delivery destination."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session = session
        self.url = url

    async def send(self, headers: Mapping[str, str], body: bytes, timeout: float | None) -> Reply:
        """See :class:`knlocal.eventing.sender.Target`."""
        try:
            async with self.session.post(
                self.url,
                headers=dict(headers),
                data=body,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as response:
                return Reply(response.status, dict(response.headers), await response.read())
        except (aiohttp.ClientError, TimeoutError) as exc:
            error = f"{type(exc).__name__}: {exc}"
            return Reply(None, {}, b"", error=error, timed_out=isinstance(exc, TimeoutError))


class Resolver:
    """Resolves Destinations against the running revisions and Brokers.

    :param session: the HTTP client for absolute URIs.
    :param revisions: the running revisions, by Knative Service name.
    :param broker_urls: each Broker's ingress URL, by `<namespace>/<name>`.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        revisions: Mapping[str, Revision] | None = None,
        broker_urls: Mapping[str, str] | None = None,
    ) -> None:
        self.session = session
        self.revisions = revisions if revisions is not None else {}
        self.broker_urls = broker_urls if broker_urls is not None else {}

    def target(self, destination: Destination, where: str) -> RevisionTarget | HttpTarget:
        """The target a subscriber, dead-letter sink or PingSource sink sends to.

        :raises ManifestError: the ref names something other than a Knative Service.
        """
        ref, uri = destination.ref, destination.uri
        if ref is not None:
            if ref.kind != "Service" or ref.api_version != SERVICE_API_VERSION:
                raise ManifestError(
                    f"{where}: the local runtime resolves refs to Knative Services"
                    f" ({SERVICE_API_VERSION} Service); found {ref.api_version} {ref.kind}"
                )
            # §2.4: ref + uri ⇒ uri is relative to the ref's URL.
            return RevisionTarget(self.revisions[ref.name], uri or "")
        if uri is not None and uri.startswith(("http://", "https://")):
            return HttpTarget(self.session, uri)
        raise ManifestError(f"{where}: expected a ref or an absolute http(s) uri; found {uri!r}")

    def sink_url(self, destination: Destination, namespace: str) -> str:
        """The URL a SinkBinding gives its subject as `K_SINK`: a Broker's ingress or the uri.

        :raises ManifestError: the sink names an unknown Broker, or is neither a Broker nor a uri.
        """
        ref = destination.ref
        if ref is not None and ref.kind == "Broker":
            key = f"{ref.namespace or namespace}/{ref.name}"
            if key not in self.broker_urls:
                raise ManifestError(f"sink refers to Broker {key}: not found")
            return self.broker_urls[key]
        if ref is None and destination.uri is not None:
            return destination.uri
        raise ManifestError(
            f"cannot resolve sink {destination}: expected a Broker ref or an absolute uri"
        )

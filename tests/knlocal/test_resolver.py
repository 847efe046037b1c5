"""knlocal.resolver: Destinations to targets and sink URLs (knative-semantics.md §2.4)."""

import asyncio

import aiohttp
import pytest

from knlocal.errors import ManifestError
from knlocal.eventing.delivery import Destination, ObjectRef
from knlocal.resolver import HttpTarget, Resolver

BROKER_URL = "http://127.0.0.1:8081/default/default"


def resolve(destination: Destination) -> str:
    """The URL the resolver's target for `destination` sends to."""

    async def main() -> str:
        async with aiohttp.ClientSession() as session:
            target = Resolver(session).target(destination, "Trigger default/t")
            assert isinstance(target, HttpTarget)
            return target.url

    return asyncio.run(main())


def test_an_absolute_uri_is_sent_to_over_http() -> None:
    assert resolve(Destination(None, "http://127.0.0.1:9/x")) == "http://127.0.0.1:9/x"


def test_a_ref_to_anything_but_a_knative_service_is_refused_naming_it() -> None:
    ref = ObjectRef("v1", "Service", "plain-k8s-service", None)
    with pytest.raises(ManifestError, match=r"Trigger default/t: .* found v1 Service"):
        resolve(Destination(ref, None))


def test_a_sink_binding_sink_is_the_brokers_ingress_or_its_uri() -> None:
    """A Broker ref without a namespace is the Broker of the binding's namespace (§2.4)."""

    async def main() -> tuple[str, str]:
        async with aiohttp.ClientSession() as session:
            resolver = Resolver(session, broker_urls={"default/default": BROKER_URL})
            broker = ObjectRef("eventing.knative.dev/v1", "Broker", "default", None)
            return (
                resolver.sink_url(Destination(broker, None), "default"),
                resolver.sink_url(Destination(None, "http://127.0.0.1:9/s"), "default"),
            )

    assert asyncio.run(main()) == (BROKER_URL, "http://127.0.0.1:9/s")


def test_a_sink_to_an_unknown_broker_is_refused() -> None:
    async def main() -> None:
        async with aiohttp.ClientSession() as session:
            broker = ObjectRef("eventing.knative.dev/v1", "Broker", "default", None)
            Resolver(session).sink_url(Destination(broker, None), "team-a")

    with pytest.raises(ManifestError, match="Broker team-a/default: not found"):
        asyncio.run(main())

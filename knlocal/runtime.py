"""The local runtime: every Knative object of the manifests, running on one machine.

- the public ingress (default 127.0.0.1:8080) routes the VirtualService's rules, and any request
  whose Host is `<service>.<namespace>.svc.cluster.local`, to that Service's revision;
- the broker ingress (127.0.0.1:8081) takes events for each Broker;
- one dispatcher per Trigger delivers to subscribers through their revisions' activators;
- an admin endpoint (127.0.0.1:8082) serves `/status` (JSON) and `/metrics` (Prometheus).
"""

import asyncio
import logging
import os
import time
from collections.abc import Mapping
from typing import Any

import aiohttp
from aiohttp import web

from knlocal import manifests
from knlocal.errors import ConfigError, ManifestError
from knlocal.eventing.backends import registry as backends
from knlocal.eventing.broker import RunningBroker, ingress_app, json_error
from knlocal.eventing.delivery import DeliverySpec, effective_delivery
from knlocal.eventing.dispatcher import Reply, TriggerDispatcher
from knlocal.eventing.filters import build_trigger_filter
from knlocal.manifests import System
from knlocal.observability import metrics_app
from knlocal.serving.revision import Revision
from knlocal.serving.scaling import KPA, AutoscalerDefaults, RevisionScaling
from knlocal.serving.zygote import ForkLauncher
from knlocal.settings import Settings
from knlocal.sources import ping

log = logging.getLogger("knlocal")

#: Variables of the runtime's own environment that reach the functions: credentials and
#: settings of the cloud services they use, which a cluster would give them by a Secret.
PASSTHROUGH_ENV = frozenset(
    {
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "DYNAMODB_TABLE_PREFIX",
    }
)
#: Kafka broker Trigger annotation selecting per-partition order (§3.1).
DELIVERY_ORDER_ANNOTATION = "kafka.eventing.knative.dev/delivery.order"


class RevisionTarget:
    """A Knative Service as a delivery destination, reached through its activator."""

    def __init__(self, revision: Revision, path: str) -> None:
        self.revision = revision
        self.path = path or "/"
        self.url = f"http://{revision.service.cluster_host}{self.path if path else ''}"

    async def send(self, headers: Mapping[str, str], body: bytes, timeout: float | None) -> Reply:
        """See :class:`knlocal.eventing.dispatcher.Target`."""
        call = self.revision.handle("POST", self.path, headers, body)
        try:
            response = await (asyncio.wait_for(call, timeout) if timeout else call)
        except TimeoutError:
            return Reply(None, {}, b"", error=f"no response from {self.url} in {timeout} s")
        return Reply(response.status, response.headers, response.body)


class HttpTarget:
    """An absolute URI as a delivery destination."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session = session
        self.url = url

    async def send(self, headers: Mapping[str, str], body: bytes, timeout: float | None) -> Reply:
        """See :class:`knlocal.eventing.dispatcher.Target`."""
        try:
            async with self.session.post(
                self.url,
                headers=dict(headers),
                data=body,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as response:
                return Reply(response.status, dict(response.headers), await response.read())
        except (aiohttp.ClientError, TimeoutError) as exc:
            return Reply(None, {}, b"", error=f"{type(exc).__name__}: {exc}")


class Runtime:
    """Builds and runs the whole system from `settings` and the manifests they select."""

    def __init__(self, settings: Settings, system: System | None = None) -> None:
        self.settings = settings
        self.system = system or manifests.load(settings)
        self.revisions: dict[str, Revision] = {}
        self.brokers: dict[tuple[str, str], RunningBroker] = {}
        self.dispatchers: list[TriggerDispatcher] = []
        self._runners: list[web.AppRunner] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None
        self._launcher: ForkLauncher | None = None

    @property
    def broker_urls(self) -> dict[str, str]:
        """Each Broker's ingress address (its `status.address.url` here)."""
        s = self.settings
        return {
            f"{ns}/{name}": f"http://{s.host}:{s.broker_port}/{ns}/{name}"
            for ns, name in self.brokers
        }

    async def start(self) -> None:
        """Open backends, start revisions, dispatchers and servers.

        :raises ConfigError, ManifestError, BackendError: with a message naming what to fix.
        """
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=30),
            auto_decompress=False,
        )
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        assert self._session is not None
        for (namespace, name), broker in self.system.brokers.items():
            backend = backends.create(broker, self._broker_config(broker), self.settings)
            await backend.open()
            self.brokers[(namespace, name)] = RunningBroker(broker, backend)
        self._start_revisions(self._session)
        for trigger in self.system.triggers:
            self.dispatchers.append(await self._dispatcher(trigger, self._session))
        for dispatcher in self.dispatchers:
            self._tasks.append(asyncio.create_task(dispatcher.run()))
        for source in self.system.ping_sources:
            where = f"PingSource {source.namespace}/{source.name} sink"
            target = self._target(source.sink, self._session, where)
            self._tasks.append(asyncio.create_task(ping.run(source, target)))
        s = self.settings
        await self._serve(self._ingress_app(), s.ingress_port)
        await self._serve(ingress_app(self.brokers), s.broker_port)
        await self._serve(metrics_app(self), s.admin_port)

    def _broker_config(self, broker: manifests.Broker) -> Mapping[str, str]:
        ref = broker.config or {}
        if ref.get("kind", "ConfigMap") != "ConfigMap" or not ref.get("name"):
            return {}
        return self.system.config_map(ref.get("namespace", broker.namespace), ref["name"])

    def _start_revisions(self, session: aiohttp.ClientSession) -> None:
        s = self.settings
        defaults = AutoscalerDefaults.from_configmap(
            self.system.config_map("knative-serving", "config-autoscaler")
        )
        launcher = ForkLauncher(s.wsgi_app, s.host, s.data_dir / "logs", session)
        launcher.open()
        self._launcher = launcher
        sinks = {
            b.subject: self._resolve_sink(b.sink, b.namespace) for b in self.system.sink_bindings
        }
        for service in self.system.services.values():
            env = {
                **service.env,
                # The Knative runtime contract (knative-semantics.md §1.1).
                "K_SERVICE": service.name,
                "K_CONFIGURATION": service.name,
                "K_REVISION": service.revision,
                "STORE": s.store,
                "DATA_DIR": str(s.data_dir.resolve()),
                "DYNAMODB_ENDPOINT": s.dynamodb_endpoint,
                "LOG_LEVEL": s.log_level,
            }
            env.update({k: v for k, v in os.environ.items() if k in PASSTHROUGH_ENV})
            if service.name in sinks:
                env["K_SINK"] = sinks[service.name]
            scaling = RevisionScaling.resolve(
                service.annotations, service.container_concurrency, defaults
            )
            revision = Revision(service, env, launcher, KPA(scaling, time.monotonic()), session)
            self.revisions[service.name] = revision
            revision.start()

    def _resolve_sink(self, sink: Mapping[str, Any], namespace: str) -> str:
        ref = sink.get("ref") or {}
        if ref.get("kind") == "Broker":
            key = (ref.get("namespace", namespace), ref["name"])
            if key not in self.brokers:
                raise ManifestError(f"sink refers to Broker {key[0]}/{key[1]}: not found")
            return self.broker_urls[f"{key[0]}/{key[1]}"]
        if "uri" in sink:
            return str(sink["uri"])
        raise ManifestError(f"cannot resolve sink {sink!r}: expected a Broker ref or a uri")

    def _target(
        self, destination: Mapping[str, Any], session: aiohttp.ClientSession, where: str
    ) -> RevisionTarget | HttpTarget:
        ref = destination.get("ref")
        uri = destination.get("uri")
        if ref:
            if ref.get("kind") != "Service" or ref.get("apiVersion") != "serving.knative.dev/v1":
                raise ManifestError(
                    f"{where}: the local runtime resolves refs to Knative Services"
                    f" (serving.knative.dev/v1 Service);"
                    f" found {ref.get('apiVersion')} {ref.get('kind')}"
                )
            # §2.4: ref + uri ⇒ uri is relative to the ref's URL.
            return RevisionTarget(self.revisions[ref["name"]], str(uri or ""))
        if uri and str(uri).startswith(("http://", "https://")):
            return HttpTarget(session, str(uri))
        raise ManifestError(f"{where}: expected a ref or an absolute uri; found {destination!r}")

    async def _dispatcher(
        self, trigger: manifests.Trigger, session: aiohttp.ClientSession
    ) -> TriggerDispatcher:
        where = f"Trigger {trigger.namespace}/{trigger.name}"
        broker = self.brokers[(trigger.namespace, trigger.broker)]
        broker_class = broker.broker.broker_class
        delivery = effective_delivery(
            DeliverySpec.from_manifest(
                broker.broker.delivery, field=f"Broker {broker.broker.name}: spec.delivery"
            ),
            DeliverySpec.from_manifest(
                trigger.spec.get("delivery"), field=f"{where}: spec.delivery"
            ),
            broker_class,
        )
        dead_letter = None
        if delivery.dead_letter_sink is not None:
            sink: Mapping[str, Any] = (
                (trigger.spec.get("delivery") or {}).get("deadLetterSink")
                or (broker.broker.delivery or {}).get("deadLetterSink")
                or {}
            )
            dead_letter = self._target(sink, session, where + " dead-letter sink")
        order = trigger.annotations.get(DELIVERY_ORDER_ANNOTATION, "unordered").lower()
        if order not in ("ordered", "unordered"):
            raise ManifestError(
                f"{where}: {DELIVERY_ORDER_ANNOTATION} must be ordered or unordered;"
                f" found {order!r}"
            )
        group = f"knative-trigger-{trigger.namespace}-{trigger.name}"
        return TriggerDispatcher(
            name=f"{trigger.namespace}/{trigger.name}",
            namespace=trigger.namespace,
            broker_class=broker_class,
            event_filter=build_trigger_filter(trigger.spec, broker_class),
            delivery=delivery,
            subscriber=self._target(trigger.spec["subscriber"], session, where),
            dead_letter=dead_letter,
            subscription=await broker.backend.subscribe(group, ordered=order == "ordered"),
            publish_reply=broker.ingest,
            ordered=order == "ordered",
        )

    def _ingress_app(self) -> web.Application:
        routes = self.system.routes
        by_host = {r.service.cluster_host: r for r in self.revisions.values()}

        async def handle(request: web.Request) -> web.Response:
            revision = by_host.get(request.host.split(":")[0])
            if revision is None:
                matching = [r for r in routes if r.matches_path(request.path)]
                if not matching:
                    return json_error(404, f"no route for {request.path}")
                chosen = next((r for r in matching if r.method in (None, request.method)), None)
                if chosen is None:
                    allowed = ", ".join(sorted({r.method for r in matching if r.method}))
                    return json_error(
                        405,
                        f"method {request.method} not allowed on {request.path}",
                        {"Allow": allowed},
                    )
                revision = self.revisions[chosen.service]
            response = await revision.handle(
                request.method, request.path_qs, request.headers, await request.read()
            )
            return web.Response(
                status=response.status, headers=response.headers, body=response.body
            )

        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", handle)
        return app

    async def _serve(self, app: web.Application, port: int) -> None:
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        self._runners.append(runner)
        site = web.TCPSite(runner, self.settings.host, port, backlog=1024, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {self.settings.host}:{port}: {exc.strerror}; is another"
                " runtime running? Stop it or choose other ports (INGRESS_PORT, BROKER_PORT,"
                " ADMIN_PORT)"
            ) from exc

    async def stop(self) -> None:
        """Stop servers, dispatchers, instances and backends; leave no process or port behind."""
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(d.stop() for d in self.dispatchers), return_exceptions=True)
        await asyncio.gather(*(r.stop() for r in self.revisions.values()), return_exceptions=True)
        if self._launcher is not None:
            self._launcher.close()
        for broker in self.brokers.values():
            await broker.backend.close()
        if self._session is not None:
            await self._session.close()

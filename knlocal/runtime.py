"""The local runtime: every Knative object of the manifests, running on one machine.

- the public ingress (default 127.0.0.1:8080) routes the VirtualService's rules, and any request
  whose Host is `<service>.<namespace>.svc.cluster.local`, to that Service's revision, unless
  the Service is cluster-local (as a cluster's ingress has no route to it); in-cluster callers
  (the broker, SinkBinding sinks) reach every Service through its revision's activator;
- the broker ingress (127.0.0.1:8081) takes events for each Broker;
- one dispatcher per Trigger delivers to subscribers through their revisions' activators;
- an admin endpoint (127.0.0.1:8082) serves `/status` (JSON) and `/metrics` (Prometheus).
"""

import asyncio
import logging
import os
import time
import urllib.parse
from collections.abc import Mapping
from typing import Any

import aiohttp
from aiohttp import web

from knlocal import edge, manifests
from knlocal.edge import json_error
from knlocal.errors import ConfigError, ManifestError
from knlocal.eventing.backends import registry as backends
from knlocal.eventing.broker import BrokerTarget, RunningBroker, ingress_app
from knlocal.eventing.classes import RABBITMQ_BROKER
from knlocal.eventing.delivery import Destination, effective_delivery
from knlocal.eventing.dispatcher import DEFAULT_PARALLELISM, TriggerDispatcher
from knlocal.eventing.faults import FaultPlan, FaultyBroker, FaultyTarget, Injector
from knlocal.eventing.filters import build_trigger_filter
from knlocal.eventing.sender import Reply, Target
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


class Runtime:
    """Builds and runs the whole system from `settings` and the manifests they select."""

    def __init__(
        self, settings: Settings, system: System | None = None, faults: FaultPlan | None = None
    ) -> None:
        self.settings = settings
        self.system = system or manifests.load(settings)
        #: Faults injected in the event path (knlocal/eventing/faults.py), or None.
        self.faults = Injector(faults) if faults is not None else None
        self.revisions: dict[str, Revision] = {}
        self.brokers: dict[tuple[str, str], RunningBroker] = {}
        self.dispatchers: list[TriggerDispatcher] = []
        #: Each PingSource with its resolved sink, by (namespace, name).
        self.pings: dict[tuple[str, str], tuple[ping.PingSource, RevisionTarget | HttpTarget]] = {}
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
        if self.faults is not None:
            self.faults.plan.check_names(
                {f"{t.namespace}/{t.name}" for t in self.system.triggers},
                {f"{ns}/{name}" for ns, name in self.system.brokers},
            )
        for (namespace, name), broker in self.system.brokers.items():
            backend = backends.create(broker, self.system.broker_config(broker), self.settings)
            await backend.open()
            running = RunningBroker(broker, backend)
            rules = self.faults.plan.brokers.get(f"{namespace}/{name}") if self.faults else None
            if self.faults is not None and rules:
                running = FaultyBroker(running, f"{namespace}/{name}", rules, self.faults)
            self.brokers[(namespace, name)] = running
        self._start_revisions(self._session)
        for trigger in self.system.triggers:
            self.dispatchers.append(await self._dispatcher(trigger, self._session))
        for dispatcher in self.dispatchers:
            self._tasks.append(asyncio.create_task(dispatcher.run()))
        for source in self.system.ping_sources:
            where = f"PingSource {source.namespace}/{source.name} sink"
            target = self._target(source.sink, self._session, where)
            self.pings[(source.namespace, source.name)] = (source, target)
            self._tasks.append(asyncio.create_task(ping.run(source, target)))
        s = self.settings
        edge.log_client_errors_as_warnings()
        await self._serve(self._ingress_app(), s.ingress_port)
        await self._serve(ingress_app(self.brokers), s.broker_port)
        await self._serve(metrics_app(self), s.admin_port)

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
        self, destination: Destination, session: aiohttp.ClientSession, where: str
    ) -> RevisionTarget | HttpTarget:
        ref, uri = destination.ref, destination.uri
        if ref is not None:
            if ref.kind != "Service" or ref.api_version != "serving.knative.dev/v1":
                raise ManifestError(
                    f"{where}: the local runtime resolves refs to Knative Services"
                    f" (serving.knative.dev/v1 Service); found {ref.api_version} {ref.kind}"
                )
            # §2.4: ref + uri ⇒ uri is relative to the ref's URL.
            return RevisionTarget(self.revisions[ref.name], uri or "")
        if uri is not None and uri.startswith(("http://", "https://")):
            return HttpTarget(session, uri)
        raise ManifestError(f"{where}: expected a ref or an absolute http(s) uri; found {uri!r}")

    async def _dispatcher(
        self, trigger: manifests.Trigger, session: aiohttp.ClientSession
    ) -> TriggerDispatcher:
        where = f"Trigger {trigger.namespace}/{trigger.name}"
        broker = self.brokers[(trigger.namespace, trigger.broker)]
        broker_class = broker.broker.broker_class
        delivery = effective_delivery(broker.broker.delivery, trigger.delivery, broker_class)
        dead_letter = None
        if delivery.dead_letter_sink is not None:
            dead_letter = self._target(
                delivery.dead_letter_sink, session, where + " dead-letter sink"
            )
        broker_url = self.broker_urls[f"{trigger.namespace}/{trigger.broker}"]
        group = broker_class.consumer_group(trigger.namespace, trigger.name)
        name = f"{trigger.namespace}/{trigger.name}"
        subscriber: Target = self._target(trigger.subscriber, session, where)
        parallelism, ordered = DEFAULT_PARALLELISM, trigger.ordered
        if broker_class is RABBITMQ_BROKER:
            # §3.3: `parallelism` deliveries in flight, default 1; only 1 keeps the queue's order.
            parallelism = trigger.parallelism or 1
            ordered = parallelism == 1
        rules = self.faults.plan.triggers.get(name) if self.faults else None
        if self.faults is not None and rules:
            subscriber = FaultyTarget(subscriber, name, rules, self.faults)
        return TriggerDispatcher(
            name=name,
            namespace=trigger.namespace,
            broker_class=broker_class,
            event_filter=build_trigger_filter(trigger.spec, broker_class),
            delivery=delivery,
            subscriber=subscriber,
            dead_letter=dead_letter,
            subscription=await broker.backend.subscribe(
                group, ordered=ordered, attributes=trigger.filter_attributes
            ),
            reply=BrokerTarget(broker, broker_url),
            parallelism=parallelism,
            ordered=ordered,
        )

    def _ingress_app(self) -> web.Application:
        routes = self.system.routes
        public = [r for r in self.revisions.values() if not r.service.cluster_local]
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
                        405,
                        f"method {request.method} not allowed on {path}",
                        {"Allow": allowed},
                    )
                revision = self.revisions[chosen.service]
            response = await revision.handle(
                request.method, path_qs, request.headers, await request.read()
            )
            return web.Response(
                status=response.status, headers=response.headers, body=response.body
            )

        app = web.Application(client_max_size=16 * 1024 * 1024)
        # Any path, a decoded newline included (`.` alone stops at one).
        app.router.add_route("*", r"/{tail:[\s\S]*}", handle)
        return app

    async def _serve(self, app: web.Application, port: int) -> None:
        timeout = self.settings.read_timeout
        app.middlewares.append(edge.json_errors(timeout))
        # aiohttp closes a connection that has not sent a whole request within its keep-alive
        # timeout: that bounds slow headers (knlocal/edge.py).
        runner = web.AppRunner(
            app, access_log=None, handle_signals=False, keepalive_timeout=timeout
        )
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

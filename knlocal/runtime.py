"""The local runtime: every Knative object of the manifests, running on one machine.

Wiring only: the parts are built by :mod:`knlocal.factories` (as the tests build them) from the
typed manifests of :mod:`knlocal.apis`, and served here:

- the public ingress (default 127.0.0.1:8080, :mod:`knlocal.ingress`);
- the broker ingress (127.0.0.1:8081) takes events for each Broker;
- one dispatcher per Trigger delivers to subscribers through their revisions' activators
  (:mod:`knlocal.resolver`);
- an admin endpoint (127.0.0.1:8082) serves `/status` (JSON) and `/metrics` (Prometheus).
"""

import asyncio
import logging
import os
import time

import aiohttp
from aiohttp import web

from knlocal import edge, tracing
from knlocal.apis import loader
from knlocal.apis.configmaps import CONFIG_AUTOSCALER, SERVING_NAMESPACE
from knlocal.apis.loader import System
from knlocal.apis.sources import PingSource
from knlocal.errors import ConfigError
from knlocal.eventing.broker import RunningBroker, ingress_app
from knlocal.eventing.correlation import Correlation
from knlocal.eventing.dispatcher import TriggerDispatcher
from knlocal.eventing.faults import FaultPlan, Injector
from knlocal.factories import open_broker, revision_environment, trigger_dispatcher
from knlocal.ingress import public_ingress_app
from knlocal.observability import metrics_app
from knlocal.resolver import HttpTarget, Resolver, RevisionTarget
from knlocal.serving.autoscaler.config import AutoscalerDefaults
from knlocal.serving.autoscaler.scaler import KPA
from knlocal.serving.autoscaler.spec import RevisionScaling
from knlocal.serving.local_caps import CONFIG_MAP as SCALE_CAPS
from knlocal.serving.local_caps import ScaleCaps
from knlocal.serving.revision import Revision
from knlocal.serving.zygote import ForkLauncher
from knlocal.settings import Settings
from knlocal.sources import ping

log = logging.getLogger("knlocal")


class Runtime:
    """Builds and runs the whole system from `settings` and the manifests they select."""

    def __init__(
        self, settings: Settings, system: System | None = None, faults: FaultPlan | None = None
    ) -> None:
        self.settings = settings
        self.system = system or loader.load(settings)
        #: Faults injected in the event path (knlocal/eventing/faults.py), or None.
        self.faults = Injector(faults) if faults is not None else None
        self.revisions: dict[str, Revision] = {}
        self.brokers: dict[tuple[str, str], RunningBroker] = {}
        self.dispatchers: list[TriggerDispatcher] = []
        #: Each PingSource with its resolved sink, by (namespace, name).
        self.pings: dict[tuple[str, str], tuple[PingSource, RevisionTarget | HttpTarget]] = {}
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
        if tracing.configure(os.environ):  # the OTEL_* variables; off (no-op hooks) otherwise
            log.info("tracing: spans exported by %s", tracing.exporter_name(os.environ))
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=30),
            auto_decompress=False,
        )
        try:
            await self._start(self._session)
        except BaseException:
            await self.stop()
            raise

    async def _start(self, session: aiohttp.ClientSession) -> None:
        if self.faults is not None:
            self.faults.plan.check_names(
                {t.key for t in self.system.triggers}, {b.key for b in self.system.brokers.values()}
            )
        for key, manifest in self.system.brokers.items():
            config = self.system.broker_config(manifest)
            self.brokers[key] = await open_broker(manifest, config, self.settings, self.faults)
        resolver = Resolver(session, self.revisions, self.broker_urls)
        self._start_revisions(session, resolver)
        for trigger in self.system.triggers:
            running = self.brokers[(trigger.namespace, trigger.broker)]
            url = self.broker_urls[f"{trigger.namespace}/{trigger.broker}"]
            self.dispatchers.append(
                await trigger_dispatcher(
                    trigger,
                    running,
                    resolver,
                    broker_url=url,
                    faults=self.faults,
                    correlation=Correlation(self.settings.correlation_extensions),
                )
            )
        for dispatcher in self.dispatchers:
            self._tasks.append(asyncio.create_task(dispatcher.run()))
        for source in self.system.ping_sources:
            where = f"PingSource {source.namespace}/{source.name} sink"
            target = resolver.target(source.sink, where)
            self.pings[(source.namespace, source.name)] = (source, target)
            self._tasks.append(asyncio.create_task(ping.run(source, target)))
        s = self.settings
        edge.log_client_errors_as_warnings()
        await self._serve(public_ingress_app(self.system.routes, self.revisions), s.ingress_port)
        await self._serve(ingress_app(self.brokers), s.broker_port)
        await self._serve(metrics_app(self), s.admin_port)

    def _start_revisions(self, session: aiohttp.ClientSession, resolver: Resolver) -> None:
        s = self.settings
        defaults = AutoscalerDefaults.from_configmap(
            self.system.config_map(SERVING_NAMESPACE, CONFIG_AUTOSCALER)
        )
        caps = ScaleCaps.from_configmap(self.system.config_map(*SCALE_CAPS))
        if not s.wsgi_app:
            raise ConfigError(
                "no WSGI app to run in the Services' containers: expected `wsgi-app` in"
                f" [tool.knlocal] of {s.manifests / 'pyproject.toml'} or KNLOCAL_WSGI_APP;"
                " found neither"
            )
        launcher = ForkLauncher(
            s.wsgi_app,
            s.host,
            s.data_dir / "logs",
            session,
            gunicorn_config=s.gunicorn_config,
        )
        launcher.open()
        self._launcher = launcher
        sinks = {
            b.subject: resolver.sink_url(b.sink, b.namespace) for b in self.system.sink_bindings
        }
        for service in self.system.services.values():
            env = revision_environment(service, s, sinks.get(service.name))
            template = service.template
            scaling = RevisionScaling.resolve(
                caps.annotations(service.name, template.annotations),
                template.container_concurrency,
                defaults,
            )
            revision = Revision(service, env, launcher, KPA(scaling, time.monotonic()), session)
            self.revisions[service.name] = revision
            revision.start()

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
        tracing.shutdown()

"""The daemon: config → account runners → scheduler → HTTP server, until a stop signal."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web
from prometheus_client import GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.registry import CollectorRegistry

from exporter.accounts import AccountBase
from exporter.collector import ExporterCollector, Exposition
from exporter.config import (
    Config,
    ConfigError,
    Problem,
    load_config,
    parse_listen_address,
)
from exporter.logs import register_secrets
from exporter.scheduler import Scheduler
from exporter.shard import Shard
from exporter.web import make_app
from exporter.webconfig import WebConfig, load_web_config

log = structlog.get_logger("exporter")

# SPEC §1: SIGTERM/SIGINT stop within 5 s; the two budgets below add up to well under that.
POLL_CANCEL_SECONDS = 2.0
HTTP_SHUTDOWN_SECONDS = 1.5


class Daemon:
    """Owns the scheduler (and through it the runners) and the HTTP server of one config."""

    def __init__(
        self,
        config: Config,
        *,
        listen_address: str | None = None,
        shard: Shard | None = None,
        config_path: str | Path | None = None,
        web_config_path: str | Path | None = None,
        config_overrides: Mapping[str, Any] | None = None,
    ) -> None:
        self.config = config
        self.config_overrides = config_overrides  # from flags: applied on every reload
        self.config_path = config_path
        self.web_config_path = web_config_path
        self.listen_address = listen_address or config.listen_address
        self.shard = shard
        # Raises ConfigError at start-up: a bad web config must stop the daemon, not open it.
        self.web = load_web_config(web_config_path) if web_config_path else WebConfig()
        self.scheduler = Scheduler(config, self._accounts(config))
        self.collector = ExporterCollector(self.scheduler.statuses, families=self._families)
        self.collector.reload_ts = time.time()
        # The small families rendered per scrape: the exporter's own and the process'.
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self.collector)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.exposition = Exposition(
            self.scheduler.statuses, self.registry, families=self._families
        )
        self._http: web.AppRunner | None = None
        self._reloading: asyncio.Task[bool] | None = None
        self.port = 0

    def _families(self) -> frozenset[str]:
        return self.config.enabled_families

    def _accounts(self, config: Config) -> list[AccountBase]:
        for account in config.accounts:
            register_secrets(account.secret_values())
        return [
            a for a in config.accounts if self.shard is None or self.shard.owns(a.vendor, a.name)
        ]

    async def start(self) -> None:
        host, port = parse_listen_address(self.listen_address)
        app = make_app(
            exposition=self.exposition,
            statuses=self.scheduler.statuses,
            alive=lambda: self.scheduler.running,
            ready=self.scheduler.ready,
            web_config=self.web,
        )
        self._http = web.AppRunner(
            app, access_log=None, shutdown_timeout=HTTP_SHUTDOWN_SECONDS, handle_signals=False
        )
        await self._http.setup()
        site = web.TCPSite(
            self._http, host, port, reuse_address=True, ssl_context=self.web.ssl_context
        )
        await site.start()
        server: Any = site._server  # aiohttp exposes no public accessor for the bound port
        self.port = server.sockets[0].getsockname()[1] if server and server.sockets else port
        self.scheduler.start()
        log.info(
            "started",
            listen=f"{host}:{self.port}",
            tls=self.web.ssl_context is not None,
            basic_auth=self.web.auth_required,
            accounts=len(self.scheduler.runners),
            shard=f"{self.shard.index}/{self.shard.count}" if self.shard else None,
        )

    async def reload(self) -> bool:
        """Re-read the config and web config files (SIGHUP); keep the old ones if invalid."""
        ok = True
        new_config = self.config
        if self.config_path is not None:
            try:
                new_config = await asyncio.to_thread(
                    load_config, self.config_path, overrides=self.config_overrides
                )
            except ConfigError as err:
                ok = False
                log.error(
                    "reload_failed",
                    file=str(self.config_path),
                    problems=[str(p) for p in err.problems],
                )
        if self.web_config_path is not None:
            try:
                self._reload_web()
            except ConfigError as err:
                ok = False
                log.error(
                    "reload_failed",
                    file=str(self.web_config_path),
                    problems=[str(p) for p in err.problems],
                )
        if ok and new_config is not self.config:
            await self._apply(new_config)
        self.collector.reload_ok = ok
        if ok:
            self.collector.reload_ts = time.time()
            log.info("reloaded", accounts=len(self.scheduler.runners))
        return ok

    def _reload_web(self) -> None:
        assert self.web_config_path is not None
        probe = load_web_config(self.web_config_path)  # validate fully before touching anything
        if (probe.ssl_context is None) != (self.web.ssl_context is None):
            raise ConfigError([_restart_needed("turning TLS on or off")])
        if self.web.ssl_context is not None:
            # Same context object the listening socket uses: new handshakes get the new certs.
            load_web_config(self.web_config_path, context=self.web.ssl_context)
        self.web.update_from(probe)

    async def _apply(self, config: Config) -> None:
        if config.listen_address != self.config.listen_address:
            log.warning("reload_ignored", key="listen_address", reason="needs a restart")
        await self.scheduler.reconcile(config, self._accounts(config))
        self.config = config

    async def stop(self) -> None:
        await self.scheduler.shutdown(grace=POLL_CANCEL_SECONDS)
        if self._http is not None:
            await self._http.cleanup()
            self._http = None
        log.info("stopped")

    def _on_sighup(self) -> None:
        if self._reloading is None or self._reloading.done():
            self._reloading = asyncio.create_task(self.reload())

    async def serve(self, stop: asyncio.Event | None = None) -> None:
        """Run until SIGTERM/SIGINT (or `stop` is set); SIGHUP reloads."""
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, self._on_sighup)
        try:
            await self.start()
            await stop.wait()
            log.info("stopping")
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            if self._reloading is not None:
                self._reloading.cancel()
            await self.stop()


def _restart_needed(what: str) -> Problem:
    return Problem("", f"{what} needs a restart")

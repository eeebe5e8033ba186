"""The daemon: config → account runners → scheduler → HTTP server, until a stop signal."""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

import structlog
from aiohttp import web
from prometheus_client import GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.registry import CollectorRegistry

from exporter.collector import ExporterCollector, Exposition
from exporter.config import Config, parse_listen_address
from exporter.logs import register_secrets
from exporter.scheduler import AccountRunner, AccountStatus, Scheduler
from exporter.shard import Shard
from exporter.web import make_app

log = structlog.get_logger("exporter")

# SPEC §1: SIGTERM/SIGINT stop within 5 s; the two budgets below add up to well under that.
POLL_CANCEL_SECONDS = 2.0
HTTP_SHUTDOWN_SECONDS = 1.5


class Daemon:
    """Owns the runners, the scheduler and the HTTP server of one configuration."""

    def __init__(
        self, config: Config, *, listen_address: str | None = None, shard: Shard | None = None
    ) -> None:
        self.config = config
        self.listen_address = listen_address or config.listen_address
        accounts = [a for a in config.accounts if shard is None or shard.owns(a.vendor, a.name)]
        for account in config.accounts:
            register_secrets(account.secret_values())
        self.runners = [AccountRunner(a, config) for a in accounts]
        self.scheduler = Scheduler(self.runners)
        self.collector = ExporterCollector(self.statuses)
        self.collector.reload_ts = time.time()
        # The small families rendered per scrape: the exporter's own and the process'.
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self.collector)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.exposition = Exposition(self.statuses, self.registry)
        self._http: web.AppRunner | None = None
        self.port = 0
        self.shard = shard

    def statuses(self) -> list[AccountStatus]:
        return [r.status for r in self.runners]

    async def start(self) -> None:
        host, port = parse_listen_address(self.listen_address)
        app = make_app(
            exposition=self.exposition,
            statuses=self.statuses,
            alive=lambda: self.scheduler.running,
            ready=self.scheduler.ready,
        )
        self._http = web.AppRunner(
            app, access_log=None, shutdown_timeout=HTTP_SHUTDOWN_SECONDS, handle_signals=False
        )
        await self._http.setup()
        site = web.TCPSite(self._http, host, port, reuse_address=True)
        await site.start()
        server: Any = site._server  # aiohttp exposes no public accessor for the bound port
        self.port = server.sockets[0].getsockname()[1] if server and server.sockets else port
        self.scheduler.start()
        log.info(
            "started",
            listen=f"{host}:{self.port}",
            accounts=len(self.runners),
            shard=f"{self.shard.index}/{self.shard.count}" if self.shard else None,
        )

    async def stop(self) -> None:
        await self.scheduler.shutdown(grace=POLL_CANCEL_SECONDS)
        if self._http is not None:
            await self._http.cleanup()
            self._http = None
        log.info("stopped")

    async def serve(self, stop: asyncio.Event | None = None) -> None:
        """Run until SIGTERM/SIGINT (or `stop` is set)."""
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await self.start()
            await stop.wait()
            log.info("stopping")
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            await self.stop()

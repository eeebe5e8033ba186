"""The daemon: config → account runners → scheduler → HTTP server, until a stop signal."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import structlog
from aiohttp import web
from prometheus_client import GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.registry import CollectorRegistry

from exporter.accounts import AccountBase
from exporter.collector import ExporterCollector, Exposition
from exporter.config import (
    DEFAULT_WEBHOOK_BODY_BYTES,
    Config,
    ConfigError,
    Problem,
    load_config,
    parse_listen_address,
)
from exporter.logs import register_secrets
from exporter.scheduler import Scheduler
from exporter.shard import Shard
from exporter.vendors import REGISTRY
from exporter.web import Connections, GuardedSite, make_app
from exporter.webconfig import WebConfig, load_web_config
from exporter.webhooks import WebhookListener

log = structlog.get_logger("exporter")
T = TypeVar("T")

# SPEC §1: SIGTERM/SIGINT stop within 5 s; the two budgets below add up to well under that.
POLL_CANCEL_SECONDS = 2.0
HTTP_SHUTDOWN_SECONDS = 1.5
# Past this after SIGTERM the process exits even if a worker thread is stuck (a bcrypt check, a
# read on a hung mount): Python would otherwise wait for it at exit, for ever.
EXIT_DEADLINE_SECONDS = 4.5
# Once shutdown is done, threads still running get this long before the exit is forced.
EXIT_GRACE_SECONDS = 0.5
# The same event-loop error (e.g. accept() failing past the fd limit) is logged at most once per
# this many seconds, with how many were suppressed: a failing accept loop must not fill disks.
LOOP_ERROR_LOG_SECONDS = 10.0


class _LoopErrors:
    """A rate-limited asyncio exception handler."""

    def __init__(self) -> None:
        self.last: dict[str, float] = {}
        self.suppressed: dict[str, int] = {}

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        message = str(context.get("message", "event loop error"))
        exc = context.get("exception")
        key = f"{message}|{type(exc).__name__ if exc else ''}"
        now = time.monotonic()
        if now - self.last.get(key, -LOOP_ERROR_LOG_SECONDS) < LOOP_ERROR_LOG_SECONDS:
            self.suppressed[key] = self.suppressed.get(key, 0) + 1
            return
        self.last[key] = now
        log.error(
            "event_loop_error",
            message=message,
            error=f"{type(exc).__name__}: {exc}" if exc else None,
            suppressed_since_last=self.suppressed.pop(key, 0),
        )


async def _reread(path: str | Path, read: Awaitable[T]) -> T | None:
    """What `read` loaded from `path`; None, with the problems logged, when the file is invalid."""
    try:
        return await read
    except ConfigError as err:
        log.error("reload_failed", file=str(path), problems=[str(p) for p in err.problems])
        return None


class Daemon:
    """Owns the scheduler (and through it the runners) and the HTTP server of one config."""

    def __init__(
        self,
        config: Config,
        *,
        listen_address: str | None = None,
        webhook_listen_address: str | None = None,
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
        self.collector = ExporterCollector(
            self.scheduler.statuses,
            (shard.index, shard.count) if shard else (0, 1),
            families=self._families,
        )
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
        # The webhook port (SPEC §6.2): off unless configured here or on the command line.
        hooks = config.webhooks
        self.webhook_listen_address = webhook_listen_address or (
            hooks.listen_address if hooks else None
        )
        self.webhooks: WebhookListener | None = None
        if self.webhook_listen_address is not None:
            self.webhooks = WebhookListener(
                lambda: self.scheduler.runners,
                max_body_bytes=hooks.max_body_bytes if hooks else DEFAULT_WEBHOOK_BODY_BYTES,
            )
            self.registry.register(self.webhooks.collector())
        self._webhook_http: web.AppRunner | None = None
        self.webhook_port = 0
        self._http: web.AppRunner | None = None
        self._reloading: asyncio.Task[None] | None = None
        self._reload_again = False
        self.connections = Connections()
        self._sweeper: asyncio.Task[None] | None = None
        self._stopped = threading.Event()
        self._watchdog: threading.Thread | None = None
        self.port = 0

    def _families(self) -> frozenset[str]:
        return self.config.enabled_families

    def _accounts(self, config: Config) -> list[AccountBase]:
        for account in config.accounts:
            # The request headers too: a Basic pair's base64 is a secret of its own.
            headers = REGISTRY[account.vendor].adapter.headers(account)
            register_secrets(account.secret_values(), headers)
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
            connections=self.connections,
        )
        self._http = web.AppRunner(
            app, access_log=None, shutdown_timeout=HTTP_SHUTDOWN_SECONDS, handle_signals=False
        )
        await self._http.setup()
        site = GuardedSite(
            self._http,
            host,
            port,
            connections=self.connections,
            ssl_context=self.web.ssl_context,
        )
        await site.start()
        self._sweeper = asyncio.create_task(self.connections.sweeper())
        for warning in self.web.warnings:
            log.warning("web_config_warning", file=str(self.web_config_path), problem=warning)
        server: Any = site._server  # aiohttp exposes no public accessor for the bound port
        self.port = server.sockets[0].getsockname()[1] if server and server.sockets else port
        if self.webhooks is not None and self.webhook_listen_address is not None:
            await self._start_webhooks(self.webhooks, self.webhook_listen_address)
        self.scheduler.start()
        log.info(
            "started",
            listen=f"{host}:{self.port}",
            tls=self.web.ssl_context is not None,
            basic_auth=self.web.auth_required,
            max_connections=self.connections.limit,
            accounts=len(self.scheduler.runners),
            shard=f"{self.shard.index}/{self.shard.count}" if self.shard else None,
            webhooks=f"{self.webhook_listen_address.rpartition(':')[0]}:{self.webhook_port}"
            if self.webhook_listen_address
            else None,
        )

    async def _start_webhooks(self, listener: WebhookListener, address: str) -> None:
        """The webhook port: no basic auth (vendors sign instead), TLS as /metrics has it."""
        host, port = parse_listen_address(address)
        self._webhook_http = web.AppRunner(
            listener.app(),
            access_log=None,
            shutdown_timeout=HTTP_SHUTDOWN_SECONDS,
            handle_signals=False,
        )
        await self._webhook_http.setup()
        site = web.TCPSite(
            self._webhook_http, host, port, reuse_address=True, ssl_context=self.web.ssl_context
        )
        await site.start()
        server: Any = site._server
        self.webhook_port = server.sockets[0].getsockname()[1] if server.sockets else port

    async def reload(self) -> bool:
        """Re-read the config and web config files (SIGHUP); keep the old ones if invalid."""
        ok = True
        new_config = self.config
        if self.config_path is not None:
            read = asyncio.to_thread(load_config, self.config_path, overrides=self.config_overrides)
            loaded = await _reread(self.config_path, read)
            ok = loaded is not None
            new_config = self.config if loaded is None else loaded
        if self.web_config_path is not None:
            ok = await _reread(self.web_config_path, self._reload_web()) is not None and ok
        if ok and new_config is not self.config:
            await self._apply(new_config)
        self.collector.reload_ok = ok
        if ok:
            self.collector.reload_ts = time.time()
            log.info("reloaded", accounts=len(self.scheduler.runners))
        return ok

    async def _reload_web(self) -> WebConfig:
        assert self.web_config_path is not None
        # Validated fully (certificates loaded into a fresh context) before anything changes.
        probe = await asyncio.to_thread(load_web_config, self.web_config_path)
        if (probe.ssl_context is None) != (self.web.ssl_context is None):
            raise ConfigError([_restart_needed("turning TLS on or off")])
        # New handshakes switch to the new context; users and cached checks are replaced whole.
        self.web.update_from(probe)
        for warning in probe.warnings:
            log.warning("web_config_warning", file=str(self.web_config_path), problem=warning)
        return probe

    async def _apply(self, config: Config) -> None:
        if config.listen_address != self.config.listen_address:
            log.warning("reload_ignored", key="listen_address", reason="needs a restart")
        if config.webhooks != self.config.webhooks:
            log.warning("reload_ignored", key="webhooks", reason="needs a restart")
        await self.scheduler.reconcile(config, self._accounts(config))
        self.config = config

    async def stop(self) -> None:
        started = self.port != 0  # set once the listener is bound
        await self.scheduler.shutdown(grace=POLL_CANCEL_SECONDS)
        if self._webhook_http is not None:
            await self._webhook_http.cleanup()
            self._webhook_http = None
        if self._sweeper is not None:
            self._sweeper.cancel()
        self.web.shutdown()
        if self._http is not None:
            await self._http.cleanup()
            self._http = None
        if started:  # a failed bind is reported by the caller alone, not after a "stopped"
            log.info("stopped")

    async def _reload_loop(self) -> None:
        # A SIGHUP during a reload is remembered, not dropped: once this reload ends the files
        # are read again, so the newest one always ends up applied (any number coalesce).
        while True:
            self._reload_again = False
            await self.reload()
            if not self._reload_again:
                return

    def _on_sighup(self) -> None:
        if self._reloading is None or self._reloading.done():
            self._reloading = asyncio.create_task(self._reload_loop())
        else:
            self._reload_again = True

    def _on_stop_signal(self, stop: asyncio.Event) -> None:
        stop.set()
        if self._watchdog is None:
            self._watchdog = threading.Thread(target=self._exit_watchdog, daemon=True)
            self._watchdog.start()

    def _exit_watchdog(self) -> None:
        """Force the exit when shutdown, or the interpreter's wait for threads, runs too long."""
        deadline = time.monotonic() + EXIT_DEADLINE_SECONDS
        done = self._stopped.wait(EXIT_DEADLINE_SECONDS)
        if done:
            time.sleep(max(0.0, min(EXIT_GRACE_SECONDS, deadline - time.monotonic())))
        stuck = [t.name for t in threading.enumerate() if t.is_alive() and not t.daemon]
        log.warning(
            "exit_forced",
            reason="shutdown finished but worker threads are still running"
            if done
            else "shutdown did not finish in time",
            threads=[n for n in stuck if n != threading.main_thread().name][:10],
        )
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os._exit(0 if done else 1)

    async def serve(self, stop: asyncio.Event | None = None) -> None:
        """Run until SIGTERM/SIGINT (or `stop` is set); SIGHUP reloads."""
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(_LoopErrors())
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_stop_signal, stop)
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
            self._stopped.set()


def _restart_needed(what: str) -> Problem:
    return Problem("", f"{what} needs a restart")

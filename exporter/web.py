"""HTTP endpoints (SPEC §3): /metrics, /healthz, /readyz and the landing page."""

from __future__ import annotations

import gzip
import time
from collections.abc import Callable, Iterable

from aiohttp import web
from prometheus_client.exposition import choose_encoder, gzip_accepted
from prometheus_client.registry import CollectorRegistry

from exporter.scheduler import AccountStatus
from exporter.statuspage import landing_page

# Exposition bodies compress ~10x; level 1 keeps most of that at a fraction of the CPU.
GZIP_LEVEL = 1


def make_app(
    *,
    registry: CollectorRegistry,
    statuses: Callable[[], Iterable[AccountStatus]],
    alive: Callable[[], bool],
    ready: Callable[[], bool],
) -> web.Application:
    async def metrics(request: web.Request) -> web.Response:
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        body = encoder(registry)
        headers = {"Content-Type": content_type}
        if gzip_accepted(request.headers.get("Accept-Encoding", "")):
            body = gzip.compress(body, compresslevel=GZIP_LEVEL)
            headers["Content-Encoding"] = "gzip"
        return web.Response(body=body, headers=headers)

    async def healthz(_: web.Request) -> web.Response:
        if alive():
            return web.Response(text="ok\n")
        return web.Response(status=503, text="scheduler stopped\n")

    async def readyz(_: web.Request) -> web.Response:
        if ready():
            return web.Response(text="ready\n")
        return web.Response(status=503, text="waiting for the first poll of every account\n")

    async def index(_: web.Request) -> web.Response:
        return web.Response(text=landing_page(statuses(), time.time()), content_type="text/html")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/", index)
    return app

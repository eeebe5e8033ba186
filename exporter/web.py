"""HTTP endpoints (SPEC §3): /metrics, /healthz, /readyz and the landing page."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client.exposition import choose_encoder, gzip_accepted

from exporter.collector import Exposition
from exporter.deflate import gzip_length, gzip_stream
from exporter.scheduler import AccountStatus
from exporter.statuspage import landing_page
from exporter.webconfig import WebConfig, parse_basic_auth

# Liveness must not depend on credentials a kubelet does not have (as exporter-toolkit's users
# expect for their probes); everything else is behind basic auth when it is configured.
UNAUTHENTICATED_PATHS = frozenset({"/healthz"})


async def _send(
    request: web.Request,
    headers: dict[str, str],
    length: int,
    parts: Iterable[bytes],
    *,
    produce_in_thread: bool = False,
) -> web.StreamResponse:
    """Write the body part by part (never a copy of all of it) with an exact Content-Length.

    With `produce_in_thread`, each part is produced in a worker thread: decompressing a piece
    takes milliseconds, and twenty concurrent plain scrapes of a large fleet would otherwise
    hold the event loop long enough to delay polls.
    """
    response = web.StreamResponse(headers=headers)
    response.content_length = length
    await response.prepare(request)
    iterator = iter(parts)
    while True:
        part = (
            await asyncio.to_thread(next, iterator, None)
            if produce_in_thread
            else next(iterator, None)
        )
        if part is None:
            break
        if part:
            await response.write(part)
    await response.write_eof()
    return response


def make_app(
    *,
    exposition: Exposition,
    statuses: Callable[[], Iterable[AccountStatus]],
    alive: Callable[[], bool],
    ready: Callable[[], bool],
    web_config: WebConfig | None = None,
) -> web.Application:
    security = web_config or WebConfig()

    @web.middleware
    async def basic_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        if security.auth_required and request.path not in UNAUTHENTICATED_PATHS:
            credentials = parse_basic_auth(request.headers.get("Authorization", ""))
            if credentials is None or not await security.check(*credentials):
                raise web.HTTPUnauthorized(
                    headers={"WWW-Authenticate": 'Basic realm="connector-exporter"'}
                )
        return await handler(request)

    async def extra_headers(_: web.Request, response: web.StreamResponse) -> None:
        response.headers.update(security.headers)

    async def metrics(request: web.Request) -> web.StreamResponse:
        # prometheus-client's own negotiation, so that Accept is read as its clients expect
        _, content_type = choose_encoder(request.headers.get("Accept", ""))
        openmetrics = content_type.startswith("application/openmetrics-text")
        headers = {"Content-Type": content_type}
        # Assembled in a worker thread: what a scrape computes (ages, the exporter's own
        # families, compression of those) then never holds up polls or other scrapes.
        pieces = await asyncio.to_thread(exposition.pieces, openmetrics)
        if gzip_accepted(request.headers.get("Accept-Encoding", "")):
            headers["Content-Encoding"] = "gzip"
            return await _send(request, headers, gzip_length(pieces), gzip_stream(pieces))
        # Pieces over the plain-text budget inflate one at a time as they are written.
        plain = (part for p in pieces for part in p.plain_parts())
        inflates = any(p.inflates for p in pieces)
        size = sum(p.size for p in pieces)
        return await _send(request, headers, size, plain, produce_in_thread=inflates)

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

    app = web.Application(middlewares=[basic_auth])
    app.on_response_prepare.append(extra_headers)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/", index)
    return app

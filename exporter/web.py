"""HTTP endpoints (SPEC §3): /metrics, /healthz, /readyz and the landing page."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client.exposition import choose_encoder, gzip_accepted

from exporter.collector import Body, Exposition
from exporter.status import AccountStatus
from exporter.statuspage import landing_page
from exporter.webconfig import WebConfig, parse_basic_auth

# Liveness must not depend on credentials a kubelet does not have (as exporter-toolkit's users
# expect for their probes); everything else is behind basic auth when it is configured.
UNAUTHENTICATED_PATHS = frozenset({"/healthz"})


async def _send(request: web.Request, headers: dict[str, str], body: Body) -> web.StreamResponse:
    """Write the body chunk by chunk (never a copy of all of it) with an exact Content-Length.

    A body that inflates is produced in a worker thread, chunk by chunk: decompressing a piece
    takes milliseconds, and twenty concurrent plain scrapes of a large fleet would otherwise
    hold the event loop long enough to delay polls.
    """
    response = web.StreamResponse(headers=headers)
    response.content_length = body.length
    await response.prepare(request)
    chunks = iter(body.chunks)
    while True:
        chunk = await asyncio.to_thread(next, chunks, None) if body.inflates else next(chunks, None)
        if chunk is None:
            break
        if chunk:
            await response.write(chunk)
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
        gzip = gzip_accepted(request.headers.get("Accept-Encoding", ""))
        if gzip:
            headers["Content-Encoding"] = "gzip"
        # Assembled in a worker thread: what a scrape computes (ages, the exporter's own
        # families, compression of those) then never holds up polls or other scrapes.
        body = await asyncio.to_thread(exposition.body, openmetrics=openmetrics, gzip=gzip)
        return await _send(request, headers, body)

    async def healthz(_: web.Request) -> web.Response:
        if alive():
            return web.Response(text="ok\n")
        return web.Response(status=503, text="scheduler stopped\n")

    async def readyz(_: web.Request) -> web.Response:
        if ready():
            return web.Response(text="ready\n")
        return web.Response(status=503, text="waiting for the first poll of every account\n")

    async def index(_: web.Request) -> web.Response:
        # Off the event loop: the page reads every account's published state.
        page = await asyncio.to_thread(landing_page, list(statuses()), time.time())
        return web.Response(text=page, content_type="text/html")

    app = web.Application(middlewares=[basic_auth])
    app.on_response_prepare.append(extra_headers)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/", index)
    return app

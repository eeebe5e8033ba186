"""HTTP endpoints (SPEC §3): /metrics, /healthz, /readyz and the landing page."""

from __future__ import annotations

import asyncio
import resource
import time
from collections.abc import Callable, Iterable
from typing import Any

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

# A client has this long to send a request's headers (slowloris), and a connection with no
# request in progress is closed after IDLE_TIMEOUT_SECONDS (half-open ones included).
HEADER_TIMEOUT_SECONDS = 10.0
IDLE_TIMEOUT_SECONDS = 60.0
# A response the client does not read (a stalled reader) is given up after this.
RESPONSE_TIMEOUT_SECONDS = 300.0
TLS_HANDSHAKE_TIMEOUT_SECONDS = 10.0
# Open connections at most; never more than the fd limit leaves after RESERVED_FDS for polls,
# files and the listening sockets. Past it the longest-idle connection makes room.
MAX_CONNECTIONS = 1024
RESERVED_FDS = 64
SWEEP_SECONDS = 1.0
# The landing page is rendered at most once per this many seconds (it refreshes itself every
# 30 s and shows when it was generated), by one render at a time:
# a hundred clients reloading it cost one render, and the event loop stays free for probes.
PAGE_CACHE_SECONDS = 5.0
# A response is written this much at a time. A client reading slower than we write leaves the
# unsent rest of a write in the transport's buffer, copied (asyncio's socket transport copies
# it, twice on the way); written whole, a 1 MiB chunk cost each of twenty slow clients ~2 MiB.
WRITE_BYTES = 64 * 1024


def connection_limit() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(8, min(MAX_CONNECTIONS, soft - RESERVED_FDS))


class _Conn:
    __slots__ = ("busy", "busy_since", "idle_since", "partial_since", "transport")

    def __init__(self, transport: asyncio.BaseTransport, now: float) -> None:
        self.transport = transport
        self.idle_since = now
        self.partial_since: float | None = None
        self.busy = 0
        self.busy_since = 0.0


class Connections:
    """Every open HTTP connection: caps their number and closes the stalled ones.

    aiohttp has no timeout for a request's headers, nor for a connection that never sends one;
    this wraps its protocol to see bytes arrive, and its middleware says when a request runs.
    """

    def __init__(self, limit: int | None = None, clock: Callable[[], float] = time.monotonic):
        self.limit = limit or connection_limit()
        self.clock = clock
        self.open: dict[asyncio.BaseTransport, _Conn] = {}
        self.refused = 0
        self.timed_out = 0

    def protocol_factory(self, inner: Callable[[], Any]) -> Callable[[], asyncio.Protocol]:
        def make() -> asyncio.Protocol:
            return _Guarded(inner(), self)

        return make

    def opened(self, transport: asyncio.BaseTransport) -> bool:
        """Register a new connection; False when it must be closed (every slot is busy)."""
        if len(self.open) >= self.limit:
            idle = [c for c in self.open.values() if not c.busy]
            if not idle:
                self.refused += 1
                return False
            oldest = min(idle, key=lambda c: c.idle_since)
            self._drop(oldest)
        self.open[transport] = _Conn(transport, self.clock())
        return True

    def received(self, transport: asyncio.BaseTransport) -> None:
        conn = self.open.get(transport)
        if conn is not None and not conn.busy and conn.partial_since is None:
            conn.partial_since = self.clock()

    def closed(self, transport: asyncio.BaseTransport) -> None:
        self.open.pop(transport, None)

    def request_started(self, transport: asyncio.BaseTransport | None) -> None:
        conn = self.open.get(transport) if transport is not None else None
        if conn is not None:
            if not conn.busy:
                conn.busy_since = self.clock()
            conn.busy += 1

    def request_done(self, transport: asyncio.BaseTransport | None) -> None:
        conn = self.open.get(transport) if transport is not None else None
        if conn is not None:
            conn.busy = max(0, conn.busy - 1)
            if not conn.busy:
                conn.idle_since = self.clock()
                conn.partial_since = None

    def _drop(self, conn: _Conn) -> None:
        self.open.pop(conn.transport, None)
        conn.transport.abort()  # type: ignore[attr-defined]

    def sweep(self) -> None:
        now = self.clock()
        for conn in list(self.open.values()):
            if conn.busy:
                stalled = now - conn.busy_since > RESPONSE_TIMEOUT_SECONDS
            elif conn.partial_since is not None:
                stalled = now - conn.partial_since > HEADER_TIMEOUT_SECONDS
            else:
                stalled = now - conn.idle_since > IDLE_TIMEOUT_SECONDS
            if stalled:
                self.timed_out += 1
                self._drop(conn)

    async def sweeper(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            self.sweep()


class _Guarded(asyncio.Protocol):
    """aiohttp's protocol, with the connection's arrival, bytes and end told to `Connections`."""

    def __init__(self, inner: Any, connections: Connections) -> None:
        self.inner = inner
        self.connections = connections
        self.transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        admitted = self.connections.opened(transport)
        self.inner.connection_made(transport)
        if not admitted:
            transport.abort()  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        if self.transport is not None:
            self.connections.received(self.transport)
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        result: bool | None = self.inner.eof_received()
        return result

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            self.connections.closed(self.transport)
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


class GuardedSite(web.TCPSite):
    """aiohttp's TCP site, serving through `Connections` with a bounded TLS handshake."""

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        *,
        connections: Connections,
        ssl_context: Any = None,
    ) -> None:
        super().__init__(
            runner, host, port, reuse_address=True, ssl_context=ssl_context, backlog=512
        )
        self.connections = connections

    async def start(self) -> None:
        await web.BaseSite.start(self)
        server = self._runner.server
        assert server is not None
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self.connections.protocol_factory(server),
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT_SECONDS if self._ssl_context else None,
        )


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
        view = memoryview(chunk)
        for start in range(0, len(view), WRITE_BYTES):
            await response.write(view[start : start + WRITE_BYTES])
    await response.write_eof()
    return response


def make_app(
    *,
    exposition: Exposition,
    statuses: Callable[[], Iterable[AccountStatus]],
    alive: Callable[[], bool],
    ready: Callable[[], bool],
    web_config: WebConfig | None = None,
    connections: Connections | None = None,
) -> web.Application:
    security = web_config or WebConfig()

    @web.middleware
    async def track(request: web.Request, handler: Handler) -> web.StreamResponse:
        if connections is None:
            return await handler(request)
        transport = request.transport
        connections.request_started(transport)
        try:
            return await handler(request)
        finally:
            connections.request_done(transport)

    @web.middleware
    async def basic_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        if security.auth_required and request.path not in UNAUTHENTICATED_PATHS:
            credentials = parse_basic_auth(request.headers.get("Authorization", ""))
            outcome = "denied"
            if credentials is not None:
                outcome = await security.authorize(*credentials, request.remote or "")
            if outcome == "throttled":
                raise web.HTTPTooManyRequests(
                    text="too many failed attempts; try again later\n",
                    headers={"Retry-After": "10"},
                )
            if outcome != "ok":
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

    page_cache: dict[str, Any] = {"at": -PAGE_CACHE_SECONDS, "page": None, "task": None}

    async def render_page() -> bytes:
        # Off the event loop: the page reads every account's published state.
        text = await asyncio.to_thread(landing_page, list(statuses()), time.time())
        return text.encode("utf-8", "replace")

    def harvest(task: asyncio.Future[bytes]) -> None:
        if page_cache["task"] is task:
            page_cache["task"] = None
        if not task.cancelled() and task.exception() is None:
            page_cache["page"], page_cache["at"] = task.result(), time.monotonic()

    async def index(_: web.Request) -> web.Response:
        page = page_cache["page"]
        if page is None or time.monotonic() - page_cache["at"] >= PAGE_CACHE_SECONDS:
            # One render at a time, shared by every request waiting for it; it finishes (and
            # is cached) even when the client that started it goes away.
            task = page_cache["task"]
            if task is None:
                task = page_cache["task"] = asyncio.ensure_future(render_page())
                task.add_done_callback(harvest)
            page = await asyncio.shield(task)
        return web.Response(body=page, content_type="text/html", charset="utf-8")

    app = web.Application(middlewares=[track, basic_auth])
    app.on_response_prepare.append(extra_headers)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/", index)
    return app

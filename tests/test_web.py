"""/metrics over a real socket: negotiation, streaming, and bodies past the plain-text budget."""

from __future__ import annotations

import asyncio
import gzip
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client.registry import CollectorRegistry

from exporter.collector import ExporterCollector, Exposition
from exporter.render import CHUNK_CONNECTORS
from exporter.status import AccountStatus
from exporter.web import WRITE_BYTES, make_app
from tests.conftest import FIXED_NOW, render, status_of
from tests.test_collector import snapshot

Served = tuple[str, list[AccountStatus], list[asyncio.Transport]]


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    """Two accounts, one of them rendered with its plain text dropped (it inflates); and the
    transport of every request served, to look at what the server holds for each client."""
    small = status_of(snapshot(10))
    big_snap = snapshot(CHUNK_CONNECTORS + 5)
    big = status_of(
        type(big_snap)(
            big_snap.vendor, "other", big_snap.states, big_snap.connectors, (), FIXED_NOW
        ),
        keep_plain=0,
    )
    statuses = [small, big]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ExporterCollector(lambda: statuses))
    app = make_app(
        exposition=Exposition(lambda: statuses, registry, clock=lambda: FIXED_NOW),
        statuses=lambda: statuses,
        alive=lambda: True,
        ready=lambda: True,
    )
    transports: list[asyncio.Transport] = []

    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        transports.append(request.transport)  # type: ignore[arg-type]
        return await handler(request)

    app.middlewares.append(record)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}", statuses, transports
    finally:
        await runner.cleanup()


async def test_plain_and_gzip_bodies_equal_the_rendered_text(served: Served) -> None:
    url, statuses, _ = served
    expected = render(statuses).encode()
    async with httpx.AsyncClient(timeout=30) as client:
        plain = await client.get(url + "/metrics", headers={"Accept-Encoding": "identity"})
        assert plain.status_code == 200 and "content-encoding" not in plain.headers
        assert int(plain.headers["content-length"]) == len(expected)
        assert plain.content == expected
        async with client.stream(
            "GET", url + "/metrics", headers={"Accept-Encoding": "gzip"}
        ) as response:
            raw = b"".join([chunk async for chunk in response.aiter_raw()])
        assert response.headers["content-encoding"] == "gzip"
        assert int(response.headers["content-length"]) == len(raw)
        assert gzip.decompress(raw) == expected
        om = await client.get(
            url + "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
        )
        assert om.text == render(statuses, openmetrics=True)


async def test_a_client_that_stops_reading_leaves_at_most_one_write_buffered(
    served: Served,
) -> None:
    """The unsent rest of each write stays in the server's buffer, a copy per slow client: it
    is bounded by one write, not by a chunk (a megabyte of inflated text before)."""
    url, _, transports = served
    host, port = url.removeprefix("http://").split(":")
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client.setblocking(False)
    await asyncio.get_running_loop().sock_connect(client, (host, int(port)))
    # a small limit: the reader stops taking bytes from the socket after a few kilobytes
    reader, writer = await asyncio.open_connection(sock=client, limit=1024)
    try:
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: identity\r\n\r\n")
        await reader.readexactly(1)  # the response has started; nothing more is read
        sizes: list[int] = []
        for _ in range(200):  # until the server waits on the client: the buffer stops moving
            await asyncio.sleep(0.02)
            sizes.append(transports[0].get_write_buffer_size())
            if len(sizes) > 10 and sizes[-1] and len(set(sizes[-10:])) == 1:
                break
        assert sizes[-1], "the server never filled the socket: the body is too small to test"
        # aiohttp waits for a drain after more than 64 KiB written and asyncio resumes writing
        # at 16 KiB buffered: two writes and a remnant (~150 KB; 873 KB written chunk-whole)
        assert max(sizes) <= 3 * WRITE_BYTES, max(sizes)
    finally:
        writer.close()

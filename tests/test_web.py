"""/metrics over a real socket: negotiation, streaming, and bodies past the plain-text budget."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator

import httpx
import pytest
from aiohttp import web
from prometheus_client.registry import CollectorRegistry

from exporter.collector import ExporterCollector, Exposition
from exporter.render import CHUNK_CONNECTORS
from exporter.status import AccountStatus
from exporter.web import make_app
from tests.conftest import FIXED_NOW, render, status_of
from tests.test_collector import snapshot


@pytest.fixture
async def served() -> AsyncIterator[tuple[str, list[AccountStatus]]]:
    """Two accounts, one of them rendered with its plain text dropped (it inflates)."""
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
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}", statuses
    finally:
        await runner.cleanup()


async def test_plain_and_gzip_bodies_equal_the_rendered_text(
    served: tuple[str, list[AccountStatus]],
) -> None:
    url, statuses = served
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

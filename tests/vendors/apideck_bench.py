"""Apideck poll time at scale: `python -m tests.vendors.apideck_bench [CONSUMERS] [LATENCY_MS]`.

Like `make bench`, the vendor and the exporter run as separate processes. A child process serves
the Apideck simulator's generated fleet (ten connections per consumer) with LATENCY_MS added to
every vendor request (a test-side aiohttp middleware: the simulator has no latency option); this
process polls it through the real AccountRunner, once to warm the replay (BenchSimulator) and
once measured, and prints the poll time, the request count and the most requests the simulator
saw in flight at once, as one JSON line.

`serve PORT CONSUMERS LATENCY_MS` runs only the server; `poll BASE_URL [JSON]` only the poll
(JSON: extra account keys), so that an older checkout's exporter can be timed against the same
server. Not collected by pytest.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.request
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from exporter.config import Config
from exporter.scheduler import AccountRunner
from exporter.simulator import SPECS
from tests.conftest import free_port
from tests.vendors.helpers import InstrumentedSimulator

CONNECTIONS_PER_CONSUMER = 10  # how the simulator's generated Apideck fleet is laid out
SERVE_SECONDS = 3600.0  # a forgotten server stops by itself
READY_SECONDS = 120.0
MODULE = "tests.vendors.apideck_bench"  # `__name__` is `__main__` when run with -m


class BenchSimulator(InstrumentedSimulator):
    """Replays the simulator's own answers, and adds `GET /_bench/stats`.

    The simulator builds each answer by scanning its whole fleet: at 10,000 connections a
    consumer listing page costs it seconds of CPU and a consumer ~20 ms, on one thread, which
    would measure the simulator rather than the exporter (a real API is not single-threaded).
    So a first (warm-up) poll gets the simulator's answers and keeps them by URL; the measured
    poll gets the same bytes back after the added latency only.
    """

    def __init__(self, sizes: dict[str, int], latency: float) -> None:
        super().__init__(sizes, delay=lambda _: latency)
        self.replay: dict[str, bytes] = {}

    @web.middleware
    async def _replay(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        key = request.path_qs
        if request.method != "GET" or not request.path.startswith(self.prefix):
            return await handler(request)
        if (kept := self.replay.get(key)) is not None:
            return web.Response(body=kept, content_type="application/json")
        response = await handler(request)
        body = response.body if isinstance(response, web.Response) else None
        if response.status == 200 and isinstance(body, bytes):
            self.replay[key] = body
        return response

    def app(self) -> web.Application:
        app = super().app()
        app.middlewares.append(self._replay)  # innermost: after the latency
        app.router.add_get("/_bench/stats", self._stats)
        return app

    async def _stats(self, _: web.Request) -> web.Response:
        sim = self.vendors["apideck"]
        stats = {"max_in_flight": sim.max_in_flight}
        return web.json_response(stats)


async def serve(port: int, consumers: int, latency: float) -> None:
    simulator = BenchSimulator({"apideck": consumers * CONNECTIONS_PER_CONSUMER}, latency)
    await simulator.start(port=port)
    print("ready", flush=True)
    try:
        await asyncio.sleep(SERVE_SECONDS)
    finally:
        await simulator.stop()


async def poll(base_url: str, **account: Any) -> dict[str, Any]:
    config = Config.model_validate(
        {
            "poll_timeout": "10m",
            "accounts": [{**SPECS["apideck"].account(base_url), "catalog": False, **account}],
        }
    )
    runner = AccountRunner(config.accounts[0], config)
    started = time.perf_counter()
    try:
        ok = await runner.poll()
    finally:
        await runner.aclose()
    snapshot = runner.status.snapshot
    return {
        "ok": ok,
        "error": runner.status.last_error,
        "poll_seconds": round(time.perf_counter() - started, 2),
        "requests": runner.api.stats.requests,
        "connections": len(snapshot.connectors) if snapshot else 0,
        **account,
    }


def measure(consumers: int, latency_ms: float, **account: Any) -> dict[str, Any]:
    port = free_port()
    args = [sys.executable, "-m", MODULE, "serve", str(port), str(consumers), str(latency_ms)]
    server = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        deadline = time.monotonic() + READY_SECONDS
        line = ""
        while time.monotonic() < deadline and not line.startswith("ready"):
            line = server.stdout.readline()  # the server prints one line when it listens
            if not line and server.poll() is not None:
                raise RuntimeError("the bench server exited before it was ready")
        base_url = f"http://127.0.0.1:{port}/apideck"
        warm_up = asyncio.run(poll(base_url, **account))
        result = asyncio.run(poll(base_url, **account))
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_bench/stats", timeout=10) as r:
            stats = json.loads(r.read())
        return {
            "consumers": consumers,
            "latency_ms": latency_ms,
            **result,
            **stats,
            "warm_up_poll_seconds": warm_up["poll_seconds"],
        }
    finally:
        server.terminate()
        server.wait(timeout=10)


def main(argv: list[str]) -> None:
    if argv and argv[0] == "serve":
        asyncio.run(serve(int(argv[1]), int(argv[2]), float(argv[3]) / 1000))
    elif argv and argv[0] == "poll":
        extra = json.loads(argv[2]) if len(argv) > 2 else {}
        print(json.dumps(asyncio.run(poll(argv[1], **extra))))
    else:
        consumers = int(argv[0]) if argv else 1000
        latency_ms = float(argv[1]) if len(argv) > 1 else 150.0
        extra = json.loads(argv[2]) if len(argv) > 2 else {}
        print(json.dumps(measure(consumers, latency_ms, **extra)))


if __name__ == "__main__":
    main(sys.argv[1:])

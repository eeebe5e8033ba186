"""Helpers shared by the vendor tests: polls that must succeed, throwaway servers, an
instrumented simulator and the golden exposition of a vendor's fixtures."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from exporter.model import PollResult, Snapshot
from exporter.scheduler import AccountRunner
from exporter.simulator import Simulator
from exporter.status import AccountStatus
from exporter.vendors import REGISTRY
from tests.conftest import golden_status, make_config, poll_once, render, serving
from tests.simulator.schemas import vendor_tests


@contextlib.asynccontextmanager
async def served(app: web.Application) -> AsyncIterator[str]:
    """A throwaway aiohttp app on an ephemeral 127.0.0.1 port; yields its base URL."""
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server: Any = site._server  # aiohttp exposes no public accessor for the bound port
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        await runner.cleanup()


async def polled(sim: Simulator, vendor: str, **overrides: Any) -> tuple[AccountRunner, Snapshot]:
    """One poll of `vendor`'s simulator account that must succeed; the runner and its snapshot."""
    ok, runner = await poll_once(sim, vendor, **overrides)
    assert ok, runner.status.last_error
    assert runner.status.snapshot is not None
    return runner, runner.status.snapshot


async def polled_alone(
    simulator: Simulator, vendor: str, **overrides: Any
) -> tuple[AccountRunner, Snapshot]:
    """`polled` against a simulator of the test's own, started for the poll and stopped after."""
    async with serving(simulator):
        return await polled(simulator, vendor, **overrides)


def fixture_result(vendor: str) -> PollResult:
    """What a poll of `vendor`'s fixtures gives: its quirk module's `fixture_connectors()`, and
    `fixture_catalog()` where the vendor has a catalog."""
    quirks = vendor_tests(vendor)
    catalog = quirks.fixture_catalog().values() if hasattr(quirks, "fixture_catalog") else ()
    return PollResult(tuple(quirks.fixture_connectors().values()), tuple(catalog))


def fixture_status(vendor: str) -> AccountStatus:
    """`vendor`'s quirk module's GOLDEN_ACCOUNT after one poll of its fixtures at FIXED_NOW."""
    account = make_config([vendor_tests(vendor).GOLDEN_ACCOUNT]).accounts[0]
    return golden_status(account, REGISTRY[vendor].adapter.states, fixture_result(vendor))


def golden_text(vendor: str) -> str:
    """What tests/golden/<vendor>.metrics.txt holds: `fixture_status`'s exposition."""
    return render([fixture_status(vendor)])


Delay = Callable[[web.Request], float]


class InstrumentedSimulator(Simulator):
    """The real simulators, with test-side behaviour wrapped around the vendor API.

    `delay(request)` seconds are added to every request under `/<vendor>` (the simulators have
    no latency option of their own), and `intercept(request)`, called on arrival, may answer a
    request instead of the simulator (None: let it through). Both run inside the simulator's
    in-flight count; every request's arrival time (monotonic) and path are kept in `arrivals`.
    """

    def __init__(
        self,
        sizes: Mapping[str, int] | None = None,
        *,
        vendor: str = "apideck",
        delay: Delay | None = None,
        intercept: Callable[[web.Request], web.StreamResponse | None] | None = None,
    ) -> None:
        super().__init__(sizes)
        self.prefix = f"/{vendor}/"
        self.delay = delay
        self.intercept = intercept
        self.arrivals: list[tuple[float, str]] = []

    @web.middleware
    async def _instrument(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith(self.prefix):
            return await handler(request)
        self.arrivals.append((time.monotonic(), request.path))
        # Decided on arrival (so `arrivals` is as of this request), answered after the delay.
        answer = self.intercept(request) if self.intercept is not None else None
        if self.delay is not None:
            await asyncio.sleep(self.delay(request))
        return answer if answer is not None else await handler(request)

    def app(self) -> web.Application:
        app = super().app()
        app.middlewares.append(self._instrument)  # inner: counted by the in-flight tracker
        return app

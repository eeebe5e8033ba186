"""Every page every simulator serves in normal mode validates against the vendor's schema."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from exporter.simulator import Simulator
from tests.simulator.schemas import ENDPOINTS, Crawler, Endpoint

SIZES = {"fivetran": 45, "bindbee": 45, "apideck": 45, "openint": 45, "versori": 45}


@pytest.fixture(params=["curated", "sized"])
async def fleet(request: pytest.FixtureRequest) -> AsyncIterator[Simulator]:
    simulator = Simulator(None if request.param == "curated" else SIZES)
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.stop()


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=[e.name for e in ENDPOINTS])
async def test_every_page_conforms(fleet: Simulator, endpoint: Endpoint) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        problems = await Crawler(fleet, client).check(endpoint)
    assert not problems, "\n".join(problems[:40])

"""Every page every simulator serves in normal mode validates against the vendor's schema."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from exporter.simulator import Simulator
from exporter.simulator.base import Fault
from tests.simulator.schemas import ENDPOINTS, Crawler, Endpoint
from tests.simulator.schemas import problems as schema_problems

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
        pages = await Crawler(fleet, client).crawl(endpoint)
    # several pages (or consumers): pagination and every connector are exercised
    assert len(pages) >= 2, [url for url, _ in pages]
    problems = [p for url, body in pages for p in schema_problems(endpoint, url, body)]
    assert not problems, "\n".join(problems[:40])


async def test_every_health_the_control_api_sets_stays_in_spec(sim: Simulator) -> None:
    """`set_health` changes vendor fields only to values the schemas allow."""
    async with httpx.AsyncClient(timeout=10) as client:
        for vendor, vsim in sim.vendors.items():
            for i, cid in enumerate(list(vsim.connectors)):
                health = vsim.healths[i % len(vsim.healths)]
                response = await client.post(
                    f"http://127.0.0.1:{sim.port}/_control/{vendor}/connectors/{cid}/health",
                    json={"health": health},
                )
                assert response.status_code == 200, (vendor, cid, health, response.text)
            assert len(vsim.connectors) >= len(vsim.healths), vendor
        crawler = Crawler(sim, client)
        problems = [p for e in ENDPOINTS for p in await crawler.check(e)]
    assert not problems, "\n".join(problems[:40])


# Where the `out_of_spec` fault puts values the published schemas reject; the other endpoints
# have nothing that real accounts are known to send differently.
OUT_OF_SPEC_ENDPOINTS = {
    "fivetran GET /v1/connections",
    "fivetran GET /v1/connectors",
    "bindbee GET /api/{ats,lms}/v1/connectors",
    "apideck GET /connector/connectors",
    "apideck GET /vault/consumers/{id}",
    "openint GET /connection",
    "versori GET /o/{org}/connectors",
}


async def test_out_of_spec_fault_serves_what_the_schemas_reject(sim: Simulator) -> None:
    for vsim in sim.vendors.values():
        vsim.fault = Fault(mode="out_of_spec")
    async with httpx.AsyncClient(timeout=10) as client:
        crawler = Crawler(sim, client)
        rejected = {e.name: await crawler.check(e) for e in ENDPOINTS}
    assert {name for name, problems in rejected.items() if problems} == OUT_OF_SPEC_ENDPOINTS
    text = "\n".join(p for problems in rejected.values() for p in problems)
    # one of each kind of deviation, by the value the schema rejects
    for expected in (
        "failed_at: None is not of type 'string'",
        "rescheduled_for: None is not of type 'string'",
        "config.host: 'db.internal' is not of type 'object'",
        "'PENDING_REVIEW' is not one of",
        "'sunset' is not one of",
        "'archived' is not one of",
        "None is not one of",
        "credentials_expire_at: 0 is not of type 'string', 'null'",
        "'expired' is not one of",
        "credential.type: 'oauth2' is not one of",
    ):
        assert expected in text, expected


async def test_out_of_spec_fault_ends_with_the_fault(sim: Simulator) -> None:
    """The fault alters what is served, never the fleet: cleared, every page conforms again."""
    async with httpx.AsyncClient(timeout=10) as client:
        base = f"http://127.0.0.1:{sim.port}/_control"
        for vsim in sim.vendors.values():
            vsim.fault = Fault(mode="out_of_spec")
        crawler = Crawler(sim, client)
        for endpoint in ENDPOINTS:
            await crawler.crawl(endpoint)
        for vendor in sim.vendors:
            assert (await client.delete(f"{base}/{vendor}/faults")).status_code == 204
        problems = [p for e in ENDPOINTS for p in await crawler.check(e)]
    assert not problems, "\n".join(problems[:40])

"""Every page every simulator serves in normal mode validates against the vendor's schema.

The endpoints, their schemas, how to crawl them and what the `out_of_spec` fault makes them
serve are each vendor's own (SCHEMA_ENDPOINTS and OUT_OF_SPEC_MESSAGES in
tests/vendors/test_<vendor>.py); this checks them for every registered vendor.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from exporter.simulator import SPECS, Simulator
from exporter.simulator.base import Fault
from tests.conftest import serving
from tests.simulator.schemas import Crawler, Endpoint, endpoints, vendor_tests
from tests.simulator.schemas import problems as schema_problems

ENDPOINTS = endpoints()
IDS = [f"{vendor} {e.name}" for vendor, e in ENDPOINTS]
# Generated fleets: the same size for every vendor, several pages of every listing.
SIZE = 45


@pytest.fixture(params=["curated", "sized"])
async def fleet(request: pytest.FixtureRequest) -> AsyncIterator[Simulator]:
    async with serving(
        Simulator(None if request.param == "curated" else dict.fromkeys(SPECS, SIZE))
    ) as simulator:
        yield simulator


def test_every_vendor_declares_its_endpoints() -> None:
    assert {vendor for vendor, _ in ENDPOINTS} == set(SPECS)
    assert len(set(IDS)) == len(IDS), "endpoint names repeat within a vendor"


@pytest.mark.parametrize(("vendor", "endpoint"), ENDPOINTS, ids=IDS)
async def test_every_page_conforms(fleet: Simulator, vendor: str, endpoint: Endpoint) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        pages = await endpoint.crawl(Crawler(fleet, client))
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
        problems = [p for _, e in ENDPOINTS for p in await crawler.check(e)]
    assert not problems, "\n".join(problems[:40])


async def test_out_of_spec_fault_serves_what_the_schemas_reject(sim: Simulator) -> None:
    """The fault breaks exactly the endpoints flagged `out_of_spec` (the others have nothing
    real accounts are known to send differently), each in every way its vendor lists."""
    for vsim in sim.vendors.values():
        vsim.fault = Fault(mode="out_of_spec")
    async with httpx.AsyncClient(timeout=10) as client:
        crawler = Crawler(sim, client)
        rejected = {(vendor, e.name): await crawler.check(e) for vendor, e in ENDPOINTS}
    flagged = {(vendor, e.name) for vendor, e in ENDPOINTS if e.out_of_spec}
    assert flagged, "no endpoint is flagged out_of_spec: the fault would be untested"
    assert {key for key, problems in rejected.items() if problems} == flagged
    for vendor in SPECS:
        text = "\n".join(
            p for (v, _), problems in rejected.items() if v == vendor for p in problems
        )
        # one of each kind of deviation, by the value the schema rejects
        expected = vendor_tests(vendor).OUT_OF_SPEC_MESSAGES
        assert bool(expected) == bool(text), (vendor, expected, text[:400])
        for message in expected:
            assert message in text, (vendor, message)


async def test_out_of_spec_fault_ends_with_the_fault(sim: Simulator) -> None:
    """The fault alters what is served, never the fleet: cleared, every page conforms again."""
    async with httpx.AsyncClient(timeout=10) as client:
        base = f"http://127.0.0.1:{sim.port}/_control"
        for vsim in sim.vendors.values():
            vsim.fault = Fault(mode="out_of_spec")
        crawler = Crawler(sim, client)
        for _, endpoint in ENDPOINTS:
            await endpoint.crawl(crawler)
        for vendor in sim.vendors:
            assert (await client.delete(f"{base}/{vendor}/faults")).status_code == 204
        problems = [p for _, e in ENDPOINTS for p in await crawler.check(e)]
    assert not problems, "\n".join(problems[:40])

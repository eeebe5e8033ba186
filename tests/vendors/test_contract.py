"""The vendor contract: what every registered vendor must do, against its own simulator.

Parametrised over `exporter.vendors.REGISTRY`, so a new vendor is held to all of it without
editing this file. The per-vendor test files keep only each vendor's quirks.
"""

from __future__ import annotations

import io
import time
from collections.abc import AsyncIterator

import pytest

from exporter import logs
from exporter.scheduler import AccountRunner
from exporter.simulator import SPECS, Simulator
from exporter.simulator.base import Fault, VendorSim
from exporter.statuspage import landing_page
from exporter.vendors import REGISTRY
from tests.conftest import FIXED_NOW, assert_golden, make_config, poll_once, render

VENDORS = sorted(REGISTRY)
# Larger than any vendor's page size, so that every listing takes several pages.
MANY = 1_100


async def polled(sim: Simulator, vendor: str) -> AccountRunner:
    """A runner for `vendor`'s simulator account after one poll at FIXED_NOW (closed after)."""
    return (await poll_once(sim, vendor, clock=FIXED_NOW, retries=1))[1]


def vendor_sim(sim: Simulator, vendor: str) -> VendorSim:
    return sim.vendors[vendor]


@pytest.fixture
async def fixed_sim() -> AsyncIterator[Simulator]:
    """The simulators with their curated fleets built at FIXED_NOW (deterministic output)."""
    simulator = Simulator()
    for vsim in simulator.vendors.values():
        vsim.reset(FIXED_NOW)
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.stop()


def test_every_vendor_has_a_simulator_and_secret_fields() -> None:
    assert sorted(SPECS) == VENDORS
    for vendor, spec in REGISTRY.items():
        account = SPECS[vendor].account("http://127.0.0.1:1")
        assert account["vendor"] == vendor
        assert spec.account.SECRET_FIELDS, vendor
        assert set(spec.account.SECRET_FIELDS) <= set(account), vendor


@pytest.mark.parametrize("vendor", VENDORS)
async def test_curated_fleet_round_trip(fixed_sim: Simulator, vendor: str) -> None:
    """Every connector the simulator serves comes out, once, in the snapshot and the output."""
    runner = await polled(fixed_sim, vendor)
    assert runner.status.last_ok, runner.status.last_error
    snap = runner.status.snapshot
    assert snap is not None
    assert {c.connector_id for c in snap.connectors} == set(
        vendor_sim(fixed_sim, vendor).connectors
    )
    healths = {c.health.value for c in snap.connectors}
    assert len(healths) >= 2, f"the curated fleet should cover several healths: {healths}"
    text = render([runner.status])
    for c in snap.connectors:
        assert f'connector_id="{c.connector_id}"' in text


@pytest.mark.parametrize("vendor", VENDORS)
async def test_golden_exposition_of_the_curated_fleet(fixed_sim: Simulator, vendor: str) -> None:
    runner = await polled(fixed_sim, vendor)
    status = runner.status
    assert status.last_ok, status.last_error
    # The self metrics that depend on the run, fixed like the fleet's timestamps.
    status.last_duration, status.last_success_end, status.last_poll_end = 0.25, FIXED_NOW, FIXED_NOW
    assert_golden(f"simulated/{vendor}.metrics.txt", render([status]))


@pytest.mark.parametrize("vendor", VENDORS)
async def test_many_pages(sim: Simulator, vendor: str) -> None:
    vsim = vendor_sim(sim, vendor)
    vsim.resize(MANY)
    runner = await polled(sim, vendor)
    assert runner.status.last_ok, runner.status.last_error
    snap = runner.status.snapshot
    assert snap is not None and len(snap.connectors) == len(vsim.connectors) >= MANY
    assert {c.connector_id for c in snap.connectors} == set(vsim.connectors)
    assert vsim.requests > 1


@pytest.mark.parametrize("vendor", VENDORS)
async def test_401_fails_the_poll_and_keeps_the_last_good_state(
    sim: Simulator, vendor: str
) -> None:
    config = make_config([SPECS[vendor].account(sim.url(vendor))])
    runner = AccountRunner(config.accounts[0], config)
    try:
        assert await runner.poll()
        before = runner.status.published
        vendor_sim(sim, vendor).fault = Fault("unauthorized")
        assert not await runner.poll()
    finally:
        await runner.aclose()
    assert runner.status.published is before
    assert runner.status.requests["401"] >= 1 and runner.status.failures_total == 1
    assert "401" in runner.status.last_error


@pytest.mark.parametrize("vendor", VENDORS)
async def test_429_is_retried_after_retry_after(sim: Simulator, vendor: str) -> None:
    vendor_sim(sim, vendor).fault = Fault("rate_limit", count=1, retry_after="1")
    started = time.monotonic()
    runner = await polled(sim, vendor)
    assert runner.status.last_ok, runner.status.last_error
    assert time.monotonic() - started >= 1.0  # the Retry-After was honoured
    assert runner.status.requests["429"] == 1


@pytest.mark.parametrize("vendor", VENDORS)
async def test_secret_sentinels_never_come_out(sim: Simulator, vendor: str) -> None:
    """Sentinel credentials, through a good poll and a 401: never in errors, logs, pages."""
    vsim = vendor_sim(sim, vendor)
    sentinels = {
        field: f"SENTINEL-{vendor}-{field}-7d1e" for field in REGISTRY[vendor].account.SECRET_FIELDS
    }
    for field, value in sentinels.items():
        # Simulators keep each credential in the attribute named like the account's secret key.
        assert hasattr(vsim, field), f"{vendor} simulator has no credential attribute {field}"
        setattr(vsim, field, value)
    out = io.StringIO()
    logs.configure("debug", "json", stream=out)
    config = make_config([{**SPECS[vendor].account(sim.url(vendor)), **sentinels}])
    runner = AccountRunner(config.accounts[0], config)
    try:
        assert await runner.poll(), runner.status.last_error
        vsim.fault = Fault("unauthorized")
        assert not await runner.poll()
    finally:
        await runner.aclose()
        logs.configure("info", "json")
    shown = "\n".join(
        [
            out.getvalue(),
            runner.status.last_error,
            render([runner.status]),
            render([runner.status], openmetrics=True),
            landing_page([runner.status], FIXED_NOW),
        ]
    )
    for value in sentinels.values():
        assert value not in shown

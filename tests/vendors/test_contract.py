"""The vendor contract: what every registered vendor must do, against its own simulator.

Parametrised over `exporter.vendors.REGISTRY`, so a new vendor is held to all of it without
editing this file. The per-vendor test files keep only each vendor's quirks, and what this suite
expects of the vendor as data (tests/vendors/test_<vendor>.py):

- `fixture_connectors()`: its fixtures (tests/fixtures/<vendor>/) translated, keyed as below;
- `HEALTHS`: SPEC §5's row for the vendor, the health each of those connectors gets;
- `IDENTITIES`: (name, integration, group, end_user) of some of them, `FIELDS` other fields;
- `GOLDEN_ACCOUNT`: the account tests/golden/<vendor>.metrics.txt shows the fixtures under;
- a vendor with a catalog, `fixture_catalog()` (its catalog fixture translated) and `CATALOG`:
  (status, name, auth_type) of every entry;
- `CONTROL_CONNECTOR` (optional): the connector the control API test drives;
- `SECRET_FAULTS` (optional): failing polls, beyond a 401, the secrets test goes through, and
  `plant_served_secret` (a vendor that serves secret data) where it plants a sentinel.
"""

from __future__ import annotations

import io
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from exporter import logs
from exporter.model import Health
from exporter.scheduler import AccountRunner
from exporter.simulator import SPECS, Simulator
from exporter.simulator.base import Fault, VendorSim
from exporter.statuspage import landing_page
from exporter.vendors import REGISTRY
from exporter.vendors.base import CatalogAdapter
from tests.conftest import FIXED_NOW, assert_golden, make_config, poll_once, render, serving
from tests.simulator.schemas import vendor_tests
from tests.vendors.helpers import fixture_result, golden_text

VENDORS = sorted(REGISTRY)
CATALOG_VENDORS = [v for v in VENDORS if issubclass(REGISTRY[v].adapter, CatalogAdapter)]
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
    async with serving(simulator):
        yield simulator


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
    """Sentinel credentials, and a sentinel in the secret data the vendor serves, through a good
    poll, the vendor's SECRET_FAULTS and a 401: never in errors, logs, pages; the last good
    series stay."""
    vsim = vendor_sim(sim, vendor)
    quirks = vendor_tests(vendor)
    sentinels = {
        field: f"SENTINEL-{vendor}-{field}-7d1e" for field in REGISTRY[vendor].account.SECRET_FIELDS
    }
    for field, value in sentinels.items():
        # Simulators keep each credential in the attribute named like the account's secret key.
        assert hasattr(vsim, field), f"{vendor} simulator has no credential attribute {field}"
        setattr(vsim, field, value)
    served = f"SENTINEL-{vendor}-served-3f9c"
    if hasattr(quirks, "plant_served_secret"):
        quirks.plant_served_secret(vsim, served)
    out = io.StringIO()
    logs.configure("debug", "json", stream=out)
    config = make_config([{**SPECS[vendor].account(sim.url(vendor)), **sentinels}])
    runner = AccountRunner(config.accounts[0], config)
    shown: list[str] = []
    try:
        assert await runner.poll(), runner.status.last_error
        good = runner.status.snapshot
        shown.append(render([runner.status]))
        for fault in (*getattr(quirks, "SECRET_FAULTS", ()), Fault("unauthorized")):
            vsim.fault = fault
            assert not await runner.poll(), fault
            shown.append(runner.status.last_error)
    finally:
        await runner.aclose()
        logs.configure("info", "json")
    assert good is not None and '"event": "poll"' in out.getvalue()
    text = render([runner.status])
    for c in good.connectors:
        assert f'connector_id="{c.connector_id}"' in text  # the last good series stay
    shown += [
        out.getvalue(),
        text,
        render([runner.status], openmetrics=True),
        landing_page([runner.status], FIXED_NOW),
    ]
    for value in (*sentinels.values(), served):
        assert all(value not in blob for blob in shown), value


@pytest.mark.parametrize("vendor", VENDORS)
async def test_control_api_sets_every_health_of_one_connector(sim: Simulator, vendor: str) -> None:
    """Each health the simulator offers, set on one connector, is what the next poll reads;
    the rest of the fleet keeps the health it had."""
    vsim = vendor_sim(sim, vendor)
    target = getattr(vendor_tests(vendor), "CONTROL_CONNECTOR", next(iter(vsim.connectors)))

    async def healths() -> dict[str, Health]:
        ok, runner = await poll_once(sim, vendor)
        assert ok and runner.status.snapshot is not None, runner.status.last_error
        return {c.connector_id: c.health for c in runner.status.snapshot.connectors}

    before = await healths()
    base = f"http://127.0.0.1:{sim.port}/_control/{vendor}/connectors"
    async with httpx.AsyncClient() as client:
        for health in vsim.healths:
            r = await client.post(f"{base}/{target}/health", json={"health": health})
            assert r.status_code == 200, (health, r.text)
            assert await healths() == {**before, target: Health(health)}, health


# --- the vendor's fixtures, translated without I/O -------------------------------------------
@pytest.mark.parametrize("vendor", VENDORS)
def test_every_health_rule_of_the_spec_row(vendor: str) -> None:
    quirks = vendor_tests(vendor)
    assert {key: c.health for key, c in quirks.fixture_connectors().items()} == quirks.HEALTHS


@pytest.mark.parametrize("vendor", VENDORS)
def test_identity_fields_map_to_the_model(vendor: str) -> None:
    quirks = vendor_tests(vendor)
    c = quirks.fixture_connectors()
    got = {k: (c[k].name, c[k].integration, c[k].group, c[k].end_user) for k in quirks.IDENTITIES}
    assert quirks.IDENTITIES and got == quirks.IDENTITIES
    fields = {k: {f: getattr(c[k], f) for f in want} for k, want in quirks.FIELDS.items()}
    assert fields == quirks.FIELDS


@pytest.mark.parametrize("vendor", CATALOG_VENDORS)
def test_catalog_statuses_names_and_auth_types(vendor: str) -> None:
    """Unknown statuses are `other`, a null one None."""
    quirks = vendor_tests(vendor)
    assert fixture_result(vendor).catalog, "a vendor with a catalog has catalog fixtures"
    got = {e.connector_id: (e.status, e.name, e.auth_type) for e in fixture_result(vendor).catalog}
    assert got == quirks.CATALOG


@pytest.mark.parametrize("vendor", VENDORS)
def test_golden_exposition_of_the_fixtures(vendor: str) -> None:
    assert_golden(f"{vendor}.metrics.txt", golden_text(vendor))

"""Versori: per-connection translation (credentials, scheme messages), the simulator, golden
exposition, and credential `data` that never leaves the vendor's JSON."""

from __future__ import annotations

import functools
import io
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from exporter import logs
from exporter.errors import BadResponse
from exporter.model import Connector, Health, PollResult
from exporter.simulator import Simulator
from exporter.simulator import versori as versori_sim
from exporter.simulator.base import Fault, VendorSim
from exporter.vendors import versori
from tests.conftest import (
    assert_golden,
    fixture_json,
    golden_status,
    make_config,
    poll_once,
    render,
    runner_for,
    sim_account,
)
from tests.simulator import schemas as simulated
from tests.vendors.helpers import polled, polled_alone

SENTINEL = "SENTINEL-SECRET-3f9c1a"  # every credential's `data` in the fixture holds it
ORG = "01HFIXTUREORG000000000000"


def connections() -> dict[str, Connector]:
    items, cursor = versori.parse_page(fixture_json("versori", "connectors.json"))
    assert cursor is None  # `next: ""` ends the listing
    return {c.connector_id: c for c in versori.translate(items, ORG)}


def test_every_health_rule_of_the_spec_row() -> None:
    assert {cid: c.health for cid, c in connections().items()} == {
        "conn_sf_prod": Health.HEALTHY,
        "conn_sf_eu": Health.RELINK_NEEDED,  # credential errors non-empty
        "conn_sf_sandbox": Health.HEALTHY,  # expiresAt in the past: a deletion time, not a fault
        "conn_sf_both": Health.RELINK_NEEDED,  # invalid wins over an error message
        "conn_shop": Health.DEGRADED,  # warning message
        "conn_ns": Health.BROKEN,  # error message on the embedded scheme
        "conn_shared": Health.BROKEN,  # error message on the connector's copy of the scheme
        "conn_hs": Health.HEALTHY,  # info message
        "conn_slack": Health.HEALTHY,
        "conn_slack_null": Health.HEALTHY,
        "conn_hook": Health.HEALTHY,  # no credentials at all
    }


def test_setup_state_valid_invalid_unvalidated() -> None:
    assert {cid: c.setup_state for cid, c in connections().items()} == {
        "conn_sf_prod": "valid",
        "conn_sf_eu": "invalid",
        "conn_sf_sandbox": "valid",  # expired, but its errors are empty
        "conn_sf_both": "invalid",
        "conn_shop": "valid",
        "conn_ns": "valid",
        "conn_shared": "valid",
        "conn_hs": "valid",
        "conn_slack": "unvalidated",  # the trigger credential has no `errors`
        "conn_slack_null": "unvalidated",  # `errors: null`
        "conn_hook": "unvalidated",
    }


def test_identity_and_relink_gauge() -> None:
    c = connections()
    prod = c["conn_sf_prod"]
    assert (prod.name, prod.integration, prod.group, prod.end_user) == (
        "Salesforce prod",
        "Salesforce",
        ORG,
        "",
    )
    assert c["conn_sf_eu"].relink_needed and c["conn_sf_both"].relink_needed
    assert not c["conn_ns"].relink_needed and not any(x.paused for x in c.values())


def test_expires_at_is_a_deletion_time_not_an_expiry_or_relink() -> None:
    """connect-v1-openapi.yaml: `expiresAt` is when the credential is deleted automatically."""
    c = connections()
    assert all(x.credential_expiry is None for x in c.values())
    sandbox = c["conn_sf_sandbox"]  # expiresAt two hours before FIXED_NOW, errors empty
    assert (sandbox.health, sandbox.relink_needed) == (Health.HEALTHY, False)


def test_absent_errors_are_unvalidated_but_never_a_fault() -> None:
    """Versori's Go server omits an empty `errors` list: absent is how most valid ones arrive."""
    c = connections()
    for cid in ("conn_slack", "conn_slack_null", "conn_hook"):
        assert c[cid].setup_state == "unvalidated"
        assert (c[cid].health, c[cid].relink_needed) == (Health.HEALTHY, False)


def test_credential_data_is_never_carried() -> None:
    assert all(SENTINEL not in repr(c) for c in connections().values())


# a page without its list is a bad response, not an empty listing
@pytest.mark.parametrize("data", [[], {"connectors": "x"}, {"next": None}, 3])
def test_parse_page_rejects_wrong_shapes(data: Any) -> None:
    with pytest.raises(BadResponse):
        versori.parse_page(data)


@pytest.mark.parametrize(
    ("data", "cursor"),
    [
        ({"connectors": [], "next": "abc"}, "abc"),
        ({"connectors": []}, None),
        ({"connectors": [], "next": None}, None),
    ],
)
def test_parse_page_cursor(data: dict[str, Any], cursor: str | None) -> None:
    assert versori.parse_page(data) == ([], cursor)


# --- golden exposition ---------------------------------------------------------------------
def golden_text() -> str:
    config = make_config(
        [{"vendor": "versori", "name": "platform", "token": "t", "organisation_id": ORG}]
    )
    result = PollResult(connectors=tuple(connections().values()))
    return render([golden_status(config.accounts[0], versori.STATES, result)])


def test_golden() -> None:
    text = golden_text()
    assert_golden("versori.metrics.txt", text)
    assert "connector_catalog_status{" not in text and "connector_sync_state{" not in text


# --- the simulator over real sockets -------------------------------------------------------
poll = functools.partial(poll_once, vendor="versori")


async def test_one_unit_per_embedded_connection(sim: Simulator) -> None:
    _, snap = await polled(sim, "versori")
    assert {c.connector_id for c in snap.connectors} == set(sim.vendors["versori"].connectors)
    assert {c.setup_state for c in snap.connectors} == set(versori.STATES.setup)
    assert {c.health for c in snap.connectors} == {
        Health.HEALTHY,
        Health.DEGRADED,
        Health.BROKEN,
        Health.RELINK_NEEDED,
    }
    assert all(c.group == versori_sim.ORGANISATION_ID for c in snap.connectors)


async def test_tiny_pages_follow_after(sim: Simulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(versori, "PAGE_SIZE", 1)
    runner, snap = await polled(sim, "versori")
    assert len(snap.connectors) == len(sim.vendors["versori"].connectors)
    assert runner.api.stats.pages == len(sim.vendors["versori"].listed)  # type: ignore[attr-defined]


async def test_generated_fleet_over_several_pages() -> None:
    simulator = Simulator(sizes={"versori": 1203})
    runner, snap = await polled_alone(simulator, "versori")
    assert len(snap.connectors) == 1203
    assert runner.api.stats.pages == 3  # 241 connectors, 100 a page


async def test_401_and_wrong_organisation(sim: Simulator) -> None:
    ok, runner = await poll(sim, token="nope-nope-nope")
    assert not ok and "HTTP 401: unauthorized: invalid API key" in runner.status.last_error
    ok, runner = await poll(sim, organisation_id="01HOTHERORG00000000000000")
    assert not ok and "HTTP 404: organisation not found" in runner.status.last_error


async def test_cursor_loop_stops_the_poll(sim: Simulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(versori, "PAGE_SIZE", 2)
    sim.vendors["versori"].fault = Fault(mode="cursor_loop")
    ok, runner = await poll(sim)
    assert not ok and "cursor it had returned before" in runner.status.last_error


async def test_control_api_health_per_connection(sim: Simulator) -> None:
    base = f"http://127.0.0.1:{sim.port}/_control/versori/connectors"
    async with httpx.AsyncClient() as client:
        for health in versori_sim.VersoriSim.healths:
            # conn_netsuite's connector carries an error message: healthy must detach from it
            r = await client.post(f"{base}/conn_netsuite/health", json={"health": health})
            assert r.status_code == 200
            _, snap = await polled(sim, "versori")
            got = {c.connector_id: c.health for c in snap.connectors}
            assert got["conn_netsuite"] == Health(health)
            assert got["conn_sf_prod"] == Health.HEALTHY


# --- secrets ------------------------------------------------------------------------------
async def test_sentinels_never_leak(sim: Simulator) -> None:
    token = "SENTINEL-versori-token-c4d2"
    stream = io.StringIO()
    logs.configure("debug", "json", stream=stream)
    vsim = sim.vendors["versori"]
    vsim.token = token  # type: ignore[attr-defined]
    for connection in vsim.connectors.values():
        for group in ("action", "trigger"):
            for use in connection["credentials"][group]:
                use["credential"]["data"] = {"accessToken": SENTINEL, "nested": [SENTINEL]}
    runner = runner_for(make_config([sim_account(sim, "versori", token=token)]))
    errors: list[str] = []
    try:
        assert await runner.poll()
        good = render([runner.status])
        for mode in ("error", "rate_limit", "unauthorized", "malformed"):
            vsim.fault = Fault(mode=mode, status=500, retry_after="0")
            assert not await runner.poll()
            errors.append(runner.status.last_error)
    finally:
        await runner.aclose()
    text = render([runner.status])
    assert 'connector_id="conn_sf_prod"' in text
    for blob in (good, text, stream.getvalue(), *errors):
        assert SENTINEL not in blob and token not in blob


# --- for the property tests over every vendor ---------------------------------------------
FUZZ_FIXTURES = ["connectors.json"]


def read_any(data: Any) -> PollResult:
    """How the adapter reads any body (for tests/reliability/test_properties.py)."""
    items = versori.parse_page(data)[0]
    return PollResult(tuple(versori.translate(items, "org")))


def plant_served_secret(sim: VendorSim, value: str) -> None:
    """Credential `data` on every connection (for tests/reliability/test_secrets.py)."""
    for c in sim.connectors.values():
        for group in ("action", "trigger"):
            for use in c["credentials"].get(group, []):
                use["credential"]["data"] = {"accessToken": value}


# --- webhooks: Versori documents none -------------------------------------------------------
# (Appended as one section while other sections of this file change in parallel.) The listener
# side (404 for its accounts, a `webhook_secret` refused by the config) is tested for every
# vendor without webhooks in tests/webhooks/test_listener.py.


async def test_webhook_none_documented_so_none_declared_or_simulated(sim: Simulator) -> None:
    assert versori.VENDOR.webhook is None
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.post(
            f"http://127.0.0.1:{sim.port}/_control/versori/webhooks",
            json={"url": "http://127.0.0.1:1/webhooks/versori/demo", "secret": "s"},
        )
    assert response.status_code == 400
    assert sim.vendors["versori"].webhooks.targets == []


# --- What the simulator serves: endpoints against the published schemas, the curated fleet ---
# (tests/simulator/test_schemas.py checks SCHEMA_ENDPOINTS and OUT_OF_SPEC_MESSAGES for every
# vendor; the section imports what it uses itself, so that it stands apart from the quirks above)


async def _crawl_connectors(crawler: simulated.Crawler) -> list[simulated.Page]:
    organisation = crawler.account("versori")["organisation_id"]
    return await crawler.cursor_pages(
        "versori",
        f"/o/{organisation}/connectors",
        {"first": simulated.PAGE},
        "after",
        lambda b: b.get("next"),
    )


SCHEMA_ENDPOINTS = (
    simulated.Endpoint(
        "GET /o/{org}/connectors", "versori_connectors.json", _crawl_connectors, out_of_spec=True
    ),
)
# Under the `out_of_spec` fault: a scheme type the schema's oneOf has no variant for.
OUT_OF_SPEC_MESSAGES = ("credential.type: 'oauth2' is not one of",)


def _served_credentials(
    pages: dict[str, list[Any]],
) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(auth-scheme config, credential) of every credential usage served."""
    connectors = simulated.items(pages, "GET /o/{org}/connectors", lambda b: b["connectors"])
    for connector in connectors:
        for connection in connector["connections"]:
            for group in connection["credentials"].values():
                for use in group:
                    yield use["authSchemeConfig"], use["credential"]


async def test_curated_fleet_has_every_new_signal(sim: Simulator) -> None:
    pages = await simulated.served(sim, SCHEMA_ENDPOINTS)
    creds = [cred for _, cred in _served_credentials(pages)]
    assert any(cred.get("errors") for cred in creds)
    assert any(cred.get("errors") == [] for cred in creds)
    assert any("errors" not in cred for cred in creds)
    assert any("expiresAt" in cred for cred in creds)
    assert any("expiresAt" not in cred for cred in creds)
    severities = {
        m["severity"]
        for scheme, _ in _served_credentials(pages)
        for m in scheme["validationMessages"]
    }
    assert severities == {"info", "warning", "error"}

"""Versori: per-connection translation (credentials, scheme messages), the simulator, golden
exposition, and credential `data` that never leaves the vendor's JSON."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from exporter.errors import BadResponse
from exporter.model import Connector, Health, PollResult
from exporter.simulator import Simulator
from exporter.simulator import versori as versori_sim
from exporter.simulator.base import Fault, VendorSim
from exporter.vendors import versori
from tests.conftest import fixture_json, poll_once
from tests.simulator import schemas as simulated
from tests.vendors.helpers import golden_text, polled, polled_alone

SENTINEL = "SENTINEL-SECRET-3f9c1a"  # every credential's `data` in the fixture holds it
ORG = "01HFIXTUREORG000000000000"


# --- what tests/vendors/test_contract.py expects of the fixtures ---------------------------
HEALTHS = {
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
IDENTITIES = {"conn_sf_prod": ("Salesforce prod", "Salesforce", ORG, "")}
FIELDS = {
    "conn_sf_eu": {"relink_needed": True},
    "conn_sf_both": {"relink_needed": True},
    "conn_ns": {"relink_needed": False},  # an error message on the scheme is no relink
}
GOLDEN_ACCOUNT = {"vendor": "versori", "name": "platform", "token": "t", "organisation_id": ORG}
# Its connector carries an error message: a healthy connection must detach from it.
CONTROL_CONNECTOR = "conn_netsuite"
# Failing polls for the contract's secrets test, a 429 with Retry-After: 0 among them.
SECRET_FAULTS = tuple(
    Fault(mode=mode, status=500, retry_after="0")
    for mode in ("error", "rate_limit", "unauthorized", "malformed")
)


def fixture_connectors() -> dict[str, Connector]:
    items, cursor = versori.parse_page(fixture_json("versori", "connectors.json"))
    assert cursor is None  # `next: ""` ends the listing
    return {c.connector_id: c for c in versori.translate(items, ORG)}


def test_setup_state_valid_invalid_unvalidated() -> None:
    assert {cid: c.setup_state for cid, c in fixture_connectors().items()} == {
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


def test_nothing_is_paused() -> None:
    assert not any(x.paused for x in fixture_connectors().values())


def test_expires_at_is_a_deletion_time_not_an_expiry_or_relink() -> None:
    """connect-v1-openapi.yaml: `expiresAt` is when the credential is deleted automatically."""
    c = fixture_connectors()
    assert all(x.credential_expiry is None for x in c.values())
    sandbox = c["conn_sf_sandbox"]  # expiresAt two hours before FIXED_NOW, errors empty
    assert (sandbox.health, sandbox.relink_needed) == (Health.HEALTHY, False)


def test_absent_errors_are_unvalidated_but_never_a_fault() -> None:
    """Versori's Go server omits an empty `errors` list: absent is how most valid ones arrive."""
    c = fixture_connectors()
    for cid in ("conn_slack", "conn_slack_null", "conn_hook"):
        assert c[cid].setup_state == "unvalidated"
        assert (c[cid].health, c[cid].relink_needed) == (Health.HEALTHY, False)


def test_credential_data_is_never_carried() -> None:
    assert all(SENTINEL not in repr(c) for c in fixture_connectors().values())


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


# --- golden exposition (tests/vendors/test_contract.py compares it with the file) ----------
def test_golden_has_no_catalog_or_sync_state() -> None:
    text = golden_text("versori")
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


# --- for the property tests over every vendor ---------------------------------------------
FUZZ_FIXTURES = ["connectors.json"]


def read_any(data: Any) -> PollResult:
    """How the adapter reads any body (for tests/reliability/test_properties.py)."""
    items = versori.parse_page(data)[0]
    return PollResult(tuple(versori.translate(items, "org")))


def plant_served_secret(sim: VendorSim, value: str) -> None:
    """Credential `data` on every connection, nested too (for the secrets tests:
    tests/reliability/test_secrets.py, tests/vendors/test_contract.py)."""
    for c in sim.connectors.values():
        for group in ("action", "trigger"):
            for use in c["credentials"].get(group, []):
                use["credential"]["data"] = {"accessToken": value, "nested": [value]}


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

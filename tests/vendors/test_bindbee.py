"""Bindbee: translation of seed-shaped JSON per category, and the test-connector option."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import httpx
import pytest

from exporter.errors import BadResponse
from exporter.model import Connector, Health, PollResult
from exporter.simulator import Simulator
from exporter.simulator.base import VendorSim
from exporter.vendors import bindbee
from tests.conftest import account_runner, fixture_json, make_config, render, sim_account
from tests.simulator import schemas as simulated
from tests.webhooks.harness import Running, WebhookSample, listening

# --- what tests/vendors/test_contract.py expects of the fixtures (connectors by name) -------
HEALTHS = {
    "bamboohr": Health.HEALTHY,
    "workday": Health.HEALTHY,
    "ukg-pro": Health.RELINK_NEEDED,
    "gusto": Health.INCOMPLETE,
    "rippling": Health.FAILING,
    "hibob": Health.PAUSED,
    "greenhouse": Health.HEALTHY,
    "lever": Health.HEALTHY,
    "docebo": Health.HEALTHY,
    "": Health.HEALTHY,
}
IDENTITIES = {"ukg-pro": ("ukg-pro", "ukg-pro", "hris", "Initech")}
FIELDS: dict[str, dict[str, Any]] = {
    "ukg-pro": {"setup_state": "relink_needed", "relink_needed": True, "sync_state": "done"},
    "workday": {"sync_state": "syncing"},
    "rippling": {"sync_state": "failed"},
    "hibob": {"paused": True},
    "greenhouse": {"group": "ats"},
    "docebo": {"group": "lms"},
}
GOLDEN_ACCOUNT = {"vendor": "bindbee", "name": "hr", "token": "t"}


def fixture_connectors() -> dict[str, Connector]:
    out: dict[str, Connector] = {}
    for category in ("hris", "ats", "lms"):
        items, cursor = bindbee.parse_page(fixture_json("bindbee", f"{category}.json"))
        assert cursor is None
        out.update({c.name: c for c in bindbee.translate(items, category)})
    return out


def test_timestamps_map_to_the_model() -> None:
    c = fixture_connectors()
    assert c["ukg-pro"].relink_needed_since == pytest.approx(1733097600.0 - 3 * 3600)
    bamboo = c["bamboohr"]
    assert bamboo.last_sync_start == pytest.approx(1733097600.0 - 2 * 3600)
    assert bamboo.next_sync == pytest.approx(1733097600.0 + 22 * 3600)


def test_unknown_status_maps_to_other_and_nulls_to_nothing() -> None:
    c = fixture_connectors()
    assert c["lever"].setup_state == "other"
    sparse = c[""]
    assert sparse.connector_id == "bb-sparse"
    assert sparse.setup_state is None
    assert sparse.sync_state == "other"  # "Queued" is not in the schema's enum
    assert sparse.last_sync_start is None and sparse.next_sync is None
    assert sparse.paused is False and sparse.end_user == ""
    assert gusto_has_no_sync(c["gusto"])


def gusto_has_no_sync(c: Connector) -> bool:
    return c.sync_state is None and c.last_sync_start is None


def test_connector_token_is_never_carried() -> None:
    for connector in fixture_connectors().values():
        assert "SENTINEL-CONNECTOR-TOKEN" not in repr(connector)


def test_parse_page_rejects_wrong_shapes() -> None:
    with pytest.raises(BadResponse):
        bindbee.parse_page({"items": "nope", "cursor": None})
    with pytest.raises(BadResponse):
        bindbee.parse_page([1, 2])
    assert bindbee.parse_page({"items": [], "cursor": "c2"}) == ([], "c2")


def test_sync_progress_is_a_clamped_ratio_and_test_connectors_are_flagged() -> None:
    c = fixture_connectors()
    assert c["workday"].sync_progress == pytest.approx(0.45)
    assert c["bamboohr"].sync_progress == 1.0
    assert c["rippling"].sync_progress == 1.0  # 250 % clamped
    assert c["gusto"].sync_progress == 0.0  # -5 % clamped
    assert c["ukg-pro"].sync_progress is None  # null
    assert c[""].sync_progress is None  # "half": not a number
    assert c["greenhouse"].sync_progress is None  # ATS listings have no such field
    assert {k for k, x in c.items() if x.test} == {"greenhouse", "docebo"}
    assert c["bamboohr"].test is False and c[""].test is None  # "yes" is not a boolean


@pytest.mark.parametrize(
    ("value", "ratio"),
    [
        *[(0, 0.0), (37, 0.37), (100, 1.0), (101, 1.0), (-1, 0.0), (12.5, 0.125)],
        *[(None, None), (True, None), ("50", None), (float("nan"), None), (10**400, None)],
    ],
)
def test_progress_ratio(value: object, ratio: float | None) -> None:
    assert bindbee.progress_ratio(value) == (None if ratio is None else pytest.approx(ratio))


# --- the simulator over real sockets -------------------------------------------------------
async def test_include_test_connectors_false_drops_them_from_the_snapshot(sim: Simulator) -> None:
    vsim = sim.vendors["bindbee"]
    test_id = next(iter(vsim.connectors))
    base = f"http://127.0.0.1:{sim.port}/_control/bindbee/connectors"
    async with httpx.AsyncClient() as client:
        r = await client.patch(f"{base}/{test_id}", json={"is_test_connector": True})
        assert r.status_code == 200
    snapshots = {}
    for include in (True, False):
        runner = account_runner(sim_account(sim, "bindbee", include_test_connectors=include))
        try:
            assert await runner.poll(), runner.status.last_error
        finally:
            await runner.aclose()
        snapshot = runner.status.snapshot
        assert snapshot is not None
        snapshots[include] = {c.connector_id: c for c in snapshot.connectors}
    assert snapshots[True][test_id].test is True  # kept by default, flagged connector_test 1
    # every test connector goes: the one marked here and the curated fleet's own
    flagged = {cid for cid, c in snapshots[True].items() if c.test is True}
    assert test_id in flagged
    assert set(snapshots[True]) - set(snapshots[False]) == flagged
    assert all(c.test is not True for c in snapshots[False].values())
    text = render([runner.status])
    assert f'connector_info{{account="demo",connector_id="{test_id}"' not in text


def test_include_test_connectors_defaults_to_true() -> None:
    config = make_config([{"vendor": "bindbee", "name": "hr", "token": "t"}])
    assert config.accounts[0].include_test_connectors is True  # type: ignore[attr-defined]


# --- for the property tests over every vendor ---------------------------------------------
FUZZ_FIXTURES = ["hris.json", "ats.json"]


def read_any(data: Any) -> PollResult:
    """How the adapter reads any body (for tests/reliability/test_properties.py)."""
    return PollResult(tuple(bindbee.translate(bindbee.parse_page(data)[0], "hris")))


def plant_served_secret(sim: VendorSim, value: str) -> None:
    """`connector_token` in every served connector (for tests/reliability/test_secrets.py)."""
    for c in sim.connectors.values():
        c["connector_token"] = value


# --- webhooks: Bindbee's events, and what the tests over every vendor need ----------------
# (Appended as one section while other sections of this file change in parallel; its imports
# stay here so that the section merges as a whole.)


# (connector, health) through the control API; None: the simulator's first connector.
WEBHOOK_SIM_CHANGES: tuple[tuple[str | None, str], ...] = ((None, "failing"),)


def bindbee_webhook_body(event: str, connector_id: str, key: str = "w1") -> bytes:
    """A webhook body as Bindbee's documentation shows it (no event id: the body is the key)."""
    return json.dumps(
        {
            "webhook": {"webhook_id": key, "url": "https://x", "event": event},
            "connector": {"id": connector_id, "display_name": "BreatheHR"},
            "data": {},
        }
    ).encode()


def webhook_event(connector_id: str, key: str = "1") -> WebhookSample:
    body = bindbee_webhook_body("connector_sync_error", connector_id, key=f"w{key}")
    return WebhookSample(body, "failing", sync_result="failure")


def bindbee_signed(running: Running, body: bytes, hex_digest: bool = False) -> dict[str, str]:
    """Bindbee's scheme as read from its documentation, computed here rather than by the
    exporter: HMAC-SHA256 of the raw body keyed with the signature key, base64 (or hex)."""
    digest = hmac.new(running.key("bindbee"), body, hashlib.sha256).digest()
    encoded = digest.hex() if hex_digest else base64.b64encode(digest).decode()
    return {"X-Bindbee-Webhook-Signature": encoded}


async def test_webhook_sync_error_and_sync_completed(sim: Simulator) -> None:
    async with listening(sim, ["bindbee"]) as running:
        (cid,) = await running.healthy("bindbee")
        body = bindbee_webhook_body("connector_sync_error", cid)
        assert (
            await running.send("bindbee", body, bindbee_signed(running, body))
        ).status_code == 200
        assert await running.health("bindbee", cid) == "failing"
        syncs = "connector_syncs_total"
        assert await running.connector_value(syncs, "bindbee", cid, result="failure") == 1
        assert (await running.send("bindbee", body, {})).status_code == 401
        assert await running.answers("bindbee", "bad_signature") == 1
        # The page names no encoding: hex is the same MAC and is accepted too.
        for event in ("connector_sync_started", "connector_synced"):
            body = bindbee_webhook_body(event, cid)
            signed = bindbee_signed(running, body, hex_digest=True)
            assert (await running.send("bindbee", body, signed)).status_code == 200
        assert await running.health("bindbee", cid) == "healthy"
        assert await running.connector_value(syncs, "bindbee", cid, result="success") == 1
        # Data-model events say nothing about the connector: answered, nothing changes.
        other = bindbee_webhook_body("employee.updated", cid)
        assert (
            await running.send("bindbee", other, bindbee_signed(running, other))
        ).status_code == 200
        assert await running.health("bindbee", cid) == "healthy"
        assert await running.answers("bindbee", "accepted") == 4


# --- What the simulator serves: endpoints against the published schemas, the curated fleet ---
# (tests/simulator/test_schemas.py checks SCHEMA_ENDPOINTS and OUT_OF_SPEC_MESSAGES for every
# vendor; the section imports what it uses itself, so that it stands apart from the quirks above)


def _crawl(*categories: str) -> simulated.Crawl:
    """Every page of each category's listing, one after the other."""

    async def crawl(crawler: simulated.Crawler) -> list[simulated.Page]:
        pages: list[simulated.Page] = []
        for category in categories:
            pages += await crawler.cursor_pages(
                "bindbee",
                f"/api/{category}/v1/connectors",
                {"page_size": simulated.PAGE},
                "cursor",
                lambda b: b.get("cursor"),
            )
        return pages

    return crawl


# The HRIS listing has its own response type (with the HRIS fields); ATS and LMS share one.
SCHEMA_ENDPOINTS = (
    simulated.Endpoint(
        "GET /api/hris/v1/connectors",
        "bindbee_connectors.json",
        _crawl("hris"),
        ref="PaginatedResponse_HrisConnectorResponse_",
    ),
    simulated.Endpoint(
        "GET /api/{ats,lms}/v1/connectors",
        "bindbee_connectors.json",
        _crawl("ats", "lms"),
        ref="PaginatedResponse_ConnectorResponse_",
        out_of_spec=True,
    ),
)
# Under the `out_of_spec` fault: a status out of the schema's enum.
OUT_OF_SPEC_MESSAGES = ("'PENDING_REVIEW' is not one of",)


async def test_curated_fleet_has_every_new_signal(sim: Simulator) -> None:
    pages = await simulated.served(sim, SCHEMA_ENDPOINTS)
    hris = simulated.items(pages, "GET /api/hris/v1/connectors", lambda b: b["items"])
    others = simulated.items(pages, "GET /api/{ats,lms}/v1/connectors", lambda b: b["items"])
    assert any(c["is_test_connector"] is True for c in hris + others)
    assert any(isinstance(c.get("sync_progress"), int) for c in hris)
    # only the HRIS listing carries the HRIS fields
    assert not any("sync_progress" in c for c in others)

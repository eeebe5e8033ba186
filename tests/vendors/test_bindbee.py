"""Bindbee: translation of seed-shaped JSON per category."""

from __future__ import annotations

from typing import Any

import pytest

from exporter.errors import BadResponse
from exporter.model import Connector, Health, PollResult
from exporter.simulator.base import VendorSim
from exporter.vendors import bindbee
from tests.conftest import fixture_json


def translated() -> dict[str, Connector]:
    out: dict[str, Connector] = {}
    for category in ("hris", "ats", "lms"):
        items, cursor = bindbee.parse_page(fixture_json("bindbee", f"{category}.json"))
        assert cursor is None
        out.update({c.name: c for c in bindbee.translate(items, category)})
    return out


def test_every_health_rule_of_the_spec_row() -> None:
    got = {name: c.health for name, c in translated().items()}
    assert got == {
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


def test_fields_map_to_the_model() -> None:
    c = translated()
    ukg = c["ukg-pro"]
    assert (ukg.integration, ukg.group, ukg.end_user) == ("ukg-pro", "hris", "Initech")
    assert ukg.setup_state == "relink_needed" and ukg.relink_needed is True
    assert ukg.relink_needed_since == pytest.approx(1733097600.0 - 3 * 3600)
    assert ukg.sync_state == "done"
    assert c["workday"].sync_state == "syncing"
    assert c["rippling"].sync_state == "failed"
    assert c["hibob"].paused is True
    bamboo = c["bamboohr"]
    assert bamboo.last_sync_start == pytest.approx(1733097600.0 - 2 * 3600)
    assert bamboo.next_sync == pytest.approx(1733097600.0 + 22 * 3600)
    assert c["greenhouse"].group == "ats" and c["docebo"].group == "lms"


def test_unknown_status_maps_to_other_and_nulls_to_nothing() -> None:
    c = translated()
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
    for connector in translated().values():
        assert "SENTINEL-CONNECTOR-TOKEN" not in repr(connector)


def test_parse_page_rejects_wrong_shapes() -> None:
    with pytest.raises(BadResponse):
        bindbee.parse_page({"items": "nope", "cursor": None})
    with pytest.raises(BadResponse):
        bindbee.parse_page([1, 2])
    assert bindbee.parse_page({"items": [], "cursor": "c2"}) == ([], "c2")


# --- for the property tests over every vendor ---------------------------------------------
FUZZ_FIXTURES = ["hris.json", "ats.json"]


def read_any(data: Any) -> PollResult:
    """How the adapter reads any body (for tests/reliability/test_properties.py)."""
    return PollResult(tuple(bindbee.translate(bindbee.parse_page(data)[0], "hris")))


def plant_served_secret(sim: VendorSim, value: str) -> None:
    """`connector_token` in every served connector (for tests/reliability/test_secrets.py)."""
    for c in sim.connectors.values():
        c["connector_token"] = value


# --- What the simulator serves: endpoints against the published schemas, the curated fleet ---
# (tests/simulator/test_schemas.py checks SCHEMA_ENDPOINTS and OUT_OF_SPEC_MESSAGES for every
# vendor; the section imports what it uses itself, so that it stands apart from the quirks above)
from exporter.simulator import Simulator  # noqa: E402
from tests.simulator import schemas as simulated  # noqa: E402


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

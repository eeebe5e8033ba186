"""Fivetran: translation of seed-shaped JSON, and the client against the simulator."""

from __future__ import annotations

from typing import Any

import pytest

from exporter.errors import BadResponse
from exporter.model import Connector, Health, PollResult
from exporter.vendors import fivetran
from tests.conftest import fixture_json


def by_id() -> dict[str, Connector]:
    page = fixture_json("fivetran", "connections.json")
    items, cursor = fivetran.parse_page(page)
    assert cursor is None
    return {c.connector_id: c for c in fivetran.translate(items)}


def test_every_health_rule_of_the_spec_row() -> None:
    got = {cid: c.health for cid, c in by_id().items()}
    assert got == {
        "ft_orders": Health.HEALTHY,
        "ft_crm": Health.HEALTHY,
        "ft_legacy": Health.PAUSED,
        "ft_billing": Health.BROKEN,
        "ft_onboarding": Health.INCOMPLETE,
        "ft_events": Health.FAILING,
        "ft_ads": Health.DEGRADED,
        "ft_marketing": Health.DEGRADED,
        "ft_hr": Health.DEGRADED,
        "ft_warehouse": Health.HEALTHY,
        "ft_future": Health.HEALTHY,
        "ft_sparse": Health.HEALTHY,
        # paused wins over a broken setup: the first rule that applies, top down
        "ft_paused_broken": Health.PAUSED,
    }


def test_fields_map_to_the_model() -> None:
    hr = by_id()["ft_hr"]
    assert (hr.name, hr.integration, hr.group, hr.end_user) == (
        "hr",
        "workday",
        "warehouse_prod",
        "",
    )
    assert (hr.setup_state, hr.sync_state, hr.update_state) == (
        "connected",
        "scheduled",
        "on_schedule",
    )
    assert (hr.tasks, hr.warnings) == (1, 2)
    assert hr.sync_frequency == 360 * 60
    # 2024-12-02T00:00Z minus 30 minutes, from the fixture's succeeded_at
    assert hr.last_success == pytest.approx(1733097600.0 - 1800)
    assert hr.relink_needed is False and hr.paused is False
    marketing = by_id()["ft_marketing"]
    assert marketing.sync_state == "rescheduled"
    assert marketing.next_sync == pytest.approx(1733097600.0 + 7200)


def test_unknown_enum_values_map_to_other() -> None:
    assert by_id()["ft_future"].setup_state == "other"


def test_nulls_missing_and_bad_fields_produce_no_values() -> None:
    sparse = by_id()["ft_sparse"]
    assert sparse.setup_state is None and sparse.sync_state is None and sparse.update_state is None
    assert sparse.last_success is None and sparse.last_failure is None  # "not-a-date"
    assert sparse.sync_frequency is None and sparse.tasks is None and sparse.warnings is None
    assert sparse.group == "" and sparse.paused is False


def test_items_without_id_or_not_objects_are_skipped() -> None:
    page = fixture_json("fivetran", "connections.json")
    assert len(page["data"]["items"]) == len(by_id()) + 2


@pytest.mark.parametrize(
    ("data", "cursor"),
    [
        ({"data": {"items": [], "next_cursor": "abc"}}, "abc"),
        ({"data": {"items": [], "nextCursor": "def"}}, "def"),
        ({"data": {"items": [], "next_cursor": ""}}, None),
        ({"data": {"items": [], "next_cursor": None}}, None),
        ({"data": {"items": []}}, None),
    ],
)
def test_parse_page_cursor_variants(data: dict[str, Any], cursor: str | None) -> None:
    assert fivetran.parse_page(data) == ([], cursor)


@pytest.mark.parametrize(
    "data", [[], {"data": None}, {"data": {"items": {"not": "a list"}}}, "text", None]
)
def test_parse_page_rejects_wrong_shapes(data: Any) -> None:
    with pytest.raises(BadResponse):
        fivetran.parse_page(data)


def test_failed_after_success_is_failing_and_before_is_not() -> None:
    base = {"id": "x", "status": {"setup_state": "connected"}}
    later = fivetran.translate_one(
        {**base, "succeeded_at": "2024-12-01T00:00:00Z", "failed_at": "2024-12-01T00:00:01Z"}
    )
    earlier = fivetran.translate_one(
        {**base, "succeeded_at": "2024-12-01T00:00:01Z", "failed_at": "2024-12-01T00:00:00Z"}
    )
    never = fivetran.translate_one({**base, "failed_at": "2024-12-01T00:00:00Z"})
    assert later is not None and earlier is not None and never is not None
    assert (later.health, earlier.health, never.health) == (
        Health.FAILING,
        Health.HEALTHY,
        Health.FAILING,
    )


# --- for the property tests over every vendor ---------------------------------------------
FUZZ_FIXTURES = ["connections.json"]


def read_any(data: Any) -> PollResult:
    """How the adapter reads any body (for tests/reliability/test_properties.py)."""
    return PollResult(tuple(fivetran.translate(fivetran.parse_page(data)[0])))


# --- What the simulator serves: endpoints against the published schemas, the curated fleet ---
# (tests/simulator/test_schemas.py checks SCHEMA_ENDPOINTS and OUT_OF_SPEC_MESSAGES for every
# vendor; the section imports what it uses itself, so that it stands apart from the quirks above)
from exporter.simulator import Simulator  # noqa: E402
from tests.simulator import schemas as simulated  # noqa: E402


def _crawl(path: str, cursor_key: str) -> simulated.Crawl:
    """Every page of a listing: the next cursor is in `data` (spelled per endpoint)."""

    async def crawl(crawler: simulated.Crawler) -> list[simulated.Page]:
        return await crawler.cursor_pages(
            "fivetran",
            path,
            {"limit": simulated.PAGE},
            "cursor",
            lambda b: b["data"].get(cursor_key),
        )

    return crawl


SCHEMA_ENDPOINTS = (
    simulated.Endpoint(
        "GET /v1/connections",
        "fivetran_list_connections.json",
        _crawl("/v1/connections", "next_cursor"),
        out_of_spec=True,
    ),
    simulated.Endpoint(
        "GET /v1/connectors",
        "fivetran_list_connectors_legacy.json",
        _crawl("/v1/connectors", "nextCursor"),
        out_of_spec=True,
    ),
)
# Under the `out_of_spec` fault: nulls where the schema has strings, a plain config value.
OUT_OF_SPEC_MESSAGES = (
    "failed_at: None is not of type 'string'",
    "rescheduled_for: None is not of type 'string'",
    "config.host: 'db.internal' is not of type 'object'",
)


async def test_curated_fleet_has_every_new_signal(sim: Simulator) -> None:
    pages = await simulated.served(sim, SCHEMA_ENDPOINTS)
    for endpoint in pages:
        connections = simulated.items(pages, endpoint, lambda b: b["data"]["items"])
        status = [c["status"] for c in connections]
        assert {"ready", "blocked_on_capture", "blocked_on_customer"} <= {
            s["schema_status"] for s in status
        }
        assert any(c["schedule_type"] == "manual" for c in connections)
        assert any(s["is_historical_sync"] is True for s in status)
        # a setup_state none of the documented ones
        assert {s["setup_state"] for s in status} - {"connected", "incomplete", "broken"}
        for group in ("tasks", "warnings"):
            entries = [t for s in status for t in s[group]]
            assert entries and all(t["code"] and t["message"] for t in entries), group

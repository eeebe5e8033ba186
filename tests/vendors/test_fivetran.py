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
        "ft_future": Health.UNKNOWN,  # setup state `suspended` is unknown to us
        "ft_sparse": Health.UNKNOWN,  # no setup state at all
        # paused wins over a broken setup: the first rule that applies, top down
        "ft_paused_broken": Health.PAUSED,
        "ft_manual": Health.HEALTHY,  # a manual schedule is not a fault by itself
        "ft_historical": Health.HEALTHY,
        "ft_blocked": Health.DEGRADED,  # schema blocked_on_customer
        "ft_capture": Health.HEALTHY,  # blocked_on_capture: Fivetran's own work, not a fault
        "ft_schema_new": Health.HEALTHY,
        "ft_warned": Health.HEALTHY,  # warnings alone do not degrade (SPEC: tasks do)
        "ft_nested_schedule": Health.HEALTHY,
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


def test_schema_state_manual_schedule_and_historical_sync() -> None:
    c = by_id()
    assert {k: x.schema_state for k, x in c.items() if k.startswith(("ft_b", "ft_c", "ft_s"))} == {
        "ft_billing": "ready",
        "ft_blocked": "blocked_on_customer",
        "ft_capture": "blocked_on_capture",
        "ft_crm": "ready",
        "ft_schema_new": "other",  # a value we do not know
        "ft_sparse": None,  # omitted: no series
    }
    assert c["ft_manual"].manual_schedule is True and c["ft_orders"].manual_schedule is False
    assert c["ft_nested_schedule"].manual_schedule is True  # go-fivetran's `schedule` object
    assert c["ft_sparse"].manual_schedule is None
    assert c["ft_historical"].historical_sync is True and c["ft_orders"].historical_sync is False
    assert c["ft_sparse"].historical_sync is None


def test_issue_codes_are_snake_case_unique_and_carry_no_message() -> None:
    c = by_id()
    assert c["ft_hr"].issues == (
        ("task", "reconnect"),
        ("warning", "resync_table_warning"),
        ("warning", "schema_changed"),
    )
    # CamelCase and snake_case spellings of one code are one series; a code-less entry none
    assert c["ft_warned"].issues == (("warning", "update_delayed_warning"),)
    assert c["ft_warned"].warnings == 3  # the count still counts every entry
    assert c["ft_orders"].issues == () and c["ft_sparse"].issues == ()
    assert "Resync Table" not in repr(c["ft_hr"])


@pytest.mark.parametrize(
    ("code", "label"),
    [
        ("reconnect", "reconnect"),
        ("SchemaChanged", "schema_changed"),
        ("  Foo-Bar baz! ", "foo_bar_baz"),
        ("x" * 100, "x" * 64),
        ("__", ""),
        (None, ""),
        ({"a": 1}, ""),
    ],
)
def test_issue_code(code: Any, label: str) -> None:
    assert fivetran.issue_code(code) == label


def test_issue_codes_per_connector_are_capped() -> None:
    tasks = [{"code": f"task_{i:03d}", "message": "m"} for i in range(50)]
    c = fivetran.translate_one({"id": "x", "status": {"setup_state": "connected", "tasks": tasks}})
    assert c is not None and len(c.issues) == fivetran.MAX_ISSUES_PER_CONNECTOR
    assert c.tasks == 50 and c.health == Health.DEGRADED


def test_blocked_on_customer_is_degraded_but_loses_to_failing_and_setup_rules() -> None:
    def health(status: dict[str, Any], **item: Any) -> Health:
        c = fivetran.translate_one({"id": "x", "status": status, **item})
        assert c is not None
        return c.health

    blocked = {"setup_state": "connected", "schema_status": "blocked_on_customer"}
    assert health(blocked) == Health.DEGRADED
    assert health({**blocked, "setup_state": "incomplete"}) == Health.INCOMPLETE
    assert health(blocked, failed_at="2024-12-01T00:00:00Z") == Health.FAILING
    # unknown setup loses to degraded (the table puts degraded first) but wins over healthy
    assert health({**blocked, "setup_state": "suspended"}) == Health.DEGRADED
    assert health({"setup_state": "suspended"}) == Health.UNKNOWN
    assert health({"setup_state": "connected"}) == Health.HEALTHY


# --- for the property tests over every vendor ---------------------------------------------
FUZZ_FIXTURES = ["connections.json"]


def read_any(data: Any) -> PollResult:
    """How the adapter reads any body (for tests/reliability/test_properties.py)."""
    return PollResult(tuple(fivetran.translate(fivetran.parse_page(data)[0])))

"""Fivetran: translation of seed-shaped JSON, and the client against the simulator."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import pytest

from exporter.errors import BadResponse
from exporter.model import Connector, Health, PollResult
from exporter.simulator import Simulator
from exporter.simulator.base import iso
from exporter.vendors import fivetran
from tests.conftest import fixture_json
from tests.simulator import schemas as simulated
from tests.webhooks.harness import Running, WebhookSample, listening

# --- what tests/vendors/test_contract.py expects of the fixtures ---------------------------
HEALTHS = {
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
IDENTITIES = {"ft_hr": ("hr", "workday", "warehouse_prod", "")}
FIELDS: dict[str, dict[str, Any]] = {
    "ft_hr": {"setup_state": "connected", "sync_state": "scheduled", "update_state": "on_schedule"},
    "ft_marketing": {"sync_state": "rescheduled"},
}
GOLDEN_ACCOUNT = {"vendor": "fivetran", "name": "prod", "api_key": "k", "api_secret": "s"}


def fixture_connectors() -> dict[str, Connector]:
    page = fixture_json("fivetran", "connections.json")
    items, cursor = fivetran.parse_page(page)
    assert cursor is None
    return {c.connector_id: c for c in fivetran.translate(items)}


def test_counts_frequency_and_timestamps_map_to_the_model() -> None:
    hr = fixture_connectors()["ft_hr"]
    assert (hr.tasks, hr.warnings) == (1, 2)
    assert hr.sync_frequency == 360 * 60
    assert hr.relink_needed is False and hr.paused is False
    # 2024-12-02T00:00Z minus 30 minutes, from the fixture's succeeded_at
    assert hr.last_success == pytest.approx(1733097600.0 - 1800)
    marketing = fixture_connectors()["ft_marketing"]
    assert marketing.next_sync == pytest.approx(1733097600.0 + 7200)


def test_unknown_enum_values_map_to_other() -> None:
    assert fixture_connectors()["ft_future"].setup_state == "other"


def test_nulls_missing_and_bad_fields_produce_no_values() -> None:
    sparse = fixture_connectors()["ft_sparse"]
    assert sparse.setup_state is None and sparse.sync_state is None and sparse.update_state is None
    assert sparse.last_success is None and sparse.last_failure is None  # "not-a-date"
    assert sparse.sync_frequency is None and sparse.tasks is None and sparse.warnings is None
    assert sparse.group == "" and sparse.paused is False


def test_items_without_id_or_not_objects_are_skipped() -> None:
    page = fixture_json("fivetran", "connections.json")
    assert len(page["data"]["items"]) == len(fixture_connectors()) + 2


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
    c = fixture_connectors()
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
    c = fixture_connectors()
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


# --- webhooks: Fivetran's events, and what the tests over every vendor need ---------------
# (Appended as one section while other sections of this file change in parallel; its imports
# stay here so that the section merges as a whole.)


WEBHOOK_SIM_CHANGES = (
    ("ft_orders", "broken"),
    ("ft_orders", "healthy"),
    ("ft_crm", "failing"),
    ("ft_legacy", "healthy"),  # paused in the fleet: resume_connector comes first
)


def fivetran_webhook_body(event: str, connector_id: str, **fields: Any) -> bytes:
    """A webhook body as Fivetran's documentation shows it; `fields` go into `data`."""
    return json.dumps(
        {
            "event": event,
            "created": fields.pop("created", iso(time.time())),
            "connector_type": "postgres",
            "connector_id": connector_id,
            "connector_name": connector_id,
            "sync_id": fields.pop("sync_id", "sync-1"),
            "destination_group_id": "warehouse_prod",
            "data": fields,
        }
    ).encode()


def webhook_event(connector_id: str, key: str = "1") -> WebhookSample:
    """A sync that ends in failure now: later than the last success, so `failing`."""
    body = fivetran_webhook_body(
        "sync_end", connector_id, sync_id=f"sync-{key}", status="FAILURE_WITH_TASK"
    )
    return WebhookSample(body, "failing", sync_result="failure")


def fivetran_signed(running: Running, body: bytes, upper: bool = True) -> dict[str, str]:
    """Fivetran's documented scheme computed here, not by the exporter: hex HMAC-SHA256 of the
    raw body keyed with the webhook's secret (upper case as Fivetran's examples print it)."""
    digest = hmac.new(running.key("fivetran"), body, hashlib.sha256).hexdigest()
    return {"X-Fivetran-Signature-256": digest.upper() if upper else digest}


async def fivetran_post(running: Running, body: bytes, upper: bool = True) -> int:
    return (await running.send("fivetran", body, fivetran_signed(running, body, upper))).status_code


async def test_webhook_connection_failure_breaks_the_connector_at_once(sim: Simulator) -> None:
    async with listening(sim, ["fivetran"]) as running:
        assert await running.health("fivetran", "ft_orders") == "healthy"
        polls = running.runner("fivetran").status.polls_total
        # The creation-time test payload is answered and changes nothing.
        assert await fivetran_post(running, fivetran_webhook_body("test_event", "ft_orders")) == 200
        assert await running.health("fivetran", "ft_orders") == "healthy"
        assert (
            await fivetran_post(running, fivetran_webhook_body("connection_failure", "ft_orders"))
            == 200
        )
        assert await running.health("fivetran", "ft_orders") == "broken"
        assert await running.answers("fivetran", "accepted") == 2
        stamp = await running.connector_value(
            "connector_last_event_timestamp_seconds", "fivetran", "ft_orders"
        )
        assert stamp is not None and abs(stamp - time.time()) < 30
        # The signature is compared case-blind: a lower-case hex digest is the same MAC.
        repaired = fivetran_webhook_body("connection_successful", "ft_orders")
        assert await fivetran_post(running, repaired, upper=False) == 200
        assert await running.health("fivetran", "ft_orders") == "healthy"
        # No poll happened: the changes came from the events alone.
        assert running.runner("fivetran").status.polls_total == polls


async def test_webhook_sync_pairs_count_results_and_durations(sim: Simulator) -> None:
    async with listening(sim, ["fivetran"]) as running:
        now = time.time()
        start = fivetran_webhook_body("sync_start", "ft_crm", created=iso(now - 40), sync_id="s9")
        end = fivetran_webhook_body(
            "sync_end", "ft_crm", created=iso(now - 10), sync_id="s9", status="FAILURE"
        )
        for body in (start, end):
            assert await fivetran_post(running, body) == 200
        syncs = "connector_syncs_total"
        assert await running.connector_value(syncs, "fivetran", "ft_crm", result="failure") == 1
        assert await running.connector_value(syncs, "fivetran", "ft_crm", result="success") is None
        duration = "connector_last_sync_duration_seconds"
        assert await running.connector_value(duration, "fivetran", "ft_crm") == 30.0
        # failed_at became the end time, later than succeeded_at: the poll's rule says failing.
        assert await running.health("fivetran", "ft_crm") == "failing"
        ok = fivetran_webhook_body(
            "sync_end", "ft_crm", created=iso(now - 5), sync_id="s10", status="SUCCESSFUL"
        )
        assert await fivetran_post(running, ok) == 200
        assert await running.connector_value(syncs, "fivetran", "ft_crm", result="success") == 1
        assert await running.health("fivetran", "ft_crm") == "healthy"


async def test_webhook_pause_and_resume(sim: Simulator) -> None:
    async with listening(sim, ["fivetran"]) as running:
        for minute, (event, health) in enumerate(
            (("pause_connector", "paused"), ("resume_connector", "healthy"))
        ):
            created = f"2026-12-02T01:0{minute}:00Z"
            assert (
                await fivetran_post(
                    running, fivetran_webhook_body(event, "ft_ads", created=created)
                )
                == 200
            )
            assert await running.health("fivetran", "ft_ads") == health


# --- What the simulator serves: endpoints against the published schemas, the curated fleet ---
# (tests/simulator/test_schemas.py checks SCHEMA_ENDPOINTS and OUT_OF_SPEC_MESSAGES for every
# vendor; the section imports what it uses itself, so that it stands apart from the quirks above)


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

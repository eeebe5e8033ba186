"""Apideck: catalog and Vault translation, the simulator over real sockets, golden exposition."""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import io
import json
import time
import zlib
from typing import Any

import httpx
import pytest
from aiohttp import web

from exporter import logs
from exporter.config import ConfigError, parse_config
from exporter.errors import BadResponse, VendorError
from exporter.model import CatalogEntry, Connector, Health, PollResult
from exporter.simulator import Simulator
from exporter.simulator import apideck as apideck_sim
from exporter.simulator.base import Fault, VendorSim
from exporter.vendors import apideck
from tests.conftest import (
    FIXED_NOW,
    account_runner,
    fixture_json,
    make_config,
    poll_once,
    render,
    sim_account,
)
from tests.simulator import schemas as simulated
from tests.vendors.helpers import InstrumentedSimulator, golden_text, polled, polled_alone, served
from tests.webhooks.harness import Running, WebhookSample, listening

SENTINEL = "SENTINEL-SECRET-3f9c1a"  # in every connection's `settings` in the fixtures
HOUR = 3600.0


# --- what tests/vendors/test_contract.py expects of the fixtures ---------------------------
HEALTHS = {
    "acme/crm+salesforce": Health.HEALTHY,
    "acme/crm+hubspot": Health.PAUSED,  # enabled false wins over invalid
    "globex/crm+salesforce": Health.RELINK_NEEDED,  # state invalid
    "globex/accounting+xero": Health.RELINK_NEEDED,  # health revoked
    "globex/hris+personio": Health.RELINK_NEEDED,  # health needs_consent
    "globex/ats+teamtailor": Health.INCOMPLETE,  # missing_settings
    "globex/crm+pipedrive": Health.DEGRADED,  # pending_refresh
    "globex/crm+copper": Health.DEGRADED,  # degraded
    "globex/pos+square": Health.INCOMPLETE,  # state available, not callable
    "globex/crm+close": Health.INCOMPLETE,  # unknown state is not callable
    "globex/crm+attio": Health.HEALTHY,  # unknown health, callable
    "globex/file-storage+box": Health.INCOMPLETE,  # pending_confirmation, authorized
    "globex/crm+zoho": Health.HEALTHY,
    "globex/lead+sparse": Health.UNKNOWN,  # neither state nor health
}
IDENTITIES = {"globex/crm+salesforce": ("Salesforce", "salesforce", "crm", "globex")}
FIELDS: dict[str, dict[str, Any]] = {
    "globex/crm+salesforce": {"setup_state": "invalid", "relink_needed": True},
    # relink_needed is set from its own field, even where `paused` wins the health
    "acme/crm+hubspot": {"paused": True, "relink_needed": True},
    "globex/accounting+xero": {"relink_needed": True},
    "globex/ats+teamtailor": {"setup_state": "added"},
    "globex/file-storage+box": {"setup_state": "authorized"},
    "globex/pos+square": {"setup_state": "available"},
    "globex/crm+close": {"setup_state": "other"},
    "acme/crm+salesforce": {"setup_state": "callable"},
}
# Catalog statuses with a hyphen, unknown (`other`) and null; names and auth types as listed.
CATALOG = {
    "crm+salesforce": ("live", "Salesforce", "oauth2"),
    "hris+bamboohr": ("beta", "BambooHR", "apiKey"),
    "accounting+exact-online": ("early_access", "Exact Online", "oauth2"),
    "ats+teamtailor": ("development", "Teamtailor", "apiKey"),
    "crm+copper": ("considering", "Copper", "basic"),
    "pos+square": ("other", "Square", "oauth2"),
    "crm+nostatus": (None, "No Status", ""),
}
GOLDEN_ACCOUNT = {"vendor": "apideck", "name": "unify", "api_key": "k", "app_id": "app1"}
# Failing polls for the contract's secrets test; the error mode answers Apideck's 402 (quota).
SECRET_FAULTS = tuple(
    Fault(mode=mode, status=402) for mode in ("error", "unauthorized", "malformed", "cursor_loop")
)


def fixture_connectors() -> dict[str, Connector]:
    listed, cursor = apideck.parse_page(fixture_json("apideck", "consumers.json"))
    assert cursor == "Y3Vyc29yOjM="
    detail = apideck.parse_consumer(fixture_json("apideck", "consumer-globex.json"))
    out = apideck.translate_consumer(listed[0]) + apideck.translate_consumer(detail)
    return {c.connector_id: c for c in out}


def fixture_catalog() -> dict[str, CatalogEntry]:
    items, cursor = apideck.parse_page(fixture_json("apideck", "connectors.json"))
    assert cursor is None
    return {e.connector_id: e for e in apideck.translate_catalog(items)}


def test_only_the_disabled_connection_is_paused() -> None:
    c = fixture_connectors()
    assert not any(x.paused for k, x in c.items() if k != "acme/crm+hubspot")


def test_millisecond_and_iso_timestamps_zero_and_null_are_none() -> None:
    c = fixture_connectors()
    assert c["globex/crm+salesforce"].last_failure == pytest.approx(FIXED_NOW - 2 * HOUR)
    assert c["globex/crm+salesforce"].credential_expiry is None  # 0 = no retention window
    pipedrive = c["globex/crm+pipedrive"]
    assert pipedrive.credential_expiry == pytest.approx(FIXED_NOW + 5 * 24 * HOUR)
    assert pipedrive.last_failure == pytest.approx(FIXED_NOW - 0.5 * HOUR)  # ISO 8601 form
    zoho = c["globex/crm+zoho"]
    assert zoho.credential_expiry is None and zoho.last_failure is None  # null and garbage
    sparse = c["globex/lead+sparse"]
    assert (sparse.name, sparse.integration, sparse.group, sparse.setup_state) == ("", "", "", None)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (1730000000000, 1730000000.0),
        ("1730000000000", 1730000000.0),
        (0, None),
        ("0", None),
        (None, None),
        (True, None),
        ("2024-12-01T23:30:00Z", FIXED_NOW - 0.5 * HOUR),
        ("yesterday", None),
        ({"ms": 1}, None),
    ],
)
def test_parse_millis(value: Any, seconds: float | None) -> None:
    assert apideck.parse_millis(value) == (pytest.approx(seconds) if seconds else None)


def test_settings_are_never_carried() -> None:
    assert all(SENTINEL not in repr(c) for c in fixture_connectors().values())


@pytest.mark.parametrize("data", [[], {"data": {"not": "a list"}}, "text"])
def test_parse_page_rejects_wrong_shapes(data: Any) -> None:
    with pytest.raises(BadResponse):
        apideck.parse_page(data)


def test_parse_consumer_rejects_wrong_shapes() -> None:
    with pytest.raises(BadResponse):
        apideck.parse_consumer({"data": []})


def test_config_rejects_nothing_to_poll() -> None:
    text = (
        "accounts:\n  - {vendor: apideck, name: a, api_key: k, app_id: x,"
        " catalog: false, connections: false}\n"
    )
    with pytest.raises(ConfigError) as err:
        parse_config(text, env={})
    assert [p.path for p in err.value.problems] == ["accounts[0]"]
    assert "nothing to poll" in str(err.value)


# --- golden exposition (tests/vendors/test_contract.py compares it with the file) ----------
def test_golden_catalog_stateset() -> None:
    text = golden_text("apideck")
    # catalog StateSet: one series per known status plus `other`, a null status has none
    status_lines = [
        line for line in text.splitlines() if line.startswith("connector_catalog_status{")
    ]
    assert len(status_lines) == 6 * 6
    assert not any('connector_id="crm+nostatus"' in line for line in status_lines)


# --- the simulator over real sockets -------------------------------------------------------
poll = functools.partial(poll_once, vendor="apideck")


async def test_polls_catalog_and_every_consumer(sim: Simulator) -> None:
    runner, snap = await polled(sim, "apideck")
    fleet = sim.vendors["apideck"].connectors
    assert {c.connector_id for c in snap.connectors} == set(fleet)
    assert {e.connector_id for e in snap.catalog} == {e["id"] for e in apideck_sim.CATALOG}
    healths = {c.health for c in snap.connectors}
    assert healths == {
        Health.HEALTHY,
        Health.PAUSED,
        Health.RELINK_NEEDED,
        Health.INCOMPLETE,
        Health.DEGRADED,
    }
    states = {c.setup_state for c in snap.connectors}
    # `archived` (outside the schema's enum, so `other`) only comes in the out_of_spec scenario
    assert states == set(apideck.STATES.setup)
    # one catalog page, one consumer page, one detail request per consumer (hooli has none)
    consumers = {c["consumer_id"] for c in fleet.values()} | set(apideck_sim.EMPTY_CONSUMERS)
    assert runner.status.requests["200"] == 2 + len(consumers)


async def test_tiny_pages_follow_every_cursor(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(apideck, "PAGE_SIZE", 2)
    runner, snap = await polled(sim, "apideck")
    assert len(snap.catalog) == len(apideck_sim.CATALOG)
    assert len(snap.connectors) == len(sim.vendors["apideck"].connectors)
    consumers = 5  # acme, globex, initech, umbrella, hooli
    assert runner.api.stats.pages == 4 + 3 + consumers  # 7 catalog entries, 5 consumers


async def test_catalog_or_connections_can_be_switched_off(sim: Simulator) -> None:
    runner, snap = await polled(sim, "apideck", connections=False)
    assert not snap.connectors and snap.catalog
    assert runner.api.stats.requests == 1
    _, snap = await polled(sim, "apideck", catalog=False)
    assert snap.connectors and not snap.catalog


async def test_generated_fleet_over_several_pages() -> None:
    # A few milliseconds of network latency, as any real API has: with none, the simulator's
    # CPU-bound answers and the client share one event loop, and new keep-alive connections
    # then stall for seconds (an artefact of that setup; a simulator in its own process or
    # any latency at all does not show it).
    simulator = InstrumentedSimulator({"apideck": 2500}, delay=lambda _: 0.005)
    runner, snap = await polled_alone(simulator, "apideck")
    assert len(snap.connectors) == 2500
    # 250 consumers (+1 without connections) on two list pages, then one detail each
    assert runner.api.stats.requests == 1 + 2 + 251


async def test_wrong_key_or_app_id_is_401(sim: Simulator) -> None:
    ok, runner = await poll(sim, app_id="another-app")
    assert not ok
    assert "HTTP 401: Unauthorized Request" in runner.status.last_error
    assert runner.status.requests == {"401": 1}
    ok, runner = await poll(sim, api_key="wrong-key-123456")
    assert not ok and "wrong-key-123456" not in runner.status.last_error


async def test_402_quota_fails_the_poll_with_its_message_and_no_retry(sim: Simulator) -> None:
    sim.vendors["apideck"].fault = Fault(mode="error", status=402, count=1)
    runner = account_runner(sim_account(sim, "apideck"), max_retries=3)
    try:
        assert not await runner.poll()
    finally:
        await runner.aclose()
    assert runner.status.last_error.endswith(f"HTTP 402: {apideck_sim.QUOTA_MESSAGE}")
    assert runner.status.requests == {"402": 1}


async def test_cursor_loop_stops_the_poll(sim: Simulator) -> None:
    sim.vendors["apideck"].fault = Fault(mode="cursor_loop")
    ok, runner = await poll(sim)
    assert not ok
    assert "cursor it had returned before" in runner.status.last_error
    assert runner.status.requests["200"] <= 3


async def test_control_api_addresses_consumer_slash_connection(sim: Simulator) -> None:
    base = f"http://127.0.0.1:{sim.port}/_control/apideck/connectors"
    async with httpx.AsyncClient() as client:
        r = await client.post(f"{base}/acme/crm+salesforce/health", json={"health": "incomplete"})
        assert r.status_code == 200 and r.json()["state"] == "added"
        r = await client.delete(f"{base}/initech/crm+hubspot")
        assert r.status_code == 204
        r = await client.delete(f"{base}/initech/crm+hubspot")
        assert r.status_code == 404
    _, snap = await polled(sim, "apideck")
    by_id = {c.connector_id: c for c in snap.connectors}
    assert by_id["acme/crm+salesforce"].health == Health.INCOMPLETE
    assert "initech/crm+hubspot" not in by_id


async def test_consumer_deleted_between_listing_and_detail_is_skipped() -> None:
    """A 404 on one consumer's detail drops that consumer, not the poll."""

    async def consumers(_: web.Request) -> web.Response:
        return web.json_response(
            {"data": [{"consumer_id": "gone"}, {"consumer_id": "here"}], "meta": {}}
        )

    async def consumer(request: web.Request) -> web.Response:
        cid = request.match_info["cid"]
        if cid == "gone":
            return apideck_sim.error(404, "Unknown Resource")
        return web.json_response(
            {"data": {"consumer_id": cid, "connections": [{"id": "crm+x", "state": "callable"}]}}
        )

    app = web.Application()
    app.router.add_get("/vault/consumers", consumers)
    app.router.add_get("/vault/consumers/{cid}", consumer)
    async with served(app) as url:
        account = {"vendor": "apideck", "name": "a", "api_key": "k", "app_id": "x"}
        runner = account_runner({**account, "base_url": url, "catalog": False})
        assert await runner.poll(), runner.status.last_error
        await runner.aclose()
    assert runner.status.snapshot is not None
    assert [c.connector_id for c in runner.status.snapshot.connectors] == ["here/crm+x"]


# --- consumer details at scale (SPEC §4, §6.1 max_concurrency) ------------------------------
DETAIL = "/apideck/vault/consumers/"


def is_detail(path: str) -> bool:
    return path.startswith(DETAIL) and len(path) > len(DETAIL)


async def poll_instrumented(
    simulator: InstrumentedSimulator, **overrides: Any
) -> tuple[bool, Any, list[str]]:
    """One poll of the Apideck connections; returns ok, the runner and the adapter's ids."""
    top = {k: overrides.pop(k) for k in ("max_retries",) if k in overrides}
    await simulator.start()
    account = sim_account(simulator, "apideck", catalog=False, **overrides)
    runner = account_runner(account, **top)
    try:
        ok = await runner.poll()
        ids: list[str] = []
        if ok:
            result = await runner.adapter.poll()  # the adapter's own order, before sorting
            ids = [c.connector_id for c in result.connectors]
    finally:
        await runner.aclose()
        await simulator.stop()
    return ok, runner, ids


async def test_detail_requests_run_concurrently_up_to_max_concurrency() -> None:
    simulator = InstrumentedSimulator({"apideck": 600}, delay=lambda _: 0.02)  # 60 consumers
    ok, runner, ids = await poll_instrumented(simulator, max_concurrency=4)
    assert ok, runner.status.last_error
    assert len(ids) == len(runner.status.snapshot.connectors) == 600
    # every request holds a slot, listing pages included: never more than 4 at once, and more
    # than one (the point of the option)
    assert 1 < simulator.vendors["apideck"].max_in_flight <= 4


async def test_max_concurrency_one_is_one_request_at_a_time() -> None:
    simulator = InstrumentedSimulator({"apideck": 100}, delay=lambda _: 0.005)
    ok, runner, _ = await poll_instrumented(simulator, max_concurrency=1)
    assert ok, runner.status.last_error
    assert simulator.vendors["apideck"].max_in_flight == 1


async def test_results_keep_the_listing_order_whatever_answers_first() -> None:
    """Later consumers answer sooner here; the connections still come in listing order."""

    def delay(request: web.Request) -> float:
        # 0-40 ms, different per consumer and unrelated to the listing order
        return (zlib.crc32(request.path.encode()) % 5) / 125 if is_detail(request.path) else 0.0

    orders = []
    for concurrency in (1, 16):
        simulator = InstrumentedSimulator({"apideck": 300}, delay=delay)
        ok, runner, ids = await poll_instrumented(simulator, max_concurrency=concurrency)
        assert ok, runner.status.last_error
        orders.append(ids)
    assert orders[0] == orders[1] and len(orders[0]) == 300
    consumers = [cid.split("/")[0] for cid in orders[0]]
    assert consumers == sorted(consumers)  # the simulator lists consumers in id order


async def test_one_429_pauses_every_detail_request_until_its_retry_after() -> None:
    """The 10th detail request gets 429 with Retry-After: 1; no request starts in that second."""
    rate_limited: list[float] = []

    def intercept(request: web.Request) -> web.StreamResponse | None:
        details = [p for _, p in simulator.arrivals if is_detail(p)]
        if is_detail(request.path) and len(details) == 10 and not rate_limited:
            rate_limited.append(simulator.arrivals[-1][0])
            response = apideck_sim.error(429, "Too many requests")
            response.headers["Retry-After"] = "1"
            return response
        return None

    # 100 consumers at 50 ms, 4 at a time: ~1.3 s of detail requests without a pause
    simulator = InstrumentedSimulator({"apideck": 1000}, delay=lambda _: 0.05, intercept=intercept)
    ok, runner, _ = await poll_instrumented(simulator, max_concurrency=4, max_retries=2)
    assert ok, runner.status.last_error
    assert len(runner.status.snapshot.connectors) == 1000
    assert rate_limited and runner.status.requests["429"] == 1
    t429 = rate_limited[0] + 0.05  # the 429 left the server after the delay
    # Requests already on the wire may land just after the 429; then nothing until Retry-After.
    paused = [t - t429 for t, _ in simulator.arrivals if t429 + 0.3 < t < t429 + 0.9]
    assert paused == []
    assert any(t >= t429 + 0.9 for t, _ in simulator.arrivals)  # and the poll went on after it


async def test_a_failing_detail_request_fails_the_poll_without_waiting_for_the_rest() -> None:
    def intercept(request: web.Request) -> web.StreamResponse | None:
        if request.path == f"{DETAIL}customer-000003":
            return apideck_sim.error(400, "Bad consumer")
        return None

    simulator = InstrumentedSimulator({"apideck": 2000}, delay=lambda _: 0.01, intercept=intercept)
    ok, runner, _ = await poll_instrumented(simulator, max_concurrency=2)
    assert not ok and runner.status.last_error.endswith("HTTP 400: Bad consumer")
    details = [p for _, p in simulator.arrivals if is_detail(p)]
    assert len(details) < 50  # of 201 consumers: the poll stopped at the failure


async def test_consumers_deleted_after_the_listing_are_skipped_by_concurrent_details() -> None:
    """The simulator itself answers 404 for consumers removed once the listing was served."""
    gone = {"customer-000005", "customer-000017"}

    def intercept(request: web.Request) -> web.StreamResponse | None:
        if is_detail(request.path):  # the listing page is out: delete them now
            fleet = simulator.vendors["apideck"].connectors
            for key in [k for k, c in fleet.items() if c["consumer_id"] in gone]:
                del fleet[key]
        return None

    simulator = InstrumentedSimulator({"apideck": 300}, delay=lambda _: 0.005, intercept=intercept)
    await simulator.start()
    runner = account_runner(sim_account(simulator, "apideck", catalog=False))
    try:
        ok = await runner.poll()
    finally:
        await runner.aclose()
        await simulator.stop()
    assert ok, runner.status.last_error
    assert runner.status.requests["404"] == 2
    snapshot = runner.status.snapshot
    assert snapshot is not None
    consumers = {c.end_user for c in snapshot.connectors}
    assert len(consumers) == 28 and not consumers & gone


@pytest.mark.parametrize(("value", "valid"), [(None, True), (1, True), (64, True)])
def test_max_concurrency_default_and_bounds(value: int | None, valid: bool) -> None:
    account: dict[str, Any] = {"vendor": "apideck", "name": "a", "api_key": "k", "app_id": "x"}
    if value is not None:
        account["max_concurrency"] = value
    config = make_config([account])
    expected = apideck.DEFAULT_MAX_CONCURRENCY if value is None else value
    assert config.accounts[0].max_concurrency == expected  # type: ignore[attr-defined]


@pytest.mark.parametrize("value", [0, 65, -1, "eight", 2.5])
def test_max_concurrency_out_of_range_is_a_config_error(value: Any) -> None:
    text = (
        "accounts:\n  - {vendor: apideck, name: a, api_key: k, app_id: x,"
        f" max_concurrency: {json.dumps(value)}}}\n"
    )
    with pytest.raises(ConfigError) as err:
        parse_config(text, env={})
    assert [p.path for p in err.value.problems] == ["accounts[0].max_concurrency"]


# --- secrets ------------------------------------------------------------------------------
async def test_a_vendor_echoing_the_key_is_redacted() -> None:
    key = "SENTINEL-echoed-key-77c1"

    async def echo(request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        return apideck_sim.error(400, f"bad header {auth}")

    app = web.Application()
    app.router.add_get("/connector/connectors", echo)
    stream = io.StringIO()
    logs.configure("debug", "json", stream=stream)
    async with served(app) as url:
        account = {"vendor": "apideck", "name": "a", "api_key": key, "app_id": "x"}
        runner = account_runner({**account, "base_url": url})
        assert not await runner.poll()
        await runner.aclose()
    assert "bad header [REDACTED]" in runner.status.last_error  # the whole header is secret
    assert key not in runner.status.last_error and key not in stream.getvalue()
    assert key not in json.dumps(render([runner.status]))


# --- for the property tests over every vendor ---------------------------------------------
FUZZ_FIXTURES = ["consumers.json", "connectors.json", "consumer-globex.json"]


def read_any(data: Any) -> PollResult:
    """Every way the adapter reads a body: list page (catalog, consumers), one consumer (for
    tests/reliability/test_properties.py)."""
    results: list[PollResult] = []
    errors: list[VendorError] = []
    for read in (_read_list, _read_consumer):
        try:
            results.append(read(data))
        except VendorError as err:
            errors.append(err)
    if not results:
        raise errors[0]
    return PollResult(
        connectors=tuple(c for r in results for c in r.connectors),
        catalog=tuple(e for r in results for e in r.catalog),
    )


def _read_list(data: Any) -> PollResult:
    items, _ = apideck.parse_page(data)
    connectors = [
        c for item in items if isinstance(item, dict) for c in apideck.translate_consumer(item)
    ]
    return PollResult(tuple(connectors), tuple(apideck.translate_catalog(items)))


def _read_consumer(data: Any) -> PollResult:
    consumer = apideck.parse_consumer(data)
    return PollResult(tuple(apideck.translate_consumer({**consumer, "consumer_id": "c1"})))


def plant_served_secret(sim: VendorSim, value: str) -> None:
    """Connection `settings` holding a key and a password (for the secrets tests:
    tests/reliability/test_secrets.py, tests/vendors/test_contract.py)."""
    for c in sim.connectors.values():
        c["settings"] = {"api_key": value, "password": value}


# --- webhooks: Apideck's events, and what the tests over every vendor need ----------------
# (Appended as one section while other sections of this file change in parallel; its imports
# stay here so that the section merges as a whole.)


# (connector, health) through the control API; the simulator pushes the Vault events.
WEBHOOK_SIM_CHANGES = (
    ("acme/crm+salesforce", "relink_needed"),
    ("acme/crm+salesforce", "paused"),
)


def apideck_webhook_body(
    event_type: str, connector_id: str, event_id: str | None = "evt-1", **entity: Any
) -> bytes:
    """A Vault connection event as Apideck documents it; the connector is consumer/connection."""
    consumer_id, _, connection_id = connector_id.partition("/")
    payload = {
        "event_type": event_type,
        "service_id": "salesforce",
        "entity_id": connection_id,
        "entity_type": "Connection",
        "entity": {"id": connection_id, "consumer_id": consumer_id, **entity},
        "occurred_at": "2026-12-02T01:00:00.000Z",
    }
    if event_id is not None:
        payload["event_id"] = event_id
    return json.dumps({"payload": payload}).encode()


def webhook_event(connector_id: str, key: str = "1") -> WebhookSample:
    body = apideck_webhook_body(
        "vault.connection.revoked", connector_id, f"evt-{connector_id}-{key}", state="callable"
    )
    return WebhookSample(body, "relink_needed")


def apideck_signed(running: Running, body: bytes, idempotency_key: str = "k1") -> dict[str, str]:
    """Apideck's documented scheme computed here, not by the exporter: base64 HMAC-SHA256, keyed
    with the API key, of the body with its keys sorted at every level."""
    canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    signature = base64.b64encode(
        hmac.new(running.key("apideck"), canonical, hashlib.sha256).digest()
    )
    return {"x-apideck-signature": signature.decode(), "x-apideck-idempotency-key": idempotency_key}


async def test_webhook_revocation_disabling_and_idempotency_keys(sim: Simulator) -> None:
    async with listening(sim, ["apideck"]) as running:
        revoked, disabled = await running.healthy("apideck", 2)
        # The key Apideck signs with is the account's API key.
        assert running.key("apideck").decode() == sim_account(sim, "apideck")["api_key"]
        body = apideck_webhook_body("vault.connection.revoked", revoked, state="callable")
        headers = apideck_signed(running, body)
        assert (await running.send("apideck", body, headers)).status_code == 200
        assert await running.health("apideck", revoked) == "relink_needed"
        bad = {**headers, "x-apideck-signature": base64.b64encode(b"x" * 32).decode()}
        assert (await running.send("apideck", body, bad)).status_code == 401
        assert await running.answers("apideck", "bad_signature") == 1
        # Without an event_id, the idempotency key identifies the event: a redelivery is
        # applied once.
        off = apideck_webhook_body("vault.connection.disabled", disabled, event_id=None)
        first = await running.send("apideck", off, apideck_signed(running, off, "k2"))
        again = await running.send("apideck", off, apideck_signed(running, off, "k2"))
        assert (first.json()["result"], again.json()["result"]) == ("accepted", "duplicate")
        assert await running.health("apideck", disabled) == "paused"
        # Unified-API data events change no connection: answered 200, nothing changes.
        before = await running.healths("apideck")
        data = json.dumps({"payload": {"event_type": "crm.contact.updated", "event_id": "d1"}})
        signed = apideck_signed(running, data.encode())
        assert (await running.send("apideck", data.encode(), signed)).status_code == 200
        assert await running.healths("apideck") == before
        assert await running.answers("apideck", "accepted") == 3


# --- What the simulator serves: endpoints against the published schemas, the curated fleet ---
# (tests/simulator/test_schemas.py checks SCHEMA_ENDPOINTS and OUT_OF_SPEC_MESSAGES for every
# vendor; the section imports what it uses itself, so that it stands apart from the quirks above)


def _next_cursor(body: Any) -> Any:
    return body.get("meta", {}).get("cursors", {}).get("next")


async def _crawl_catalog(crawler: simulated.Crawler) -> list[simulated.Page]:
    limit = {"limit": simulated.PAGE}
    return await crawler.cursor_pages(
        "apideck", "/connector/connectors", limit, "cursor", _next_cursor
    )


async def _crawl_consumers(crawler: simulated.Crawler) -> list[simulated.Page]:
    limit = {"limit": simulated.PAGE}
    return await crawler.cursor_pages("apideck", "/vault/consumers", limit, "cursor", _next_cursor)


async def _crawl_consumer_details(crawler: simulated.Crawler) -> list[simulated.Page]:
    """The detail of every consumer the listing names."""
    listing = await _crawl_consumers(crawler)
    ids = [c["consumer_id"] for _, body in listing for c in body["data"]]
    assert ids, "the consumer listing is empty"
    return [await crawler.get("apideck", f"/vault/consumers/{cid}", {}) for cid in ids]


SCHEMA_ENDPOINTS = (
    simulated.Endpoint(
        "GET /connector/connectors",
        "apideck_connector_connectors.json",
        _crawl_catalog,
        out_of_spec=True,
    ),
    simulated.Endpoint("GET /vault/consumers", "apideck_vault_consumers.json", _crawl_consumers),
    simulated.Endpoint(
        "GET /vault/consumers/{id}",
        "apideck_vault_consumer.json",
        _crawl_consumer_details,
        out_of_spec=True,
    ),
)
# Under the `out_of_spec` fault: statuses and states out of the enums, a health of null, an
# expiry in milliseconds where the schema has a date-time string.
OUT_OF_SPEC_MESSAGES = (
    "'sunset' is not one of",
    "'archived' is not one of",
    "None is not one of",
    "credentials_expire_at: 0 is not of type 'string', 'null'",
)


async def test_curated_fleet_has_every_new_signal(sim: Simulator) -> None:
    pages = await simulated.served(sim, SCHEMA_ENDPOINTS)
    connections = simulated.items(
        pages, "GET /vault/consumers/{id}", lambda b: b["data"]["connections"]
    )
    healthy_oauth = [
        c
        for c in connections
        if c["auth_type"] == "oauth2"
        and c["state"] == "callable"
        and c.get("health") == "ok"
        and c["enabled"]
    ]
    assert any(isinstance(c["credentials_expire_at"], str) for c in healthy_oauth)
    assert any(c.get("health") == "pending_confirmation" for c in connections)


# --- simulator options for benchmarks ---------------------------------------------------------
class _TimedCrawler(simulated.Crawler):
    """A crawler that keeps how long each request took."""

    def __init__(self, sim: Simulator, client: httpx.AsyncClient) -> None:
        super().__init__(sim, client)
        self.durations: list[float] = []

    async def get(self, vendor: str, path: str, params: Any) -> simulated.Page:
        started = time.monotonic()
        try:
            return await super().get(vendor, path, params)
        finally:
            self.durations.append(time.monotonic() - started)


async def test_simulator_latency_delays_each_request_not_the_server() -> None:
    sim = Simulator()
    sim.vendors["apideck"].latency_ms = 300
    await sim.start()
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            url = sim.url("apideck") + "/vault/consumers/acme"
            auth = simulated.Crawler(sim, client).headers("apideck")
            started = time.monotonic()
            assert (await client.get(url, headers=auth)).status_code == 200
            one = time.monotonic() - started
            started = time.monotonic()
            answers = await asyncio.gather(*(client.get(url, headers=auth) for _ in range(8)))
            eight = time.monotonic() - started
            # another vendor answers every request of a crawl without the delay
            other = next(v for v in sim.vendors if v != "apideck")
            timed = _TimedCrawler(sim, client)
            await simulated.vendor_tests(other).SCHEMA_ENDPOINTS[0].crawl(timed)
    finally:
        await sim.stop()
    assert one >= 0.3
    assert all(a.status_code == 200 for a in answers)
    # eight sequential waits would take 2.4 s: concurrent requests wait side by side
    assert 0.3 <= eight < 1.8
    assert timed.durations and max(timed.durations) < 0.3, timed.durations


async def test_simulator_generated_fleet_with_one_connection_per_consumer() -> None:
    sim = Simulator()
    vsim = sim.vendors["apideck"]
    assert isinstance(vsim, apideck_sim.ApideckSim)
    vsim.per_consumer = 1
    vsim.resize(450)
    await sim.start()
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            crawler = simulated.Crawler(sim, client)
            pages = await crawler.cursor_pages(
                "apideck",
                "/vault/consumers",
                {"limit": apideck_sim.MAX_LIMIT},
                "cursor",
                lambda b: b["meta"]["cursors"]["next"],
            )
            ids = [c["consumer_id"] for _, body in pages for c in body["data"]]
            _, detail = await crawler.get("apideck", f"/vault/consumers/{ids[-2]}", {})
    finally:
        await sim.stop()
    assert len(pages) == 3
    assert len(set(ids)) == len(ids) == 450 + len(apideck_sim.EMPTY_CONSUMERS)
    assert len(detail["data"]["connections"]) == 1


async def test_simulator_deletes_a_consumer_between_listing_and_detail(sim: Simulator) -> None:
    base = f"http://127.0.0.1:{sim.port}"
    sim.vendors["apideck"].fault = Fault(mode="consumer_deleted")
    async with httpx.AsyncClient(timeout=10, base_url=base) as client:
        auth = simulated.Crawler(sim, client).headers("apideck")
        listed = (await client.get("/apideck/vault/consumers", headers=auth)).json()["data"]
        ids = [c["consumer_id"] for c in listed]
        assert apideck_sim.DELETED_CONSUMER in ids
        gone = await client.get(
            f"/apideck/vault/consumers/{apideck_sim.DELETED_CONSUMER}", headers=auth
        )
        assert gone.status_code == 404
        assert gone.json()["type_name"] == "EntityNotFoundError"
        for cid in ids:
            if cid != apideck_sim.DELETED_CONSUMER:
                r = await client.get(f"/apideck/vault/consumers/{cid}", headers=auth)
                assert r.status_code == 200, cid
        assert (await client.delete("/_control/apideck/faults")).status_code == 204
        listed = (await client.get("/apideck/vault/consumers", headers=auth)).json()["data"]
    assert apideck_sim.DELETED_CONSUMER not in [c["consumer_id"] for c in listed]


async def test_simulator_consumer_deleted_once_lists_the_consumer_once(sim: Simulator) -> None:
    """With `count: 1` only the listing sees the consumer; its detail is then a plain 404."""
    sim.vendors["apideck"].fault = Fault(mode="consumer_deleted", count=1)
    async with httpx.AsyncClient(timeout=10) as client:
        _, body = await simulated.Crawler(sim, client).get("apideck", "/vault/consumers", {})
    listed = [c["consumer_id"] for c in body["data"]]
    assert listed.count(apideck_sim.DELETED_CONSUMER) == 1
    assert sim.vendors["apideck"].fault is None

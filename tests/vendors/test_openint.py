"""OpenInt: catalog and connection translation, offset paging, the simulator, golden exposition,
and `status_message` on the status page."""

from __future__ import annotations

import functools
import io
import json
from typing import Any

import httpx
import pytest
from aiohttp import web

from exporter import logs
from exporter.errors import BadResponse
from exporter.model import CatalogEntry, Connector, Health, PollResult
from exporter.simulator import Simulator
from exporter.simulator import openint as openint_sim
from exporter.simulator.base import Fault, VendorSim
from exporter.statuspage import landing_page
from exporter.vendors import openint
from tests.conftest import FIXED_NOW, account_runner, fixture_json, poll_once, render, sim_account
from tests.simulator import schemas as simulated
from tests.vendors.helpers import fixture_status, golden_text, polled, polled_alone, served
from tests.webhooks.harness import Running, WebhookSample, listening

SENTINEL = "SENTINEL-SECRET-3f9c1a"  # in every connection's `settings` in the fixtures


# --- what tests/vendors/test_contract.py expects of the fixtures ---------------------------
HEALTHS = {
    "conn_sf_acme": Health.HEALTHY,
    "conn_hs_acme": Health.HEALTHY,  # manual
    "conn_gh_globex": Health.RELINK_NEEDED,  # disconnected
    "conn_plaid_globex": Health.FAILING,  # error
    "conn_sf_initech": Health.UNKNOWN,  # unknown
    "conn_twenty_initech": Health.UNKNOWN,  # null
    "conn_hs_umbrella": Health.PAUSED,  # disabled wins over disconnected
    "conn_sf_umbrella": Health.UNKNOWN,  # a status the API does not document
    "conn_sparse": Health.UNKNOWN,
}
IDENTITIES = {
    "conn_gh_globex": ("greenhouse", "greenhouse", "ccfg_greenhouse_prod", "cus_globex"),
    "conn_sparse": ("", "", "", ""),
}
FIELDS: dict[str, dict[str, Any]] = {
    "conn_gh_globex": {"setup_state": "disconnected", "relink_needed": True},
    "conn_hs_umbrella": {"paused": True, "relink_needed": True},  # own field
    "conn_sf_umbrella": {"setup_state": "other"},
    "conn_twenty_initech": {"setup_state": None},
    "conn_hs_acme": {"setup_state": "manual"},
    "conn_sparse": {"paused": False},
}
# The catalog's stage as status (an unknown one `other`, none None); a missing name is the id.
CATALOG = {
    "salesforce": ("ga", "Salesforce", "OAUTH2"),
    "greenhouse": ("beta", "Greenhouse", "API_KEY"),
    "twenty": ("alpha", "Twenty", "API_KEY"),
    "acme-oauth2": ("other", "Acme OAuth2", "OAUTH2"),
    "legacy": (None, "legacy", "BASIC"),
}
GOLDEN_ACCOUNT = {"vendor": "openint", "name": "oi", "token": "t"}
CONTROL_CONNECTOR = "conn_sf_acme"
# Failing polls for the contract's secrets test, an HTML error page among them.
SECRET_FAULTS = tuple(
    Fault(mode=mode, status=503) for mode in ("error", "unauthorized", "html", "malformed")
)


def fixture_connectors() -> dict[str, Connector]:
    items, total = openint.parse_page(fixture_json("openint", "connections.json"))
    assert total == 11
    return {c.connector_id: c for c in openint.translate(items)}


def fixture_catalog() -> dict[str, CatalogEntry]:
    items, _ = openint.parse_page(fixture_json("openint", "connectors.json"))
    return {e.connector_id: e for e in openint.translate_catalog(items)}


def test_settings_are_never_carried() -> None:
    assert all(SENTINEL not in repr(c) for c in fixture_connectors().values())


@pytest.mark.parametrize(
    ("data", "total"),
    [
        ({"items": [], "total": 0}, 0),
        ({"items": []}, None),
        ({"items": [], "total": "7"}, None),
        ({"items": [], "total": True}, None),
        ({"items": [], "total": -1}, None),
    ],
)
def test_parse_page_total(data: dict[str, Any], total: int | None) -> None:
    assert openint.parse_page(data) == ([], total)


@pytest.mark.parametrize("data", [[], {"items": {"a": 1}}, None])
def test_parse_page_rejects_wrong_shapes(data: Any) -> None:
    with pytest.raises(BadResponse):
        openint.parse_page(data)


def pages_of(items: list[dict[str, Any]], total: int | None, served_limit: int) -> Any:
    calls: list[int] = []

    async def fetch(offset: int) -> tuple[list[Any], int | None]:
        calls.append(offset)
        return items[offset : offset + served_limit], total

    return fetch, calls


async def collect(fetch: Any, limit: int) -> list[Any]:
    return [item async for page in openint.offset_pages(fetch, limit) for item in page]


async def test_offset_pages_follow_total_even_when_the_server_caps_the_limit() -> None:
    items = [{"id": str(i)} for i in range(7)]
    fetch, calls = pages_of(items, 7, served_limit=3)  # asked for 1000, served 3
    assert await collect(fetch, 1000) == items
    assert calls == [0, 3, 6]


async def test_offset_pages_stop_on_an_empty_page_when_total_overcounts() -> None:
    items = [{"id": str(i)} for i in range(4)]
    fetch, calls = pages_of(items, 10, served_limit=2)
    assert await collect(fetch, 2) == items
    assert calls == [0, 2, 4]


async def test_offset_pages_without_total_stop_on_a_short_page() -> None:
    items = [{"id": str(i)} for i in range(5)]
    fetch, calls = pages_of(items, None, served_limit=2)
    assert await collect(fetch, 2) == items
    assert calls == [0, 2, 4]


async def test_offset_pages_detect_a_server_ignoring_offset() -> None:
    async def fetch(offset: int) -> tuple[list[Any], int | None]:
        return [{"id": "a"}, {"id": "b"}], 100

    with pytest.raises(BadResponse, match="returned before"):
        await collect(fetch, 2)


# --- golden exposition (tests/vendors/test_contract.py compares it with the file) ----------
def test_golden_catalog_status_and_no_timestamps_per_connector() -> None:
    text = golden_text("openint")
    assert 'connector_catalog_status{account="oi",connector_id="twenty",status="alpha"' in text
    assert not any("timestamp" in line and "connector_id" in line for line in text.splitlines())


# --- status_message: the vendor's reason, on the status page only --------------------------
def test_status_message_kept_for_non_healthy_connections_only() -> None:
    c = fixture_connectors()
    assert c["conn_gh_globex"].status_message == "Refresh token revoked"
    assert c["conn_plaid_globex"].status_message == "Upstream returned 500"
    assert c["conn_sf_acme"].status_message == ""  # "All good" on a healthy one: not kept
    hostile = c["conn_sf_initech"].status_message
    assert hostile.startswith("Token check failed: <b>re-auth</b> & retry xxx")
    assert len(hostile) == openint.MAX_STATUS_MESSAGE and hostile.endswith("…")
    assert not any(ch in hostile for ch in "\x1b\n\u202e")


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("plain", "plain"),
        ("two\nlines\r\n\tand  tabs", "two lines and tabs"),
        ("\x1b[1;31mred\x1b[0m text", "red text"),  # terminal colours from a log line
        ("a\u202eb\u200bc\x00d\x7f", "abcd"),  # bidi override, zero width, NUL, DEL
        ("x" * 301, "x" * 299 + "…"),
        (None, ""),
        (42, ""),
        ({"message": "nested"}, ""),
    ],
)
def test_status_message_sanitising(raw: Any, shown: str) -> None:
    assert openint.status_message(raw) == shown


def test_status_message_is_escaped_on_the_page_and_never_a_label() -> None:
    page = landing_page([fixture_status("openint")], FIXED_NOW + 60)
    assert "Refresh token revoked" in page and "Upstream returned 500" in page
    assert "&lt;b&gt;re-auth&lt;/b&gt; &amp; retry" in page and "<b>re-auth" not in page
    assert "All good" not in page
    assert "Refresh token revoked" not in golden_text("openint")  # /metrics never carries it


# --- the simulator over real sockets -------------------------------------------------------
poll = functools.partial(poll_once, vendor="openint")


async def test_polls_catalog_and_connections(sim: Simulator) -> None:
    _, snap = await polled(sim, "openint")
    assert {c.connector_id for c in snap.connectors} == set(sim.vendors["openint"].connectors)
    assert {e.connector_id for e in snap.catalog} == {e["name"] for e in openint_sim.CATALOG}
    assert {c.setup_state for c in snap.connectors} == {*openint.STATES.setup, None}
    assert {c.health for c in snap.connectors} == {
        Health.HEALTHY,
        Health.RELINK_NEEDED,
        Health.FAILING,
        Health.PAUSED,
        Health.UNKNOWN,
    }


async def test_wrong_has_next_page_is_ignored(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The simulator computes has_next_page with the documented (inverted) formula.
    async with httpx.AsyncClient() as client:
        r = await client.get(
            sim.url("openint") + "/connection",
            params={"limit": 3, "offset": 0},
            headers={"Authorization": f"Bearer {openint_sim.TOKEN}"},
        )
    first = r.json()
    assert first["has_next_page"] is False and first["total"] > 3
    monkeypatch.setattr(openint, "PAGE_SIZE", 3)
    runner, snap = await polled(sim, "openint", catalog=False)
    assert len(snap.connectors) == len(sim.vendors["openint"].connectors) == 8
    assert runner.api.stats.pages == 3  # 3 + 3 + 2


async def test_generated_fleet_over_several_pages() -> None:
    simulator = Simulator(sizes={"openint": 2345})
    runner, snap = await polled_alone(simulator, "openint", catalog=False)
    assert len(snap.connectors) == 2345
    assert runner.api.stats.requests == 3


async def test_401_fails_the_poll_with_the_vendor_message(sim: Simulator) -> None:
    ok, runner = await poll(sim, token="not-the-token-42")
    assert not ok
    assert runner.status.last_error.endswith("HTTP 401: Invalid API key or token")
    assert "not-the-token-42" not in runner.status.last_error


async def test_ignored_offset_stops_the_poll(sim: Simulator) -> None:
    sim.vendors["openint"].fault = Fault(mode="cursor_loop")
    runner = account_runner(sim_account(sim, "openint", catalog=False))
    original = openint.PAGE_SIZE
    openint.PAGE_SIZE = 2
    try:
        assert not await runner.poll()
    finally:
        openint.PAGE_SIZE = original
        await runner.aclose()
    assert "page it had returned before" in runner.status.last_error
    assert runner.status.requests == {"200": 2}


async def test_control_api_delete(sim: Simulator) -> None:
    # (setting each health through the control API is in tests/vendors/test_contract.py)
    base = f"http://127.0.0.1:{sim.port}/_control/openint/connectors"
    async with httpx.AsyncClient() as client:
        assert (await client.delete(f"{base}/conn_sf_acme")).status_code == 204
    _, snap = await polled(sim, "openint", catalog=False)
    assert "conn_sf_acme" not in {c.connector_id for c in snap.connectors}


async def test_status_message_from_the_simulator_reaches_the_page_escaped(sim: Simulator) -> None:
    cid = next(iter(sim.vendors["openint"].connectors))
    message = 'Refresh failed: <img src=x onerror="alert(1)">\n\x1b[31mretry\x1b[0m'
    base = f"http://127.0.0.1:{sim.port}/_control/openint/connectors"
    async with httpx.AsyncClient() as client:
        patch = {"status": "error", "disabled": False, "status_message": message}
        assert (await client.patch(f"{base}/{cid}", json=patch)).status_code == 200
    runner, _ = await polled(sim, "openint")
    page = landing_page([runner.status], FIXED_NOW)
    assert "Refresh failed: &lt;img src=x onerror=&quot;alert(1)&quot;&gt; retry" in page
    assert "<img" not in page and "\x1b" not in page
    assert "Refresh failed" not in render([runner.status])


# --- secrets (the sweep over faults is tests/vendors/test_contract.py's) ---------------------
async def test_a_vendor_echoing_the_token_is_redacted() -> None:
    token = "SENTINEL-openint-echo-0d2e"

    async def echo(request: web.Request) -> web.Response:
        message = f"token {request.headers.get('Authorization')} is not allowed"
        return web.json_response({"code": "FORBIDDEN", "message": message}, status=403)

    app = web.Application()
    app.router.add_get("/connector", echo)
    stream = io.StringIO()
    logs.configure("debug", "json", stream=stream)
    async with served(app) as url:
        account = {"vendor": "openint", "name": "a", "token": token, "base_url": url}
        runner = account_runner(account)
        assert not await runner.poll()
        await runner.aclose()
    assert "token [REDACTED] is not allowed" in runner.status.last_error  # the whole header
    assert token not in runner.status.last_error and token not in stream.getvalue()


# --- for the property tests over every vendor ---------------------------------------------
FUZZ_FIXTURES = ["connections.json", "connectors.json"]


def read_any(data: Any) -> PollResult:
    """How the adapter reads any body (for tests/reliability/test_properties.py)."""
    items, _ = openint.parse_page(data)
    return PollResult(tuple(openint.translate(items)), tuple(openint.translate_catalog(items)))


def plant_served_secret(sim: VendorSim, value: str) -> None:
    """Connection `settings` holding OAuth tokens, beside a status message (for the secrets
    tests: tests/reliability/test_secrets.py, tests/vendors/test_contract.py)."""
    for c in sim.connectors.values():
        c["settings"] = {"oauth": {"credentials": {"access_token": value}}}
        c["status_message"] = "ok"


# --- webhooks: OpenInt's events, and what the tests over every vendor need ----------------
# (Appended as one section while other sections of this file change in parallel; its imports
# stay here so that the section merges as a whole.)


# (connector, health) through the control API; the simulator pushes the connection events.
WEBHOOK_SIM_CHANGES = (("conn_sf_acme", "relink_needed"),)
# No signing scheme is documented: the shared secret proves the sender, the body is not signed
# (docs/webhooks.md says why that is weaker than an HMAC).
WEBHOOK_SIGNATURE_BINDS_BODY = False


def openint_webhook_body(event_id: str, data: dict[str, Any]) -> bytes:
    return json.dumps({"id": event_id, "name": "connection.updated", "data": data}).encode()


def webhook_event(connector_id: str, key: str = "1") -> WebhookSample:
    connection = {"id": connector_id, "status": "disconnected"}
    body = openint_webhook_body(f"evt-{connector_id}-{key}", {"connection": connection})
    return WebhookSample(body, "relink_needed")


def openint_bearer(running: Running) -> dict[str, str]:
    """The shared secret as a bearer token, written here rather than by the exporter."""
    return {"Authorization": f"Bearer {running.key('openint').decode()}"}


async def test_webhook_shared_secret_and_connection_fields(sim: Simulator) -> None:
    async with listening(sim, ["openint"]) as running:
        disconnected, failing, disabled = await running.healthy("openint", 3)
        body = openint_webhook_body(
            "evt-9", {"connection": {"id": disconnected, "status": "disconnected"}}
        )
        ok = openint_bearer(running)
        assert (await running.send("openint", body, ok)).status_code == 200
        assert await running.health("openint", disconnected) == "relink_needed"
        secret = running.key("openint").decode()
        for bad in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": secret}):
            assert (await running.send("openint", body, bad)).status_code == 401
        assert await running.answers("openint", "bad_signature") == 3
        # The connection object's fields replace the listed ones (`settings` never kept) ...
        errored = {"id": failing, "status": "error", "settings": {"token": "SENTINEL-hook"}}
        body = openint_webhook_body("evt-10", {"connection": errored})
        assert (await running.send("openint", body, ok)).status_code == 200
        assert await running.health("openint", failing) == "failing"
        assert "SENTINEL-hook" not in repr(running.runner("openint").adapter.raw)
        # ... or `data.connection_id` with the fields that changed.
        body = openint_webhook_body("evt-11", {"connection_id": disabled, "disabled": True})
        assert (await running.send("openint", body, ok)).status_code == 200
        assert await running.health("openint", disabled) == "paused"
        assert await running.answers("openint", "accepted") == 3


# --- What the simulator serves: endpoints against the published schemas, the curated fleet ---
# (tests/simulator/test_schemas.py checks SCHEMA_ENDPOINTS and OUT_OF_SPEC_MESSAGES for every
# vendor; the section imports what it uses itself, so that it stands apart from the quirks above)


def _crawl(path: str) -> simulated.Crawl:
    """Every page of a `limit`/`offset` listing, until an empty page (neither `total` nor
    `has_next_page` is trusted: the real server computes both oddly)."""

    async def crawl(crawler: simulated.Crawler) -> list[simulated.Page]:
        return await crawler.offset_pages("openint", path, lambda b: b.get("items"))

    return crawl


SCHEMA_ENDPOINTS = (
    simulated.Endpoint("GET /connector", "openint_connector.json", _crawl("/connector")),
    simulated.Endpoint(
        "GET /connection", "openint_connection.json", _crawl("/connection"), out_of_spec=True
    ),
)
# Under the `out_of_spec` fault: a status the published enum lacks.
OUT_OF_SPEC_MESSAGES = ("'expired' is not one of",)


async def test_curated_fleet_explains_what_is_not_healthy(sim: Simulator) -> None:
    pages = await simulated.served(sim, SCHEMA_ENDPOINTS)
    connections = simulated.items(pages, "GET /connection", lambda b: b["items"])
    unhealthy = [c for c in connections if c["status"] not in ("healthy", None)]
    assert any(c["status_message"] for c in unhealthy)
    assert all(c["status_message"] is None for c in connections if c["status"] == "healthy")


# --- ordering and totals, as in OpenInt's server code ---------------------------------------
async def test_simulator_lists_connections_newest_first(sim: Simulator) -> None:
    last = list(sim.vendors["openint"].connectors)[-1]
    async with httpx.AsyncClient(timeout=10) as client:
        r = await client.post(
            f"http://127.0.0.1:{sim.port}/_control/openint/connectors/{last}/health",
            json={"health": "failing"},
        )
        assert r.status_code == 200
    pages = await simulated.served(sim, SCHEMA_ENDPOINTS)
    connections = simulated.items(pages, "GET /connection", lambda b: b["items"])
    assert connections[0]["id"] == last
    stamps = [c["updated_at"] for c in connections]
    assert stamps == sorted(stamps, reverse=True)


async def test_simulator_connector_total_is_the_page_length(sim: Simulator) -> None:
    pages = await simulated.served(sim, SCHEMA_ENDPOINTS)
    catalog = pages["GET /connector"]
    assert len(catalog) > 2  # several pages of two, then an empty one
    assert all(body["total"] == len(body["items"]) for body in catalog)
    vsim = sim.vendors["openint"]
    assert isinstance(vsim, openint_sim.OpenintSim)
    assert sum(len(body["items"]) for body in catalog) == len(vsim.catalog)

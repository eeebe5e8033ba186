"""Curated fleets hold every signal of SPEC §6.1, and the simulator options benchmarks use."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx

from exporter.simulator import Simulator, apideck
from exporter.simulator.base import Fault
from tests.simulator.schemas import ENDPOINTS, Crawler, headers


async def served(sim: Simulator, vendor: str) -> dict[str, list[Any]]:
    """Every page of every endpoint of `vendor`, by endpoint name."""
    async with httpx.AsyncClient(timeout=10) as client:
        crawler = Crawler(sim, client)
        return {
            e.name: [body for _, body in await crawler.crawl(e)]
            for e in ENDPOINTS
            if e.vendor == vendor
        }


def items(pages: dict[str, list[Any]], endpoint: str, key: Any) -> list[dict[str, Any]]:
    return [item for body in pages[endpoint] for item in key(body)]


async def test_fivetran_curated_fleet_has_every_new_signal(sim: Simulator) -> None:
    pages = await served(sim, "fivetran")
    for endpoint in pages:
        connections = items(pages, endpoint, lambda b: b["data"]["items"])
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


async def test_bindbee_curated_fleet_has_every_new_signal(sim: Simulator) -> None:
    pages = await served(sim, "bindbee")
    hris = items(pages, "bindbee GET /api/hris/v1/connectors", lambda b: b["items"])
    others = items(pages, "bindbee GET /api/{ats,lms}/v1/connectors", lambda b: b["items"])
    assert any(c["is_test_connector"] is True for c in hris + others)
    assert any(isinstance(c.get("sync_progress"), int) for c in hris)
    # only the HRIS listing carries the HRIS fields
    assert not any("sync_progress" in c for c in others)


async def test_openint_curated_fleet_explains_what_is_not_healthy(sim: Simulator) -> None:
    pages = await served(sim, "openint")
    connections = items(pages, "openint GET /connection", lambda b: b["items"])
    unhealthy = [c for c in connections if c["status"] not in ("healthy", None)]
    assert any(c["status_message"] for c in unhealthy)
    assert all(c["status_message"] is None for c in connections if c["status"] == "healthy")


async def test_apideck_curated_fleet_has_every_new_signal(sim: Simulator) -> None:
    pages = await served(sim, "apideck")
    connections = items(
        pages, "apideck GET /vault/consumers/{id}", lambda b: b["data"]["connections"]
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


def credentials(pages: dict[str, list[Any]]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(auth-scheme config, credential) of every credential usage served."""
    for connector in items(pages, "versori GET /o/{org}/connectors", lambda b: b["connectors"]):
        for connection in connector["connections"]:
            for group in connection["credentials"].values():
                for use in group:
                    yield use["authSchemeConfig"], use["credential"]


async def test_versori_curated_fleet_has_every_new_signal(sim: Simulator) -> None:
    pages = await served(sim, "versori")
    creds = [cred for _, cred in credentials(pages)]
    assert any(cred.get("errors") for cred in creds)
    assert any(cred.get("errors") == [] for cred in creds)
    assert any("errors" not in cred for cred in creds)
    assert any("expiresAt" in cred for cred in creds)
    assert any("expiresAt" not in cred for cred in creds)
    severities = {
        m["severity"] for scheme, _ in credentials(pages) for m in scheme["validationMessages"]
    }
    assert severities == {"info", "warning", "error"}


# --- Apideck options for benchmarks ---------------------------------------------------------
async def test_apideck_latency_delays_each_request_not_the_server() -> None:
    sim = Simulator()
    sim.vendors["apideck"].latency_ms = 300
    await sim.start()
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            url = sim.url("apideck") + "/vault/consumers/acme"
            auth = headers(sim, "apideck")
            started = time.monotonic()
            assert (await client.get(url, headers=auth)).status_code == 200
            one = time.monotonic() - started
            started = time.monotonic()
            answers = await asyncio.gather(*(client.get(url, headers=auth) for _ in range(8)))
            eight = time.monotonic() - started
            # other vendors answer without the delay
            started = time.monotonic()
            response = await client.get(
                sim.url("openint") + "/connection", headers=headers(sim, "openint")
            )
            other = time.monotonic() - started
    finally:
        await sim.stop()
    assert one >= 0.3
    assert all(a.status_code == 200 for a in answers)
    # eight sequential waits would take 2.4 s: concurrent requests wait side by side
    assert 0.3 <= eight < 1.8
    assert response.status_code == 200 and other < 0.3


async def test_apideck_generated_fleet_with_one_connection_per_consumer() -> None:
    sim = Simulator()
    vsim = sim.vendors["apideck"]
    assert isinstance(vsim, apideck.ApideckSim)
    vsim.per_consumer = 1
    vsim.resize(450)
    await sim.start()
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            crawler = Crawler(sim, client)
            pages = await crawler.cursor_pages(
                "apideck",
                "/vault/consumers",
                {"limit": apideck.MAX_LIMIT},
                "cursor",
                lambda b: b["meta"]["cursors"]["next"],
            )
            ids = [c["consumer_id"] for _, body in pages for c in body["data"]]
            _, detail = await crawler.get("apideck", f"/vault/consumers/{ids[-2]}", {})
    finally:
        await sim.stop()
    assert len(pages) == 3
    assert len(set(ids)) == len(ids) == 450 + len(apideck.EMPTY_CONSUMERS)
    assert len(detail["data"]["connections"]) == 1


async def test_apideck_consumer_deleted_between_listing_and_detail(sim: Simulator) -> None:
    base = f"http://127.0.0.1:{sim.port}"
    auth = headers(sim, "apideck")
    sim.vendors["apideck"].fault = Fault(mode="consumer_deleted")
    async with httpx.AsyncClient(timeout=10, base_url=base) as client:
        listed = (await client.get("/apideck/vault/consumers", headers=auth)).json()["data"]
        ids = [c["consumer_id"] for c in listed]
        assert apideck.DELETED_CONSUMER in ids
        gone = await client.get(
            f"/apideck/vault/consumers/{apideck.DELETED_CONSUMER}", headers=auth
        )
        assert gone.status_code == 404
        assert gone.json()["type_name"] == "EntityNotFoundError"
        for cid in ids:
            if cid != apideck.DELETED_CONSUMER:
                r = await client.get(f"/apideck/vault/consumers/{cid}", headers=auth)
                assert r.status_code == 200, cid
        assert (await client.delete("/_control/apideck/faults")).status_code == 204
        listed = (await client.get("/apideck/vault/consumers", headers=auth)).json()["data"]
    assert apideck.DELETED_CONSUMER not in [c["consumer_id"] for c in listed]


async def test_consumer_deleted_once_lists_the_consumer_once(sim: Simulator) -> None:
    """With `count: 1` only the listing sees the consumer; its detail is then a plain 404."""
    sim.vendors["apideck"].fault = Fault(mode="consumer_deleted", count=1)
    pages = await served_listing(sim)
    assert pages.count(apideck.DELETED_CONSUMER) == 1
    assert sim.vendors["apideck"].fault is None


async def served_listing(sim: Simulator) -> list[str]:
    async with httpx.AsyncClient(timeout=10) as client:
        url = sim.url("apideck") + "/vault/consumers"
        body = (await client.get(url, headers=headers(sim, "apideck"))).json()
    return [c["consumer_id"] for c in body["data"]]


# --- OpenInt ordering and totals, as in its server code ------------------------------------
async def test_openint_lists_connections_newest_first(sim: Simulator) -> None:
    last = list(sim.vendors["openint"].connectors)[-1]
    async with httpx.AsyncClient(timeout=10) as client:
        r = await client.post(
            f"http://127.0.0.1:{sim.port}/_control/openint/connectors/{last}/health",
            json={"health": "failing"},
        )
        assert r.status_code == 200
    pages = await served(sim, "openint")
    connections = items(pages, "openint GET /connection", lambda b: b["items"])
    assert connections[0]["id"] == last
    stamps = [c["updated_at"] for c in connections]
    assert stamps == sorted(stamps, reverse=True)


async def test_openint_connector_total_is_the_page_length(sim: Simulator) -> None:
    pages = await served(sim, "openint")
    catalog = pages["openint GET /connector"]
    assert len(catalog) > 2  # several pages of two, then an empty one
    assert all(body["total"] == len(body["items"]) for body in catalog)
    assert sum(len(body["items"]) for body in catalog) == len(sim.vendors["openint"].catalog)  # type: ignore[attr-defined]

"""Polling against the real simulators over sockets: pagination, retries, faults, snapshots."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from exporter.model import Health
from exporter.scheduler import Scheduler
from exporter.simulator import Simulator
from tests.conftest import make_config, render, runner_for, sim_account


async def control(sim: Simulator, method: str, path: str, body: Any = None) -> httpx.Response:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{sim.port}") as client:
        response = await client.request(method, f"/_control{path}", json=body)
        response.raise_for_status()
        return response


def series(text: str, prefix: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(prefix)]


async def test_fivetran_pagination_is_complete_with_minimum_requests() -> None:
    sim = Simulator(sizes={"fivetran": 2345})
    await sim.start()
    try:
        runner = runner_for(make_config([sim_account(sim, "fivetran")]))
        assert await runner.poll()
        snap = runner.status.snapshot
        assert snap is not None and len(snap.connectors) == 2345
        assert len({c.connector_id for c in snap.connectors}) == 2345
        # 1000 per page: exactly three requests, each answered 200
        assert runner.api.stats.pages == 3 and runner.api.stats.requests == 3
        assert runner.status.requests == {"200": 3}
        await runner.aclose()
    finally:
        await sim.stop()


async def test_simulator_honours_small_page_sizes(sim: Simulator) -> None:
    """The fake follows the seed: `limit` / `page_size` bound each page, cursors chain them."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{sim.port}") as client:
        seen: list[str] = []
        cursor = None
        for _ in range(20):
            params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
            page = (
                await client.get(
                    "/fivetran/v1/connections", params=params, auth=("sim-key", "sim-secret")
                )
            ).json()["data"]
            assert len(page["items"]) <= 2
            seen += [i["id"] for i in page["items"]]
            cursor = page.get("next_cursor")
            if not cursor:
                break
        assert seen == list(sim.vendors["fivetran"].connectors)
        bad = await client.get(
            "/fivetran/v1/connections", params={"limit": 5000}, auth=("sim-key", "sim-secret")
        )
        assert bad.status_code == 400
        headers = {"Authorization": "Bearer sim-token"}
        page = (
            await client.get("/bindbee/api/hris/v1/connectors?page_size=2", headers=headers)
        ).json()
        assert page["page_size"] == 2 and page["cursor"]
        too_big = await client.get("/bindbee/api/hris/v1/connectors?page_size=201", headers=headers)
        assert too_big.status_code == 422


async def test_bindbee_pages_every_category(sim: Simulator) -> None:
    sim.vendors["bindbee"].resize(450)
    runner = runner_for(make_config([sim_account(sim, "bindbee")]))
    assert await runner.poll()
    snap = runner.status.snapshot
    assert snap is not None and len(snap.connectors) == 450
    assert {c.group for c in snap.connectors} == {"hris", "ats", "lms"}
    # 150 per category fit in one page of 200 each
    assert runner.api.stats.requests == 3
    await runner.aclose()


async def test_legacy_connectors_endpoint_with_nextcursor() -> None:
    sim = Simulator(sizes={"fivetran": 1500})
    await sim.start()
    try:
        config = make_config([sim_account(sim, "fivetran", endpoint="connectors")])
        runner = runner_for(config)
        assert await runner.poll()
        assert runner.status.snapshot is not None and len(runner.status.snapshot.connectors) == 1500
        assert runner.api.stats.requests == 2
        await runner.aclose()
    finally:
        await sim.stop()


async def test_401_fails_the_poll_with_the_vendor_message(sim: Simulator) -> None:
    runner = runner_for(make_config([sim_account(sim, "fivetran", api_secret="wrong")]))
    assert not await runner.poll()
    status = runner.status
    assert status.last_ok is False and status.failures_total == 1 and status.snapshot is None
    assert status.last_error == (
        "GET /v1/connections: HTTP 401: Missing or invalid API key or secret"
    )
    assert status.requests == {"401": 1}  # not retried
    text = render([status])
    assert 'connector_exporter_poll_success{account="demo",vendor="fivetran"} 0.0' in text
    assert series(text, "connector_info{") == []
    await runner.aclose()


async def test_429_with_retry_after_then_success(sim: Simulator) -> None:
    await control(
        sim, "POST", "/fivetran/faults", {"mode": "rate_limit", "count": 1, "retry_after": "1"}
    )
    runner = runner_for(make_config([sim_account(sim, "fivetran")], max_retries=2))
    started = time.monotonic()
    assert await runner.poll()
    assert time.monotonic() - started >= 0.95  # Retry-After: 1 was honoured
    assert runner.status.requests == {"429": 1, "200": 1}
    text = render([runner.status])
    assert (
        'connector_exporter_api_requests_total{account="demo",code="429",vendor="fivetran"} 1.0'
        in text
    )
    await runner.aclose()


async def test_500_keeps_last_good_snapshot_and_sets_poll_success_0(sim: Simulator) -> None:
    runner = runner_for(make_config([sim_account(sim, "fivetran")], max_retries=1))
    assert await runner.poll()
    good = runner.status.snapshot
    await control(sim, "POST", "/fivetran/faults", {"mode": "error", "status": 503})
    assert not await runner.poll()
    assert runner.status.snapshot is good
    assert runner.status.requests["503"] == 2  # one try plus one retry
    assert runner.status.last_error.startswith("GET /v1/connections: HTTP 503")
    text = render([runner.status])
    assert 'connector_exporter_poll_success{account="demo",vendor="fivetran"} 0.0' in text
    assert 'connector_exporter_poll_failures_total{account="demo",vendor="fivetran"} 1.0' in text
    assert 'connector_exporter_polls_total{account="demo",vendor="fivetran"} 2.0' in text
    served = len(sim.vendors["fivetran"].connectors)
    assert len(series(text, "connector_info{")) == served  # the last good series stay
    await control(sim, "DELETE", "/fivetran/faults")
    assert await runner.poll()
    assert 'poll_success{account="demo",vendor="fivetran"} 1.0' in render([runner.status])
    await runner.aclose()


async def test_malformed_and_html_bodies_fail_as_bad_response(sim: Simulator) -> None:
    runner = runner_for(make_config([sim_account(sim, "bindbee")]))
    for mode, ctype in (("malformed", "application/json"), ("html", "text/html")):
        await control(sim, "POST", "/bindbee/faults", {"mode": mode, "count": 1})
        assert not await runner.poll()
        assert "body is not valid JSON" in runner.status.last_error
        assert ctype in runner.status.last_error
    assert await runner.poll()
    await runner.aclose()


async def test_vanished_connector_series_disappear(sim: Simulator) -> None:
    runner = runner_for(make_config([sim_account(sim, "fivetran")]))
    assert await runner.poll()
    assert 'connector_id="ft_legacy"' in render([runner.status])
    await control(sim, "DELETE", "/fivetran/connectors/ft_legacy")
    assert await runner.poll()
    text = render([runner.status])
    assert 'connector_id="ft_legacy"' not in text
    left = float(len(sim.vendors["fivetran"].connectors))
    assert f'connector_exporter_connectors{{account="demo",vendor="fivetran"}} {left}' in text
    await runner.aclose()


async def test_state_change_reaches_the_snapshot(sim: Simulator) -> None:
    runner = runner_for(make_config([sim_account(sim, "fivetran")]))
    assert await runner.poll()
    await control(sim, "POST", "/fivetran/connectors/ft_orders/health", {"health": "broken"})
    assert await runner.poll()
    snap = runner.status.snapshot
    assert snap is not None
    orders = next(c for c in snap.connectors if c.connector_id == "ft_orders")
    assert orders.health is Health.BROKEN and orders.setup_state == "broken"
    await runner.aclose()


async def test_repeated_cursor_stops_the_poll(sim: Simulator) -> None:
    sim.vendors["fivetran"].resize(2500)
    await control(sim, "POST", "/fivetran/faults", {"mode": "cursor_loop"})
    runner = runner_for(make_config([sim_account(sim, "fivetran")]))
    assert not await runner.poll()
    assert runner.status.last_error == "pagination returned a cursor it had returned before"
    assert runner.api.stats.requests <= 3
    await runner.aclose()


async def test_request_and_poll_timeouts(sim: Simulator) -> None:
    await control(sim, "POST", "/bindbee/faults", {"mode": "slow", "delay": 3})
    runner = runner_for(make_config([sim_account(sim, "bindbee")], request_timeout="0.3s"))
    assert not await runner.poll()
    assert runner.status.requests == {"timeout": 1}
    assert runner.status.last_error == "GET /api/hris/v1/connectors: timed out"

    slow_poll = runner_for(
        make_config([sim_account(sim, "bindbee")], request_timeout="10s", poll_timeout="0.5s")
    )
    started = time.monotonic()
    assert not await slow_poll.poll()
    assert time.monotonic() - started < 2
    assert slow_poll.status.last_error == "poll did not finish within 0.5s"
    await runner.aclose()
    await slow_poll.aclose()


async def test_include_exclude_filters_by_name(sim: Simulator) -> None:
    account = sim_account(sim, "fivetran", include=["^(orders|crm|legacy)$"], exclude=["legacy"])
    runner = runner_for(make_config([account]))
    assert await runner.poll()
    assert runner.status.snapshot is not None
    assert [c.name for c in runner.status.snapshot.connectors] == ["crm", "orders"]
    await runner.aclose()


async def test_scheduler_never_overlaps_polls_of_one_account(sim: Simulator) -> None:
    """Interval 0.2s, each poll takes ~1s: the next run waits instead of overlapping."""
    await control(sim, "POST", "/fivetran/faults", {"mode": "slow", "delay": 1.0})
    config = make_config([sim_account(sim, "fivetran", poll_interval="0.2s")])
    scheduler = Scheduler(config, config.accounts[:1])
    scheduler.start()
    try:
        deadline = time.monotonic() + 10
        while scheduler.statuses()[0].polls_total < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    finally:
        await scheduler.shutdown()
    assert scheduler.statuses()[0].polls_total >= 2
    assert sim.vendors["fivetran"].max_in_flight == 1


async def test_scheduler_first_poll_at_start_and_ready(sim: Simulator) -> None:
    config = make_config(
        [sim_account(sim, "fivetran", poll_interval="1h"), sim_account(sim, "bindbee", token="bad")]
    )
    scheduler = Scheduler(config, config.accounts)
    assert not scheduler.ready()
    scheduler.start()
    try:
        deadline = time.monotonic() + 10
        while not scheduler.ready() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        # ready means "every account finished its first poll", failed ones included
        assert scheduler.ready()
        assert [s.last_ok for s in scheduler.statuses()] == [True, False]
        assert all(s.next_poll and s.next_poll > time.time() for s in scheduler.statuses())
    finally:
        await scheduler.shutdown()
    assert not scheduler.running


async def test_shutdown_cancels_in_flight_polls_quickly(sim: Simulator) -> None:
    await control(sim, "POST", "/fivetran/faults", {"mode": "slow", "delay": 30})
    config = make_config([sim_account(sim, "fivetran")], request_timeout="60s", poll_timeout="60s")
    scheduler = Scheduler(config, config.accounts[:1])
    scheduler.start()
    deadline = time.monotonic() + 5
    while sim.vendors["fivetran"].in_flight == 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert sim.vendors["fivetran"].in_flight == 1
    started = time.monotonic()
    await scheduler.shutdown()
    assert time.monotonic() - started < 3

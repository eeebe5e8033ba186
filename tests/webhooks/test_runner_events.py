"""Events and polls on one account's runner: replays over a poll in flight, bounded telemetry."""

from __future__ import annotations

import asyncio
import time

from exporter.model import Health
from exporter.simulator import Simulator
from exporter.simulator.base import Fault
from exporter.vendors.events import Event
from tests.conftest import make_config, runner_for, sim_account


def health(runner_status_published: object, connector_id: str) -> Health:
    snapshot = runner_status_published.snapshot  # type: ignore[attr-defined]
    (found,) = [c for c in snapshot.connectors if c.connector_id == connector_id]
    return found.health  # type: ignore[no-any-return]


async def test_an_event_during_a_poll_survives_that_poll_then_the_next_poll_rules(
    sim: Simulator,
) -> None:
    ft = sim.vendors["fivetran"]
    ft.set_health(ft.connectors["ft_orders"], "healthy", time.time())
    runner = runner_for(make_config([sim_account(sim, "fivetran", webhook_secret="k")]))
    assert await runner.poll()
    assert health(runner.status.published, "ft_orders") is Health.HEALTHY

    # The next poll's page is served late: the event arrives while the poll is in flight.
    ft.fault = Fault(mode="slow", count=1, delay=1.0)
    polling = asyncio.create_task(runner.poll())
    deadline = time.monotonic() + 5
    while ft.in_flight == 0:
        assert time.monotonic() < deadline, "the poll did not start"
        await asyncio.sleep(0.01)
    broken = Event("e1", "ft_orders", "connection_failure", {"status": {"setup_state": "broken"}})
    assert await runner.deliver([broken], time.time())
    assert health(runner.status.published, "ft_orders") is Health.BROKEN
    assert await polling
    # The poll's page predates the event: the event is applied again on top of it.
    assert health(runner.status.published, "ft_orders") is Health.BROKEN
    # A poll with no event since is the truth.
    assert await runner.poll()
    assert health(runner.status.published, "ft_orders") is Health.HEALTHY
    await runner.aclose()


async def test_telemetry_of_a_vanished_connector_is_dropped(sim: Simulator) -> None:
    runner = runner_for(make_config([sim_account(sim, "fivetran", webhook_secret="k")]))
    assert await runner.poll()
    ended = Event("e2", "ft_crm", "sync_end", {}, sync_end=time.time(), sync_result="success")
    unknown = Event("e3", "ft_nope", "sync_end", {}, sync_end=time.time(), sync_result="failure")
    assert await runner.deliver([ended, unknown], time.time())
    assert set(runner.status.telemetry) == {"ft_crm"}  # never for a connector not listed
    (crm,) = [c for c in runner.status.published.snapshot.connectors if c.connector_id == "ft_crm"]  # type: ignore[union-attr]
    assert crm.syncs == (("success", 1),)
    del sim.vendors["fivetran"].connectors["ft_crm"]
    assert await runner.poll()
    assert runner.status.telemetry == {}
    assert "ft_crm" not in runner.adapter.raw
    await runner.aclose()


async def test_accounts_without_webhooks_keep_no_vendor_objects(sim: Simulator) -> None:
    runner = runner_for(make_config([sim_account(sim, "fivetran")]))
    assert await runner.poll()
    assert runner.adapter.raw == {}
    await runner.aclose()

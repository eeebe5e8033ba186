"""The simulators' signed webhooks reach the real daemon and change /metrics with no poll."""

from __future__ import annotations

import asyncio
import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from exporter.config import Config
from exporter.daemon import Daemon
from exporter.simulator import Simulator

SECRET = "sim-test-webhook-secret"
# (vendor, connector the control API changes, new health, health /metrics must then show)
CHANGES = (
    ("fivetran", "ft_orders", "broken", "broken"),
    ("fivetran", "ft_orders", "healthy", "healthy"),
    ("fivetran", "ft_crm", "failing", "failing"),
    ("fivetran", "ft_legacy", "healthy", "healthy"),  # resume_connector first
    ("bindbee", None, "failing", "failing"),
    ("openint", None, "relink_needed", "relink_needed"),
    ("apideck", None, "relink_needed", "relink_needed"),
    ("apideck", None, "paused", "paused"),
)


async def health_of(client: httpx.AsyncClient, url: str, vendor: str, cid: str) -> str | None:
    for family in text_string_to_metric_families((await client.get(url)).text):
        for s in family.samples:
            if (
                s.name == "connector_health"
                and s.value == 1.0
                and s.labels["vendor"] == vendor
                and s.labels["connector_id"] == cid
            ):
                return s.labels["health"]
    return None


async def test_every_change_arrives_by_webhook_within_moments(sim: Simulator) -> None:
    config = Config.model_validate(
        {
            "listen_address": "127.0.0.1:0",
            "poll_interval": "1h",
            "max_retries": 0,
            "accounts": sim.accounts(webhook_secret=SECRET),
            "webhooks": {"listen_address": "127.0.0.1:0"},
        }
    )
    daemon = Daemon(config)
    await daemon.start()
    try:
        deadline = time.monotonic() + 20
        while not daemon.scheduler.ready():
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        sim.add_webhooks(f"http://127.0.0.1:{daemon.webhook_port}/webhooks", SECRET)
        polls = sum(r.status.polls_total for r in daemon.scheduler.runners.values())
        metrics = f"http://127.0.0.1:{daemon.port}/metrics"
        control = f"http://127.0.0.1:{sim.port}/_control"
        latencies = []
        async with httpx.AsyncClient(timeout=10) as client:
            for vendor, wanted, health, shown in CHANGES:
                vsim = sim.vendors[vendor]
                cid = wanted or _first_enabled(vsim.connectors)
                changed_at = time.monotonic()
                response = await client.post(
                    f"{control}/{vendor}/connectors/{cid}/health", json={"health": health}
                )
                response.raise_for_status()
                while (seen := await health_of(client, metrics, vendor, cid)) != shown:
                    # typically ~50 ms; the bound leaves room for a loaded CI machine
                    assert time.monotonic() - changed_at < 2.0, (vendor, cid, health, seen)
                    await asyncio.sleep(0.01)
                latencies.append(time.monotonic() - changed_at)
            deliveries = [d for v in sim.vendors.values() for d in v.webhooks.results]
            assert deliveries and all(status == 200 for _, status in deliveries), deliveries
            listed = (await client.get(f"{control}/fivetran/webhooks")).json()
            assert SECRET not in str(listed)
        assert sum(r.status.polls_total for r in daemon.scheduler.runners.values()) == polls
        millis = [round(x * 1000) for x in latencies]
        print(f"\nhealth change -> /metrics via webhook (ms): {millis}")
    finally:
        await daemon.stop()


def _first_enabled(connectors: dict[str, dict[str, object]]) -> str:
    """A connector the change below is visible on (not already paused or disabled)."""
    for key, c in connectors.items():
        if c.get("enabled", True) and c.get("is_active", True) and not c.get("disabled"):
            return key
    raise AssertionError("no enabled connector")

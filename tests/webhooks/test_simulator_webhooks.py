"""The simulators' signed webhooks reach the real daemon and change /metrics with no poll.

Every registered vendor with webhooks takes part; which control-API changes to make comes from
its quirk module's `WEBHOOK_SIM_CHANGES` (tests/webhooks/harness.py).
"""

from __future__ import annotations

import asyncio
import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from exporter.config import Config
from exporter.daemon import Daemon
from exporter.simulator import Simulator
from tests.webhooks.harness import WEBHOOK_VENDORS, quirks

SECRET = "sim-test-webhook-secret"


def changes() -> list[tuple[str, str | None, str]]:
    """(vendor, connector or None for the simulator's first, new health), vendor by vendor."""
    return [
        (vendor, cid, health)
        for vendor in WEBHOOK_VENDORS
        for cid, health in quirks(vendor).WEBHOOK_SIM_CHANGES
    ]


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


def test_every_vendor_with_webhooks_has_changes_to_push() -> None:
    for vendor in WEBHOOK_VENDORS:
        assert quirks(vendor).WEBHOOK_SIM_CHANGES, vendor


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
            for vendor, wanted, health in changes():
                vsim = sim.vendors[vendor]
                cid = wanted or next(iter(vsim.connectors))
                changed_at = time.monotonic()
                response = await client.post(
                    f"{control}/{vendor}/connectors/{cid}/health", json={"health": health}
                )
                response.raise_for_status()
                while (seen := await health_of(client, metrics, vendor, cid)) != health:
                    # typically ~50 ms; the bound leaves room for a loaded CI machine
                    assert time.monotonic() - changed_at < 2.0, (vendor, cid, health, seen)
                    await asyncio.sleep(0.01)
                latencies.append(time.monotonic() - changed_at)
            for vendor in WEBHOOK_VENDORS:
                deliveries = sim.vendors[vendor].webhooks.results
                assert deliveries, f"{vendor} sent no webhook"
                assert all(status == 200 for _, status in deliveries), (vendor, deliveries)
                listed = str((await client.get(f"{control}/{vendor}/webhooks")).json())
                assert SECRET not in listed
                assert sim.vendors[vendor].webhook_key(SECRET) not in listed
        assert sum(r.status.polls_total for r in daemon.scheduler.runners.values()) == polls
        millis = [round(x * 1000) for x in latencies]
        print(f"\nhealth change -> /metrics via webhook (ms): {millis}")
    finally:
        await daemon.stop()

"""The obvious implementation, for comparison: prometheus-client Gauge objects with labels,
set from the same translated connectors, served by prometheus-client's own aiohttp handler
(`generate_latest` on every scrape, aiohttp's gzip)."""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Sequence

from aiohttp import web
from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.aiohttp import make_aiohttp_handler

from exporter.model import OTHER, Connector, Health, StateSets
from exporter.vendors import fivetran

IDS = ["vendor", "account", "connector_id"]


class BaselineMetrics:
    """Every per-connector family of SPEC §5 as labelled Gauge objects."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.info = Gauge(
            "connector_info",
            "identity",
            [*IDS, "name", "integration", "group", "end_user"],
            registry=r,
        )
        self.health = Gauge("connector_health", "health", [*IDS, "health"], registry=r)
        self.states = {
            attr: Gauge(f"connector_{attr}", attr, [*IDS, "state"], registry=r)
            for attr in ("setup_state", "sync_state", "update_state")
        }
        self.paused = Gauge("connector_paused", "paused", IDS, registry=r)
        self.relink = Gauge("connector_relink_needed", "relink", IDS, registry=r)
        self.numbers = {
            attr: Gauge(name, attr, IDS, registry=r)
            for attr, name in (
                ("last_success", "connector_last_success_timestamp_seconds"),
                ("last_failure", "connector_last_failure_timestamp_seconds"),
                ("next_sync", "connector_next_sync_timestamp_seconds"),
                ("sync_frequency", "connector_sync_frequency_seconds"),
                ("warnings", "connector_warnings"),
                ("tasks", "connector_tasks"),
            )
        }
        self.ages = {
            "last_success": Gauge("connector_last_success_age_seconds", "age", IDS, registry=r),
            "last_failure": Gauge("connector_last_failure_age_seconds", "age", IDS, registry=r),
        }
        self.connectors: Sequence[Connector] = ()
        self.account = ""

    def rebuild(self, account: str, connectors: Sequence[Connector], states: StateSets) -> None:
        """What a poll does the obvious way: clear every Gauge, set every series again."""
        for gauge in (
            self.info,
            self.health,
            self.paused,
            self.relink,
            *self.states.values(),
            *self.numbers.values(),
            *self.ages.values(),
        ):
            gauge.clear()
        known = {
            "setup_state": (*states.setup, OTHER),
            "sync_state": (*states.sync, OTHER),
            "update_state": (*states.update, OTHER),
        }
        for c in connectors:
            ids = ("fivetran", account, c.connector_id)
            self.info.labels(*ids, c.name, c.integration, c.group, c.end_user).set(1)
            for h in Health:
                self.health.labels(*ids, h.value).set(1 if h is c.health else 0)
            for attr, gauge in self.states.items():
                value = getattr(c, attr)
                if value is not None:
                    for state in known[attr]:
                        gauge.labels(*ids, state).set(1 if state == value else 0)
            self.paused.labels(*ids).set(1 if c.paused else 0)
            self.relink.labels(*ids).set(1 if c.relink_needed else 0)
            for attr, gauge in self.numbers.items():
                value = getattr(c, attr)
                if value is not None:
                    gauge.labels(*ids).set(value)
        self.connectors = connectors
        self.account = account

    def set_ages(self, now: float) -> None:
        """Ages the obvious way: set every age Gauge right before the scrape."""
        for c in self.connectors:
            ids = ("fivetran", self.account, c.connector_id)
            for attr, gauge in self.ages.items():
                ts = getattr(c, attr)
                if ts is not None:
                    gauge.labels(*ids).set(max(0.0, now - ts))


async def serve(port: int, size: int) -> None:
    from exporter.simulator.fivetran import generated

    metrics = BaselineMetrics()
    metrics.rebuild("bench", fivetran.translate(generated(time.time(), size)), fivetran.STATES)
    handler = make_aiohttp_handler(metrics.registry)

    async def scrape(request: web.Request) -> web.StreamResponse:
        metrics.set_ages(time.time())
        return await handler(request)

    app = web.Application()
    app.router.add_get("/metrics", scrape)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--size", type=int, required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.size))

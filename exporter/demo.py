"""`connector-exporter demo`: the simulators, the daemon against them, and a fleet that moves."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from typing import Any

import structlog

from exporter.config import Config
from exporter.daemon import Daemon
from exporter.simulator import SPECS, Simulator

log = structlog.get_logger("exporter.demo")

DEMO_POLL_INTERVAL = "10s"
STORY_STEP_SECONDS = 30.0


def story() -> list[tuple[str, str, str, str]]:
    """What happens to the demo fleet, one step every STORY_STEP_SECONDS, then round again:
    each vendor's story (its simulator module's STORY) interleaved, one vendor after another.
    """
    steps: list[tuple[str, str, str, str]] = []
    longest = max(len(spec.story) for spec in SPECS.values())
    for i in range(longest):
        for vendor, spec in SPECS.items():
            if i < len(spec.story):
                steps.append((vendor, *spec.story[i]))
    return steps


async def play_story(
    sim: Simulator, step: float = STORY_STEP_SECONDS, clock: Callable[[], float] = time.time
) -> None:
    """Walk the fleet through STORY forever, so that /metrics visibly moves."""
    while True:
        for vendor, key, value, health in story():
            await asyncio.sleep(step)
            vsim = sim.vendors[vendor]
            for connector in vsim.connectors.values():
                if connector.get(key) == value:
                    vsim.change_health(connector, health, clock())
                    log.info("demo_story", vendor=vendor, connector=value, health=health)
                    break


def demo_config(sim: Simulator, listen_address: str, webhook_secret: str | None = None) -> Config:
    raw: dict[str, Any] = {
        "listen_address": listen_address,
        "poll_interval": DEMO_POLL_INTERVAL,
        "accounts": sim.accounts(webhook_secret=webhook_secret),
    }
    if webhook_secret is not None:
        # Any free local port: the simulators are told where it is once it is bound.
        raw["webhooks"] = {"listen_address": "127.0.0.1:0"}
    return Config.model_validate(raw)


async def run_demo(listen_address: str, print_: Callable[[str], None] = print) -> None:
    sim = Simulator()
    await sim.start()
    webhook_secret = secrets.token_urlsafe(24)
    daemon = Daemon(demo_config(sim, listen_address, webhook_secret))
    story = asyncio.create_task(play_story(sim))
    stop = asyncio.Event()
    serve = asyncio.create_task(daemon.serve(stop))
    try:
        for _ in range(100):
            if (daemon.port and daemon.webhook_port) or serve.done():
                break
            await asyncio.sleep(0.05)
        if serve.done():
            await serve  # re-raises why the daemon could not start
        # Breaks then reach /metrics within a second through signed webhooks, as in production;
        # the polls every DEMO_POLL_INTERVAL stay the reconciler.
        sim.add_webhooks(f"http://127.0.0.1:{daemon.webhook_port}/webhooks", webhook_secret)
        base = f"http://localhost:{daemon.port}"
        print_(
            "\nconnector-exporter demo is running (Ctrl-C to stop)\n"
            f"  status page:  {base}/\n"
            f"  metrics:      {base}/metrics\n"
            f"  simulators:   http://127.0.0.1:{sim.port}/<vendor>  "
            f"(vendors: {', '.join(sim.vendors)})\n"
            f"  try:          curl -s {base}/metrics | grep 'connector_health{{' | grep ' 1$'\n"
            f"  every {STORY_STEP_SECONDS:.0f}s a connector breaks, needs relinking or recovers;"
            f" the simulators push signed webhooks at once, polls run every"
            f" {DEMO_POLL_INTERVAL}.\n",
        )
        await serve
    finally:
        story.cancel()
        stop.set()
        await asyncio.gather(story, serve, return_exceptions=True)
        await sim.stop()

"""`connector-exporter demo`: the simulators, the daemon against them, and a fleet that moves."""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from collections.abc import Callable
from typing import Any

import structlog

from exporter.config import Config, parse_listen_address
from exporter.daemon import Daemon
from exporter.model import Health
from exporter.simulator import SPECS, Simulator
from exporter.status import AccountStatus

log = structlog.get_logger("exporter.demo")

DEMO_POLL_INTERVAL = "10s"
STORY_STEP_SECONDS = 30.0
# The healths the banner suggests setting, worst first; each simulator expresses only some.
BREAK_TO = ("broken", "failing", "relink_needed", "degraded")
READY_WAIT_STEPS = 300  # x 0.05 s: the first polls of the simulators take well under a second


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


def url_host(listen_address: str) -> str:
    """The host part of a URL that reaches a server listening on `listen_address` from here."""
    host, _ = parse_listen_address(listen_address)
    if host in ("", "0.0.0.0"):  # noqa: S104 - all interfaces include loopback
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def breakable(sim: Simulator, statuses: list[AccountStatus]) -> tuple[str, str, str] | None:
    """(vendor, connector id, health) of a connector the banner may suggest breaking: healthy
    now, with an id that needs no URL quoting, and the worst health its simulator can express.
    """
    for status in sorted(statuses, key=lambda s: s.vendor):
        vsim = sim.vendors.get(status.vendor)
        snapshot = status.snapshot
        if vsim is None or snapshot is None:
            continue
        worst = next((h for h in BREAK_TO if h in vsim.healths), None)
        for c in snapshot.connectors:
            if (
                worst
                and c.health is Health.HEALTHY
                and c.connector_id in vsim.connectors
                and re.fullmatch(r"[\w-]+", c.connector_id)
            ):
                return status.vendor, c.connector_id, worst
    return None


def banner(
    base: str, sim_base: str, vendors: list[str], target: tuple[str, str, str] | None = None
) -> str:
    """What the demo prints once its first polls are done; every `curl` line is a command that
    works as printed (tests/test_demo.py runs them).
    """
    lines = [
        "",
        "connector-exporter demo is running (Ctrl-C to stop)",
        f"  status page:  {base}/",
        f"  metrics:      {base}/metrics",
        f"  simulators:   {sim_base}  (vendors: {', '.join(vendors)})",
        "  try:",
        "    # every connector that is not healthy, with its state (values print as 1.0):",
        f"    curl -s {base}/metrics | grep '^connector_health{{' | grep -v 'health=\"healthy\"'"
        " | grep ' 1.0$'",
        "    # did the last poll of every vendor account succeed?",
        f"    curl -s {base}/metrics | grep '^connector_exporter_poll_success'",
    ]
    if target is not None:
        vendor, connector_id, health = target
        lines += [
            f"    # make a connector {health} yourself; its signed webhook shows it at once:",
            f"    curl -sf -w '\\n' -X POST {sim_base}/_control/{vendor}/connectors/{connector_id}"
            f'/health -d \'{{"health": "{health}"}}\'',
        ]
    lines.append(
        f"  every {STORY_STEP_SECONDS:.0f}s a connector breaks, needs relinking or recovers;"
        f" the simulators push signed webhooks at once, polls run every {DEMO_POLL_INTERVAL}."
    )
    return "\n".join(lines) + "\n"


def _print_now(text: str) -> None:
    print(text, flush=True)  # stdout may be a pipe (tests, `make demo | tee`): no buffering


async def run_demo(listen_address: str, print_: Callable[[str], None] = _print_now) -> None:
    sim = Simulator()
    await sim.start()
    webhook_secret = secrets.token_urlsafe(24)
    daemon = Daemon(demo_config(sim, listen_address, webhook_secret))
    story = asyncio.create_task(play_story(sim))
    stop = asyncio.Event()
    serve = asyncio.create_task(daemon.serve(stop))
    try:
        # Bounded waits: for the listener, then for every account's first poll, so that the
        # banner's commands show data the moment they are printed.
        for _ in range(100):
            if (daemon.port and daemon.webhook_port) or serve.done():
                break
            await asyncio.sleep(0.05)
        if serve.done():
            await serve  # re-raises why the daemon could not start
        # Breaks then reach /metrics within a second through signed webhooks, as in production;
        # the polls every DEMO_POLL_INTERVAL stay the reconciler.
        sim.add_webhooks(f"http://127.0.0.1:{daemon.webhook_port}/webhooks", webhook_secret)
        for _ in range(READY_WAIT_STEPS):
            if daemon.scheduler.ready() or serve.done():
                break
            await asyncio.sleep(0.05)
        base = f"http://{url_host(listen_address)}:{daemon.port}"
        target = breakable(sim, daemon.scheduler.statuses())
        print_(banner(base, f"http://127.0.0.1:{sim.port}", list(sim.vendors), target))
        await serve
    finally:
        story.cancel()
        stop.set()
        await asyncio.gather(story, serve, return_exceptions=True)
        await sim.stop()

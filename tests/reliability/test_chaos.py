"""Chaos: many poll cycles of several accounts with random faults from the simulators.

Four vendors get a random fault (or none) before each cycle and their fleets change between
cycles; Apideck is never faulted and proves that one account's trouble stays its own. After
every cycle the exposition is parsed back and checked: each account shows exactly its last
good snapshot or the complete new fleet (never part of a poll), the counters moved by exactly
one poll, every API request is counted under one code, and the outcome is the one the fault
calls for (docs/reliability.md). The seed is printed; CHAOS_SEED=<seed> replays a run.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import structlog
from prometheus_client.parser import text_string_to_metric_families

from exporter.scheduler import AccountRunner
from exporter.simulator import Simulator
from exporter.simulator.base import FAULT_MODES, Fault
from exporter.vendors import REGISTRY
from tests.conftest import make_config, render
from tests.reliability.helpers import threaded_simulator

LONG = os.environ.get("RELIABILITY_LONG") == "1"
CYCLES = int(os.environ.get("CHAOS_CYCLES", "300" if LONG else "70"))
HEALTHY = "apideck"  # the control: never faulted
FAULTED = tuple(v for v in REGISTRY if v != HEALTHY)
REQUEST_TIMEOUT = 0.25
POLL_TIMEOUT = 1.5
# Retried once; a fault on every request outlasts the retry.
RETRYABLE = {"error": "unavailable", "rate_limit": "rate_limited", "hang": "unavailable"}
RETRYABLE |= {"reset": "unavailable", "truncated": "unavailable", "slow": "unavailable"}
FATAL = {"malformed": "bad_response", "html": "bad_response"}
FATAL |= {"unauthorized": "auth_failed"}


@dataclass
class Cycle:
    fault: Fault | None
    fleet: frozenset[str]


def expected_outcomes(vendor: str, fault: Fault | None) -> set[str]:
    """What a poll under `fault` must end with: "success" or the failure reason."""
    if fault is None:
        return {"success"}
    mode, every = fault.mode, fault.count < 0
    if mode == "slow" and fault.delay < REQUEST_TIMEOUT / 2:
        return {"success"}
    if mode in RETRYABLE:
        # One bad request is retried away; a bad answer to every request is not.
        return {RETRYABLE[mode]} if every else {"success"}
    if mode == "huge":
        # Cut at the size cap, unless reading 32 MiB outlasts request_timeout: then it is a
        # timeout, and retried.
        return {"bad_response", "unavailable" if every else "success"}
    if mode in FATAL:
        return {FATAL[mode]}
    if mode in ("wrong_content_type", "duplicates"):
        return {"success"}  # JSON is read whatever its content type; duplicate ids dropped
    if not every:
        return {"success"}  # a pagination fault on the first page only changes nothing
    if mode == "endless":
        # Fresh cursors forever: only poll_timeout ends it. OpenInt's offset paging sees the
        # same page come back and stops at once.
        return {"bad_response"} if vendor == "openint" else {"timeout"}
    if mode == "cursor_loop":
        # OpenInt's one page of the curated fleet holds everything: ignoring offset is harmless.
        return {"success"} if vendor == "openint" else {"bad_response"}
    raise AssertionError(f"no expectation for {mode}")


def random_fault(rng: random.Random) -> Fault | None:
    if rng.random() < 0.3:
        return None
    mode = rng.choice(FAULT_MODES)
    return Fault(
        mode=mode,
        count=rng.choice([1, -1]),
        status=rng.choice([500, 502, 503, 504]),
        retry_after=rng.choice([None, "0", "1"]),
        delay=rng.choice([0.05, 1.0]),
    )


def change_fleet(rng: random.Random, sim: Simulator, vendor: str) -> None:
    """A connector changes health, disappears, or the fleet is back to its initial state."""
    fake = sim.vendors[vendor]
    roll = rng.random()
    if roll < 0.1 or len(fake.connectors) < 4:
        fake.reset()
    elif roll < 0.3:
        del fake.connectors[rng.choice(sorted(fake.connectors))]
    elif roll < 0.8:
        connector = fake.connectors[rng.choice(sorted(fake.connectors))]
        fake.set_health(connector, rng.choice(fake.healths), time.time())


def families(text: str) -> dict[str, list[Any]]:
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def of(samples: list[Any], vendor: str, name: str | None = None) -> list[Any]:
    return [
        s for s in samples if s.labels.get("vendor") == vendor and (name is None or s.name == name)
    ]


async def test_chaos_cycles_keep_every_account_whole() -> None:
    with threaded_simulator() as sim:
        await run_chaos(sim)


async def run_chaos(sim: Simulator) -> None:
    seed = int(os.environ.get("CHAOS_SEED", random.randrange(2**32)))
    print(f"chaos seed {seed} ({CYCLES} cycles); replay with CHAOS_SEED={seed}")
    rng = random.Random(seed)
    config = make_config(
        sim.accounts(),
        request_timeout=f"{REQUEST_TIMEOUT}s",
        poll_timeout=f"{POLL_TIMEOUT}s",
        max_retries=1,
    )
    runners = {a.vendor: AccountRunner(a, config) for a in config.accounts}
    statuses = [r.status for r in runners.values()]
    previous = {vendor: frozenset[str]() for vendor in runners}
    counts = {vendor: (0, 0) for vendor in runners}  # polls, failures
    requested = {vendor: 0.0 for vendor in runners}  # api_requests_total, all codes
    seen_outcomes: set[tuple[str, str]] = set()
    started = time.monotonic()
    try:
        for cycle in range(CYCLES):
            plan: dict[str, Cycle] = {}
            for vendor in runners:
                change_fleet(rng, sim, vendor)
                fault = random_fault(rng) if vendor in FAULTED else None
                sim.vendors[vendor].fault = None if fault is None else Fault(**vars(fault))
                plan[vendor] = Cycle(fault, frozenset(sim.vendors[vendor].connectors))
            before = {vendor: Counter(r.status.requests) for vendor, r in runners.items()}
            with structlog.testing.capture_logs() as logs:
                results = await asyncio.wait_for(
                    asyncio.gather(*(r.poll() for r in runners.values())),
                    timeout=POLL_TIMEOUT + 5,
                )
            for fake in sim.vendors.values():
                fake.fault = None
            lines = {e["vendor"]: e for e in logs if e.get("event") == "poll"}
            text = render(statuses, now=time.time())
            got = families(text)

            for (vendor, runner), ok in zip(runners.items(), results, strict=True):
                step, status = plan[vendor], runner.status
                context = f"cycle {cycle} seed {seed} {vendor} fault={step.fault}"
                outcome = "success" if ok else lines[vendor]["reason"]
                seen_outcomes.add((vendor, outcome))
                expected = expected_outcomes(vendor, step.fault)
                codes_now = status.requests - before[vendor]
                if codes_now["timeout"] and (step.fault is None or step.fault.mode != "hang"):
                    # A request timed out that the fault did not stall: the simulators' loop was
                    # busy (a `huge` body of another vendor). One lost request more is fair.
                    expected |= {"success", "unavailable", "timeout"}
                assert outcome in expected, f"{context}: {outcome}: {status.last_error}"
                # The account's series: the old snapshot or the whole new fleet, nothing else.
                ids = {s.labels["connector_id"] for s in of(got["connector_info"], vendor)}
                want = step.fleet if ok else previous[vendor]
                assert ids == want, context
                snapshot = status.snapshot
                assert snapshot is not None or not want, context
                if snapshot is not None:
                    assert {c.connector_id for c in snapshot.connectors} == want, context
                    assert status.published is not None
                previous[vendor] = want
                # Counters: one more poll, one more failure exactly when it failed.
                polls, failures = counts[vendor]
                counts[vendor] = polls + 1, failures + (not ok)
                assert (status.polls_total, status.failures_total) == counts[vendor], context
                success = of(got["connector_exporter_poll_success"], vendor)
                assert [s.value for s in success] == [1.0 if ok else 0.0], context
                total = of(
                    got["connector_exporter_polls"], vendor, "connector_exporter_polls_total"
                )
                assert [s.value for s in total] == [float(counts[vendor][0])], context
                failed = of(
                    got["connector_exporter_poll_failures"],
                    vendor,
                    "connector_exporter_poll_failures_total",
                )
                assert [s.value for s in failed] == [float(counts[vendor][1])], context
                gauge = of(got["connector_exporter_connectors"], vendor)
                assert [s.value for s in gauge] == ([float(len(want))] if snapshot else []), context
                # Every request this poll made is counted under exactly one code; a request
                # still in flight when poll_timeout fires has no outcome to count.
                codes = of(
                    got["connector_exporter_api_requests"],
                    vendor,
                    "connector_exporter_api_requests_total",
                )
                counted = sum(s.value for s in codes)
                assert counted == sum(status.requests.values()), context
                made = lines[vendor]["requests"]
                delta = counted - requested[vendor]
                requested[vendor] = counted
                assert delta == made or (outcome == "timeout" and delta == made - 1), (
                    f"{context}: {made} requests made, {delta} counted"
                )
                assert lines[vendor]["outcome"] == ("success" if ok else "failure"), context
    finally:
        for runner in runners.values():
            await runner.aclose()
    elapsed = time.monotonic() - started
    print(f"chaos: {CYCLES} cycles in {elapsed:.1f}s, outcomes {sorted(seen_outcomes)}")
    # The run exercised failures and recoveries on the faulted vendors, not just one path.
    outcomes = {o for _, o in seen_outcomes}
    assert {"success", "unavailable", "bad_response"} <= outcomes
    assert {o for v, o in seen_outcomes if v == HEALTHY} <= {"success", "unavailable"}

"""Scrape-time ages: the fast rendering equals the straightforward one; rendering ahead changes
no byte and prepares the second the next scrape is due in."""

from __future__ import annotations

import gzip
import math
import random
import time

import pytest
from prometheus_client.registry import CollectorRegistry

from exporter.collector import AGE_FAMILIES, Exposition
from exporter.deflate import gzip_stream
from exporter.families import esc
from exporter.model import Connector, Snapshot
from exporter.render import render_snapshot
from exporter.status import AccountStatus
from exporter.vendors import fivetran
from tests.conftest import FIXED_NOW, status_of

LABEL_CHARS = 'ab%d"\\\n✓ '


def random_snapshot(rng: random.Random, n: int, account: str = "acc") -> Snapshot:
    def stamp() -> float | None:
        roll = rng.random()
        if roll < 0.15:
            return None
        if roll < 0.25:  # in the future: the age is clamped at 0
            return FIXED_NOW + rng.uniform(0, 5000)
        return FIXED_NOW - rng.choice([rng.uniform(0, 10), rng.uniform(0, 10**8)])

    connectors = tuple(
        Connector(
            connector_id=f"{i:05d}" + "".join(rng.choice(LABEL_CHARS) for _ in range(3)),
            last_success=stamp(),
            last_failure=stamp(),
        )
        for i in range(n)
    )
    return Snapshot("fivetran", account, fivetran.STATES, connectors, (), FIXED_NOW)


def straightforward_ages(snap: Snapshot, name: str, attr: str, now: int) -> bytes:
    """Each age line the obvious way: one f-string per connector (the reference)."""
    lines = []
    for c in snap.connectors:
        ts = getattr(c, attr)
        if ts is not None:
            labels = (
                f'account="{esc(snap.account)}",connector_id="{esc(c.connector_id)}",'
                f'vendor="{esc(snap.vendor)}"'
            )
            lines.append(f"{name}{{{labels}}} {max(0, now - math.ceil(ts))}\n")
    return "".join(lines).encode()


@pytest.mark.parametrize("seed", range(8))
def test_fast_age_rendering_equals_the_straightforward_one(seed: int) -> None:
    rng = random.Random(seed)
    snap = random_snapshot(rng, rng.randrange(0, 400))
    rendered = render_snapshot(snap)
    for now in (int(FIXED_NOW), int(FIXED_NOW) + rng.randrange(1, 10**6), int(FIXED_NOW) - 3):
        for family in AGE_FAMILIES:
            expected = straightforward_ages(snap, family.name, family.age_of, now)
            assert rendered.ages[family.age_of].render(now) == expected


def exposition(
    statuses: list[AccountStatus], clock: list[float], *, ahead: bool = True
) -> Exposition:
    return Exposition(
        lambda: statuses, CollectorRegistry(), clock=lambda: clock[0], render_ahead=ahead
    )


def body(e: Exposition, *, gzip_: bool) -> bytes:
    b = e.body(openmetrics=False, gzip=gzip_)
    data = b"".join(b.chunks)
    assert len(data) == b.length
    return gzip.decompress(data) if gzip_ else data


def wait_prepared(e: Exposition, second: int) -> None:
    deadline = time.monotonic() + 10
    while second not in e.prepared_seconds():
        assert time.monotonic() < deadline, f"{second} never prepared: {e.prepared_seconds()}"
        time.sleep(0.01)


def test_rendering_ahead_prepares_the_next_scrapes_second_and_changes_no_byte() -> None:
    rng = random.Random(42)
    statuses = [status_of(random_snapshot(rng, 300, f"a{i}")) for i in range(3)]
    clock = [FIXED_NOW + 0.4]
    ahead = exposition(statuses, clock)
    on_demand = exposition(statuses, clock, ahead=False)
    for i in range(5):  # one Prometheus, every 15 s: from its second scrape on, predicted
        assert body(ahead, gzip_=True) == body(on_demand, gzip_=False)
        clock[0] += 15
        if i >= 1:
            wait_prepared(ahead, int(clock[0]))
    assert on_demand.prepared_seconds() == [int(clock[0]) - 15]
    # an HA pair: two scrapers 4 s apart, each every 15 s
    for i in range(4):
        assert body(ahead, gzip_=False) == body(on_demand, gzip_=True)
        clock[0] += 4
        assert body(ahead, gzip_=True) == body(on_demand, gzip_=True)
        clock[0] += 11
        if i >= 1:
            wait_prepared(ahead, int(clock[0]))
            assert int(clock[0]) + 4 in ahead.prepared_seconds()


def test_a_new_poll_or_a_clock_off_the_guess_renders_on_demand() -> None:
    rng = random.Random(7)
    statuses = [status_of(random_snapshot(rng, 200))]
    clock = [FIXED_NOW + 0.5]
    ahead = exposition(statuses, clock)
    body(ahead, gzip_=True)
    clock[0] += 30
    body(ahead, gzip_=True)
    wait_prepared(ahead, int(clock[0]) + 30)
    # the account polls meanwhile: the prepared ages are of the old snapshot
    statuses[0] = status_of(random_snapshot(rng, 50))
    clock[0] += 30
    assert body(ahead, gzip_=True) == body(exposition(statuses, clock, ahead=False), gzip_=True)
    # a scrape in a second nobody predicted
    clock[0] += 7.3
    assert body(ahead, gzip_=False) == body(exposition(statuses, clock, ahead=False), gzip_=False)


def test_back_to_back_scrapes_prepare_nothing() -> None:
    statuses = [status_of(random_snapshot(random.Random(1), 10))]
    clock = [FIXED_NOW]
    e = exposition(statuses, clock)
    for _ in range(20):
        body(e, gzip_=True)
        clock[0] += 0.05
    assert e.prepared_seconds() == [int(clock[0])]
    assert all(gzip.decompress(b"".join(gzip_stream(e.pieces()))) for _ in range(2))


def test_one_accounts_poll_leaves_the_others_prepared_ages() -> None:
    rng = random.Random(5)
    statuses = [status_of(random_snapshot(rng, 3000, "big")), status_of(random_snapshot(rng, 5))]
    clock = [FIXED_NOW + 0.3]
    e = exposition(statuses, clock)
    for _ in range(2):
        body(e, gzip_=True)
        clock[0] += 15
    wait_prepared(e, int(clock[0]))
    held = {id(p.rendered): p for p in e._prepared[int(clock[0])].values()}
    big = held[id(statuses[0].published.rendered)]  # type: ignore[union-attr]
    big.result()
    statuses[1] = status_of(random_snapshot(rng, 7))  # the small account polls meanwhile
    text = body(e, gzip_=True)
    after = e._prepared[int(clock[0])]
    assert after[id(statuses[0].published.rendered)] is big  # type: ignore[union-attr]
    assert text == body(exposition(statuses, clock, ahead=False), gzip_=True)

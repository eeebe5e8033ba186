"""What is known of each account: its counters, and one frozen object per publish.

A poll (or, later, an event) builds a complete `Published` off the event loop and swaps it in as
one reference; scrapes and the landing page run on worker threads and read that reference once,
so they never see a snapshot with another snapshot's rendering or "since" times. Readers depend
on this module, never on the scheduler.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Container, Mapping
from dataclasses import dataclass, field

from exporter.model import SEVERITY, Connector, Health, Snapshot
from exporter.render import RenderedSnapshot, render_snapshot

# The landing page lists at most this many unhealthy connectors (in all; counts stay complete):
# each publish keeps its own most urgent ones, so the page never sorts a whole fleet.
UNHEALTHY_ROWS = 500


@dataclass(frozen=True, slots=True)
class Unhealthy:
    """A connector that is not healthy, with when its current health was first seen."""

    rank: int  # position of its health in SEVERITY: lower is more urgent
    since: float
    connector: Connector


@dataclass(frozen=True, eq=False)
class Published:
    """One account's state as of its last good poll: everything readers need, consistent."""

    snapshot: Snapshot
    rendered: RenderedSnapshot
    # connector_id -> when its current health was first seen (the landing page's "since")
    since: Mapping[str, float]
    counts: Mapping[Health, int]
    unhealthy: tuple[Unhealthy, ...]  # most urgent first, at most UNHEALTHY_ROWS


def carry_health_since(previous: Published | None, current: Snapshot) -> dict[str, float]:
    """Per connector of `current`, the time of the first snapshot that showed its current health.

    Kept from `previous` while the health is unchanged, else `current.taken_at`; the exporter
    knows nothing before its own first poll.
    """
    if previous is None:
        return {c.connector_id: current.taken_at for c in current.connectors}
    before = {c.connector_id: c.health for c in previous.snapshot.connectors}
    since = previous.since
    return {
        c.connector_id: since[c.connector_id]
        if c.connector_id in since and before.get(c.connector_id) == c.health
        else current.taken_at
        for c in current.connectors
    }


def publish(
    snapshot: Snapshot, since: Mapping[str, float], families: Container[str] | None = None
) -> Published:
    """Everything derived from a snapshot, computed once; pure CPU, run off the event loop.

    `since` holds, per connector, when its current health was first seen (`carry_health_since`);
    `families` the metric families to render (None: all).
    """
    counts = Counter(c.health for c in snapshot.connectors)
    ranks = {h: i for i, h in enumerate(SEVERITY)}
    unhealthy = sorted(
        (
            Unhealthy(ranks.get(c.health, len(SEVERITY)), since.get(c.connector_id, 0.0), c)
            for c in snapshot.connectors
            if c.health is not Health.HEALTHY
        ),
        key=lambda u: (u.rank, u.since, u.connector.connector_id),
    )[:UNHEALTHY_ROWS]
    return Published(
        snapshot=snapshot,
        rendered=render_snapshot(snapshot, families=families),
        since=since,
        counts=dict(counts),
        unhealthy=tuple(unhealthy),
    )


@dataclass
class AccountStatus:
    """One account: counters owned by its runner, and the last `Published` state."""

    vendor: str
    account: str
    interval: float
    published: Published | None = None
    polls_total: int = 0
    failures_total: int = 0
    last_ok: bool | None = None
    last_poll_end: float | None = None
    last_success_end: float | None = None
    last_duration: float | None = None
    last_error: str = ""
    next_poll: float | None = None
    requests: Counter[str] = field(default_factory=Counter)

    @property
    def key(self) -> str:
        return f"{self.vendor}/{self.account}"

    @property
    def snapshot(self) -> Snapshot | None:
        published = self.published
        return published.snapshot if published else None

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

from exporter.model import SEVERITY, SYNC_RESULTS, Connector, Health, Snapshot
from exporter.render import RenderedSnapshot, render_snapshot

# The landing page lists at most this many unhealthy connectors (in all; counts stay complete):
# each publish keeps its own most urgent ones, so the page never sorts a whole fleet.
UNHEALTHY_ROWS = 500


# What an Unhealthy's `since` is, shown beside it on the landing page.
SINCE_FIRST_SEEN = "first seen"  # by this exporter: never earlier than its own first poll
SINCE_RELINK_NEEDED = "relink needed at"  # the vendor's own time (Connector.relink_needed_since)
SINCE_FAILED = "failed at"  # the vendor's last failure (Connector.last_failure)


@dataclass(frozen=True, slots=True)
class Unhealthy:
    """A connector that is not healthy, with since when (and whose time that is)."""

    rank: int  # position of its health in SEVERITY: lower is more urgent
    since: float
    connector: Connector
    since_label: str = SINCE_FIRST_SEEN


def unhealthy_since(connector: Connector, first_seen: float) -> tuple[float, str]:
    """The vendor's own time for the connector's current state where it gives one, which
    survives exporter restarts; else when this exporter first saw that state.
    """
    if connector.health is Health.RELINK_NEEDED and connector.relink_needed_since is not None:
        return connector.relink_needed_since, SINCE_RELINK_NEEDED
    if connector.health is Health.FAILING and connector.last_failure is not None:
        return connector.last_failure, SINCE_FAILED
    return first_seen, SINCE_FIRST_SEEN


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
            Unhealthy(ranks.get(c.health, len(SEVERITY)), when, c, label)
            for c in snapshot.connectors
            if c.health is not Health.HEALTHY
            for when, label in (unhealthy_since(c, since.get(c.connector_id, 0.0)),)
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
class SyncTelemetry:
    """One connector's sync history as its webhooks told it; outlives polls, not the connector."""

    counts: Counter[str] = field(default_factory=Counter)
    started: float | None = None  # start of the sync in flight, if its start event was seen
    sync_id: str = ""
    last_duration: float | None = None
    last_event: float | None = None

    def record(
        self,
        received_at: float,
        *,
        sync_id: str = "",
        start: float | None = None,
        end: float | None = None,
        result: str | None = None,
    ) -> None:
        self.last_event = received_at
        if start is not None:
            self.started, self.sync_id = start, sync_id
        if end is not None:
            # A pair is a start and an end of the same sync: same id when the vendor sends one.
            if self.started is not None and (not sync_id or sync_id == self.sync_id):
                self.last_duration = max(0.0, end - self.started)
            self.started, self.sync_id = None, ""
        if result in SYNC_RESULTS:
            self.counts[result] += 1

    def fields(self) -> dict[str, object]:
        """The Connector fields this telemetry sets."""
        return {
            "syncs": tuple((r, self.counts[r]) for r in SYNC_RESULTS if r in self.counts),
            "last_sync_duration": self.last_duration,
            "last_event": self.last_event,
        }


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
    # errors.FAILURE_REASONS of the last failed poll ("" before any); the metric reads "none"
    # while last_ok holds
    last_failure_reason: str = ""
    next_poll: float | None = None
    requests: Counter[str] = field(default_factory=Counter)
    # connector_id -> its webhook telemetry; only connectors of the last published snapshot
    telemetry: dict[str, SyncTelemetry] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.vendor}/{self.account}"

    @property
    def snapshot(self) -> Snapshot | None:
        published = self.published
        return published.snapshot if published else None

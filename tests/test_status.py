"""Published state: everything derived from a snapshot once, and "since" carried between polls."""

from __future__ import annotations

from exporter.model import SEVERITY, Connector, Health, Snapshot, StateSets
from exporter.status import UNHEALTHY_ROWS, carry_health_since, publish


def snap(*connectors: Connector, at: float = 10.0) -> Snapshot:
    return Snapshot("v", "a", StateSets(), connectors, taken_at=at)


def test_counts_and_most_urgent_rows() -> None:
    healths = [*SEVERITY, Health.HEALTHY]
    connectors = tuple(Connector(f"c{i:04d}", health=healths[i % len(healths)]) for i in range(80))
    published = publish(snap(*connectors), carry_health_since(None, snap(*connectors)))
    assert sum(published.counts.values()) == 80
    assert published.counts[Health.HEALTHY] == 10
    ranks = [u.rank for u in published.unhealthy]
    assert ranks == sorted(ranks) and len(ranks) == 70
    assert published.unhealthy[0].connector.health is SEVERITY[0]
    assert all(u.connector.health is not Health.HEALTHY for u in published.unhealthy)


def test_rows_are_capped_oldest_first_within_a_health() -> None:
    connectors = tuple(Connector(f"c{i:04d}", health=Health.FAILING) for i in range(700))
    since = {f"c{i:04d}": 1000.0 - i for i in range(700)}
    published = publish(snap(*connectors), since)
    assert len(published.unhealthy) == UNHEALTHY_ROWS
    assert published.unhealthy[0].connector.connector_id == "c0699"  # in that state longest
    assert published.counts[Health.FAILING] == 700


def test_since_is_kept_while_health_is_unchanged() -> None:
    first = snap(Connector("x", health=Health.HEALTHY), Connector("y", health=Health.HEALTHY))
    p1 = publish(first, carry_health_since(None, first))
    second = snap(
        Connector("x", health=Health.HEALTHY), Connector("y", health=Health.BROKEN), at=20.0
    )
    assert carry_health_since(p1, second) == {"x": 10.0, "y": 20.0}

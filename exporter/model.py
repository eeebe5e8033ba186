"""The normalised connector model every vendor adapter translates into."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

OTHER = "other"
# Sync outcomes of `connector_syncs_total{result}` (SPEC §6.2), in exposition order.
SYNC_RESULTS = ("success", "failure", "rescheduled", "canceled")


class Health(StrEnum):
    """Normalised health; exactly one is current for each connector (SPEC §5)."""

    HEALTHY = "healthy"
    DEGRADED = "degraded"
    FAILING = "failing"
    BROKEN = "broken"
    RELINK_NEEDED = "relink_needed"
    INCOMPLETE = "incomplete"
    PAUSED = "paused"
    UNKNOWN = "unknown"


def first_applying(*rules: tuple[bool, Health], otherwise: Health) -> Health:
    """A SPEC §5 vendor row: `(applies, health)` rules in order; the first that applies wins."""
    return next((health for applies, health in rules if applies), otherwise)


@dataclass(frozen=True, slots=True)
class StateSets:
    """The known values of a vendor's state fields; each becomes one series of its StateSet.

    `other` is always appended so that an unknown vendor value still has exactly one series at 1.
    An empty tuple means the vendor has no such field and the StateSet is not exposed for it.
    """

    setup: tuple[str, ...] = ()
    sync: tuple[str, ...] = ()
    update: tuple[str, ...] = ()
    catalog: tuple[str, ...] = ()
    schema: tuple[str, ...] = ()

    def normalise(self, known: tuple[str, ...], value: str | None) -> str | None:
        """Map a vendor value onto one of `known`, `other` when unknown, None when null."""
        if value is None:
            return None
        v = value.strip().lower().replace("-", "_").replace(" ", "_")
        return v if v in known else OTHER


@dataclass(frozen=True, slots=True)
class Connector:
    """One monitored connector/connection instance, as of one poll.

    Timestamps are Unix seconds; None means the vendor left the field null (no series).
    """

    connector_id: str
    name: str = ""
    integration: str = ""
    group: str = ""
    end_user: str = ""
    health: Health = Health.UNKNOWN
    setup_state: str | None = None
    sync_state: str | None = None
    update_state: str | None = None
    paused: bool = False
    relink_needed: bool = False
    last_success: float | None = None
    last_failure: float | None = None
    last_sync_start: float | None = None
    next_sync: float | None = None
    relink_needed_since: float | None = None
    credential_expiry: float | None = None
    sync_frequency: float | None = None
    warnings: int | None = None
    tasks: int | None = None
    schema_state: str | None = None
    # None where the vendor has no such field: the 0/1 family then has no series for it.
    manual_schedule: bool | None = None
    historical_sync: bool | None = None
    # (kind, code) pairs, lower snake_case, sorted and unique; messages are never kept.
    issues: tuple[tuple[str, str], ...] = ()
    sync_progress: float | None = None  # 0..1
    test: bool | None = None
    # The vendor's own words on why the connector is not healthy; shown on the status page
    # (escaped there), never a label.
    status_message: str = ""
    # Sync telemetry from webhooks (SPEC §6.2), kept across polls by the account's runner:
    # (result, count) pairs in result order, only results seen so far.
    syncs: tuple[tuple[str, int], ...] = ()
    last_sync_duration: float | None = None
    last_event: float | None = None


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    """One entry of a vendor's connector catalog (the connector types it offers)."""

    connector_id: str
    name: str = ""
    auth_type: str = ""
    status: str | None = None


@dataclass(frozen=True, slots=True)
class PollResult:
    """What one successful poll of one account produced."""

    connectors: tuple[Connector, ...] = ()
    catalog: tuple[CatalogEntry, ...] = ()


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The immutable result of the last good poll of one account; swapped in whole."""

    vendor: str
    account: str
    states: StateSets
    connectors: tuple[Connector, ...]
    catalog: tuple[CatalogEntry, ...] = ()
    taken_at: float = 0.0


# Most urgent first; `paused` is deliberate, so it comes last. The landing page and the
# dashboards order and colour health by this.
SEVERITY: tuple[Health, ...] = (
    Health.BROKEN,
    Health.FAILING,
    Health.RELINK_NEEDED,
    Health.DEGRADED,
    Health.INCOMPLETE,
    Health.UNKNOWN,
    Health.PAUSED,
)

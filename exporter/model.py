"""The normalised connector model every vendor adapter translates into."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

OTHER = "other"
_SURROGATE = re.compile("[\ud800-\udfff]")


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


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    """One entry of a vendor's connector catalog (Apideck, OpenInt)."""

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


def parse_timestamp(value: object) -> float | None:
    """ISO 8601 / RFC 3339 string (or epoch number) to Unix seconds; None when absent or bad.

    Vendors send `Z` suffixes, fractional seconds and occasionally garbage; a bad timestamp must
    not fail the whole poll, it just produces no series.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        seconds = as_float(value)
        return seconds if seconds is not None and seconds > 0 else None
    if not isinstance(value, str) or not value:
        return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        # Vendors document UTC; a naive timestamp is read as UTC, never as local time.
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def as_float(value: object) -> float | None:
    """A JSON number as a finite float; None for anything else.

    JSON integers have no size limit: one past float range (or a NaN/Infinity literal, which
    Python's json accepts) is not a usable number and must not fail the poll.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def as_str(value: object) -> str:
    """A label-safe string for an optional vendor field ("" where absent)."""
    if value is None:
        return ""
    if isinstance(value, str):
        # A `\ud800` escape decodes to a lone surrogate, which no UTF-8 output (exposition,
        # landing page) can carry: such code points become U+FFFD.
        return value if value.isascii() else _SURROGATE.sub("\ufffd", value)
    if isinstance(value, bool | int | float):
        return str(value).lower() if isinstance(value, bool) else str(value)
    return ""


def opt_str(value: object) -> str | None:
    """A non-empty string, else None: how vendors' optional enum fields arrive."""
    return value if isinstance(value, str) and value else None


def as_mapping(value: object) -> Mapping[str, Any]:
    """The value when it is a JSON object, else an empty one (vendors send null for objects)."""
    return value if isinstance(value, Mapping) else {}


def as_list(value: object) -> list[Any]:
    """The value when it is a JSON array, else an empty one."""
    return value if isinstance(value, list) else []

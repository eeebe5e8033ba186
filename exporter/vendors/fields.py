"""Reading vendors' JSON defensively: every field may be absent, null or of another type."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

_SURROGATE = re.compile("[\ud800-\udfff]")


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
    seconds = dt.timestamp()
    # A zero date (1970-01-01, 0001-01-01) is a vendor's "never", not an event 56 years ago.
    return seconds if seconds > 0 else None


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

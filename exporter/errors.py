"""The errors a poll can end with; raised at the httpx boundary with `raise ... from err`.

Each class also names its `failure_reason`, the value of the self metric
`connector_exporter_last_poll_failure_reason` (SPEC §6.3) a poll ending with it sets.
"""

from __future__ import annotations

# SPEC §6.3, in order; `none` is the last poll having succeeded.
FAILURE_REASONS = (
    "none",
    "timeout",
    "transport",
    "http",
    "auth",
    "bad_response",
    "too_large",
    "suspicious_drop",
)


class VendorError(Exception):
    """A poll of a vendor API failed. The message is safe to log: it never holds a credential.

    A subclass names its two labels in its class statement: `reason` (the log field) and
    `failure_reason`; whatever it leaves out it inherits.
    """

    reason = "error"
    # A bug in a translator is triggered by what the vendor sent: counted as a bad response.
    failure_reason = "bad_response"

    def __init_subclass__(cls, reason: str = "", failure_reason: str = "") -> None:
        super().__init_subclass__()
        if failure_reason not in ("", *FAILURE_REASONS):
            raise TypeError(f"{cls.__name__}: {failure_reason!r} is not a SPEC §6.3 reason")
        cls.reason = reason or cls.reason
        cls.failure_reason = failure_reason or cls.failure_reason

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class AuthFailed(VendorError, reason="auth_failed", failure_reason="auth"):
    """401/403: the credentials are wrong, expired or lack permission."""


class RateLimited(VendorError, reason="rate_limited", failure_reason="http"):
    """429 persisted through every retry."""


class Unavailable(VendorError, reason="unavailable", failure_reason="http"):
    """5xx, timeouts or transport errors persisted through every retry."""


class RequestTimedOut(Unavailable, failure_reason="timeout"):
    """A request (not the whole poll) ran past `request_timeout` on every attempt."""


class TransportFailed(Unavailable, failure_reason="transport"):
    """The connection failed (refused, reset, TLS, DNS) on every attempt."""


class RequestRejected(VendorError, reason="rejected", failure_reason="http"):
    """Any other 4xx (bad request, quota exceeded, not found): retrying will not help."""


class BadResponse(VendorError, reason="bad_response"):
    """A 2xx whose body is not what the vendor documents (not JSON, wrong shape, cursor loop)."""


class TooLarge(BadResponse, failure_reason="too_large"):
    """A body whose decoded size runs past the cap, whatever its Content-Encoding."""


class SuspiciousDrop(VendorError, reason="suspicious_drop", failure_reason="suspicious_drop"):
    """The listing shrank past the account's `drop_guard` share: held until confirmed."""


class PollTimeout(VendorError, reason="timeout", failure_reason="timeout"):
    """The poll as a whole ran past `poll_timeout`."""

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
    """A poll of a vendor API failed. The message is safe to log: it never holds a credential."""

    reason = "error"
    # A bug in a translator is triggered by what the vendor sent: counted as a bad response.
    failure_reason = "bad_response"

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class AuthFailed(VendorError):
    """401/403: the credentials are wrong, expired or lack permission."""

    reason = "auth_failed"
    failure_reason = "auth"


class RateLimited(VendorError):
    """429 persisted through every retry."""

    reason = "rate_limited"
    failure_reason = "http"


class Unavailable(VendorError):
    """5xx, timeouts or transport errors persisted through every retry."""

    reason = "unavailable"
    failure_reason = "http"


class RequestTimedOut(Unavailable):
    """A request (not the whole poll) ran past `request_timeout` on every attempt."""

    failure_reason = "timeout"


class TransportFailed(Unavailable):
    """The connection failed (refused, reset, TLS, DNS) on every attempt."""

    failure_reason = "transport"


class RequestRejected(VendorError):
    """Any other 4xx (bad request, quota exceeded, not found): retrying will not help."""

    reason = "rejected"
    failure_reason = "http"


class BadResponse(VendorError):
    """A 2xx whose body is not what the vendor documents (not JSON, wrong shape, cursor loop)."""

    reason = "bad_response"


class TooLarge(BadResponse):
    """A body whose decoded size runs past the cap, whatever its Content-Encoding."""

    failure_reason = "too_large"


class SuspiciousDrop(VendorError):
    """The listing shrank past the account's `drop_guard` share: held until confirmed."""

    reason = "suspicious_drop"
    failure_reason = "suspicious_drop"


class PollTimeout(VendorError):
    """The poll as a whole ran past `poll_timeout`."""

    reason = "timeout"
    failure_reason = "timeout"

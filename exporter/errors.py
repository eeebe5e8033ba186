"""The errors a poll can end with; raised at the httpx boundary with `raise ... from err`."""

from __future__ import annotations


class VendorError(Exception):
    """A poll of a vendor API failed. The message is safe to log: it never holds a credential."""

    reason = "error"

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class AuthFailed(VendorError):
    """401/403: the credentials are wrong, expired or lack permission."""

    reason = "auth_failed"


class RateLimited(VendorError):
    """429 persisted through every retry."""

    reason = "rate_limited"


class Unavailable(VendorError):
    """5xx, timeouts or transport errors persisted through every retry."""

    reason = "unavailable"


class RequestRejected(VendorError):
    """Any other 4xx (bad request, quota exceeded, not found): retrying will not help."""

    reason = "rejected"


class BadResponse(VendorError):
    """A 2xx whose body is not what the vendor documents (not JSON, wrong shape, cursor loop)."""

    reason = "bad_response"


class PollTimeout(VendorError):
    """The poll as a whole ran past `poll_timeout`."""

    reason = "timeout"

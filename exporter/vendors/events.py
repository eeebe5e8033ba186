"""What a vendor's webhooks are: the events they carry, how the vendor declares its scheme, and
the signature primitives the schemes share. The listener is exporter/webhooks.py."""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Event:
    """One vendor event as it changes one connector.

    `patch` holds the vendor-object fields the event changes (merged into the connector's last
    vendor object, then translated as a poll would); `sync_start` / `sync_end` feed the sync
    telemetry; `sync_result` is one of model.SYNC_RESULTS when the event ends a sync.
    """

    event_id: str  # the vendor's id or idempotency key; "" to fall back on the body's hash
    connector_id: str  # as the vendor's translation names it
    kind: str  # the vendor's event name, for the log line (never a label)
    patch: Mapping[str, Any] = field(default_factory=dict)
    sync_id: str = ""
    sync_start: float | None = None
    sync_end: float | None = None
    sync_result: str | None = None


class BadEvent(ValueError):
    """A verified body that is not an event this vendor sends (answered 400)."""


@dataclass(frozen=True)
class Webhook:
    """How a vendor signs and shapes its webhooks; declared in its module, used by webhooks.py.

    `verify(secret, body, headers)` must compare in constant time; `parse(data, headers)` turns
    the decoded JSON into events (raises BadEvent); `sign(secret, body)` returns the headers
    the vendor would send (the simulators sign with it, so both sides share one scheme).
    """

    verify: Callable[[bytes, bytes, Mapping[str, str]], bool]
    parse: Callable[[Any, Mapping[str, str]], list[Event]]
    sign: Callable[[bytes, bytes], dict[str, str]]
    docs: str  # where the scheme is documented (docs/webhooks.md cites it)


def hmac_sha256(secret: bytes, message: bytes) -> bytes:
    return hmac.digest(secret, message, hashlib.sha256)


def digest_matches(expected: bytes, presented: str | None) -> bool:
    """Whether `presented` is `expected` in hex (any case), base64 or base64url; constant time.

    Vendors whose documentation does not name the encoding of their signature get all three:
    accepting several encodings of the same MAC weakens nothing.
    """
    if not presented:
        return False
    text = presented.strip()
    candidates: list[bytes] = []
    with contextlib.suppress(ValueError):
        candidates.append(bytes.fromhex(text))
    for decode in (base64.b64decode, base64.urlsafe_b64decode):
        with contextlib.suppress(binascii.Error, ValueError):
            candidates.append(decode(text + "=" * (-len(text) % 4)))
    ok = False
    for candidate in candidates:
        ok |= hmac.compare_digest(candidate, expected)
    return ok


def event_key(kind: str, event_id: str, body: bytes) -> str:
    """A fixed-size key for duplicate detection: the event's kind and id, or, for vendors that
    send no event id, the body itself (a redelivery repeats the same bytes)."""
    raw = f"{kind}\0{event_id}".encode() if event_id else b"body\0" + body
    return hashlib.sha256(raw).hexdigest()

"""What every vendor adapter shares: the HTTP client with retries, pagination, the base class."""

from __future__ import annotations

import asyncio
import functools
import json
import random
import ssl
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, Generic, TypeVar

import httpx

from exporter import __version__
from exporter.accounts import AccountBase
from exporter.errors import (
    AuthFailed,
    BadResponse,
    RateLimited,
    RequestRejected,
    Unavailable,
    VendorError,
)
from exporter.model import PollResult, StateSets

# Retry policy (SPEC §4): capped exponential backoff with full jitter, Retry-After honoured
# up to a cap so that one vendor cannot park a poll for an hour.
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 30.0
RETRY_AFTER_CAP_SECONDS = 60.0
CONNECT_TIMEOUT_SECONDS = 5.0
# No real page is anywhere near this; a body past it is a misbehaving server, not data.
MAX_RESPONSE_BYTES = 32 * 1024 * 1024
# Pagination safety net on top of the repeated-cursor check: 5,000 pages of 1,000 connectors.
MAX_PAGES = 5_000
USER_AGENT = f"connector-exporter/{__version__}"


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as seconds (RFC 9110: delay-seconds or an HTTP date); None when unusable."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # str.isdigit() is also true of "²" and "٣"
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def backoff_delay(attempt: int, retry_after: float | None) -> float:
    """Seconds to wait before retry number `attempt` (0-based)."""
    if retry_after is not None:
        return min(retry_after, RETRY_AFTER_CAP_SECONDS)
    return random.uniform(0, min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2**attempt))


@dataclass
class PollStats:
    """Request and page counts of one poll, for its summary log line."""

    requests: int = 0
    pages: int = 0


@dataclass
class ClientSettings:
    request_timeout: float = 30.0
    max_retries: int = 3
    transport: httpx.AsyncBaseTransport | None = None


@functools.cache
def shared_ssl_context() -> ssl.SSLContext:
    """One verifying TLS context for every account's client.

    httpx builds a context per client by default and loads the CA bundle into each: about
    1 MB of RSS per configured account (500 accounts: ~500 MB). Contexts are safe to share.
    """
    return httpx.create_ssl_context()


def vendor_message(body: bytes) -> str:
    """The human part of a vendor's error body, whatever its envelope."""
    try:
        data = json.loads(body)
    except ValueError:
        return ""
    if isinstance(data, Mapping):
        for key in ("message", "detail", "error", "status_message"):
            value = data.get(key)
            if isinstance(value, str) and value:
                return value
            if isinstance(value, list) and value and isinstance(value[0], Mapping):
                msg = value[0].get("msg") or value[0].get("message")
                if isinstance(msg, str):
                    return msg
    return ""


@dataclass
class ApiClient:
    """Async JSON GETs against one vendor account: auth headers, timeouts, retries, caps."""

    base_url: str
    headers: Mapping[str, str]
    secrets: Sequence[str]
    settings: ClientSettings
    on_response: Callable[[str], None] = lambda code: None
    stats: PollStats = field(default_factory=PollStats)
    _client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                base_url=self.base_url,
                headers={"User-Agent": USER_AGENT, **self.headers},
                timeout=httpx.Timeout(
                    self.settings.request_timeout,
                    connect=min(CONNECT_TIMEOUT_SECONDS, self.settings.request_timeout),
                ),
                transport=self.settings.transport,
                verify=shared_ssl_context(),
                follow_redirects=False,
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def redact(self, text: str) -> str:
        """`text` with every credential of this account replaced; errors may echo requests."""
        for secret in self.secrets:
            if secret:
                text = text.replace(secret, "[REDACTED]")
        return text[:300]

    async def _send(
        self, path: str, params: Mapping[str, Any]
    ) -> tuple[int, Mapping[str, str], bytes]:
        """One request, body read up to the cap; raises httpx errors as they come."""
        client = self._http()
        # httpx's timeout applies per phase (connect, each read); this bounds the whole request.
        async with asyncio.timeout(self.settings.request_timeout):
            async with client.stream("GET", path, params=params) as response:
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > MAX_RESPONSE_BYTES:
                        raise BadResponse(
                            f"GET {path}: HTTP {response.status_code} body larger than "
                            f"{MAX_RESPONSE_BYTES} bytes",
                            status=response.status_code,
                        )
                    chunks.append(chunk)
                return response.status_code, response.headers, b"".join(chunks)

    async def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET `path` and return its decoded JSON, retrying 429, 5xx and transport errors."""
        params = {k: v for k, v in (params or {}).items() if v is not None}
        attempts = self.settings.max_retries + 1
        for attempt in range(attempts):
            retry_after: float | None = None
            self.stats.requests += 1
            try:
                status, headers, body = await self._send(path, params)
            except BadResponse as err:
                # The body ran past the size cap: the response did arrive, so it is counted
                # under its status like every other one, then fails the poll (not retried).
                self.on_response(str(err.status))
                raise
            except (TimeoutError, httpx.TimeoutException) as err:
                self.on_response("timeout")
                error: VendorError = Unavailable(f"GET {path}: timed out")
                cause: BaseException = err
            except httpx.HTTPError as err:
                self.on_response("error")
                error = Unavailable(self.redact(f"GET {path}: {type(err).__name__}: {err}"))
                cause = err
            else:
                self.on_response(str(status))
                if 200 <= status < 300:
                    self.stats.pages += 1
                    return self._decode(path, status, headers, body)
                message = self.redact(vendor_message(body)) or "no error message"
                text = f"GET {path}: HTTP {status}: {message}"
                if status == 429:
                    error = RateLimited(text, status=status)
                    retry_after = parse_retry_after(headers.get("retry-after"))
                elif status >= 500:
                    error = Unavailable(text, status=status)
                    retry_after = parse_retry_after(headers.get("retry-after"))
                elif status in (401, 403):
                    raise AuthFailed(text, status=status)
                else:
                    raise RequestRejected(text, status=status)
                cause = error
            if attempt + 1 >= attempts:
                raise error from cause
            await asyncio.sleep(backoff_delay(attempt, retry_after))
        raise AssertionError("unreachable")  # pragma: no cover

    def _decode(self, path: str, status: int, headers: Mapping[str, str], body: bytes) -> Any:
        try:
            return json.loads(body)
        except ValueError as err:
            ctype = headers.get("content-type", "no content type").split(";")[0]
            raise BadResponse(
                f"GET {path}: HTTP {status} body is not valid JSON ({ctype}, {len(body)} bytes)",
                status=status,
            ) from err


PageFetch = Callable[[str | None], Awaitable[tuple[list[Any], str | None]]]


async def cursor_pages(fetch: PageFetch, *, max_pages: int = MAX_PAGES) -> AsyncIterator[list[Any]]:
    """Yield each page's items, following cursors until the vendor stops handing them out.

    A cursor seen before means the vendor is looping; stop with an error rather than spin.
    """
    seen: set[str] = set()
    cursor: str | None = None
    for _ in range(max_pages):
        items, next_cursor = await fetch(cursor)
        yield items
        if not next_cursor:
            return
        if next_cursor in seen:
            raise BadResponse("pagination returned a cursor it had returned before")
        seen.add(next_cursor)
        cursor = next_cursor
    raise BadResponse(f"pagination did not end after {max_pages} pages")


def expect_mapping(data: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise BadResponse(f"{what}: expected a JSON object, got {type(data).__name__}")
    return data


def expect_list(data: Any, what: str) -> list[Any]:
    if not isinstance(data, list):
        raise BadResponse(f"{what}: expected a JSON array, got {type(data).__name__}")
    return data


T = TypeVar("T")


def translate_all(items: Iterable[Any], one: Callable[[Mapping[str, Any]], T | None]) -> list[T]:
    """`one` applied to every JSON object in `items`; other values and None results are skipped.

    Vendors' pages hold objects, but a translator must survive anything a page can hold.
    """
    return [out for item in items if isinstance(item, Mapping) and (out := one(item)) is not None]


def optional_cursor(value: Any) -> str | None:
    """A next-page cursor as vendors send it: a non-empty string, else the end of the listing."""
    return value if isinstance(value, str) and value else None


A = TypeVar("A", bound=AccountBase)


class Adapter(ABC, Generic[A]):
    """One vendor: how to authenticate, and how to turn its listing into a PollResult."""

    states: ClassVar[StateSets]

    def __init__(self, account: A, api: ApiClient) -> None:
        self.account = account
        self.api = api

    @staticmethod
    @abstractmethod
    def headers(account: A) -> dict[str, str]:
        """The request headers, auth included, for this account."""

    @abstractmethod
    async def poll(self) -> PollResult:
        """Fetch every page and translate it; raises VendorError on failure."""


@dataclass(frozen=True)
class Vendor:
    """What a vendor module declares as `VENDOR`; the registry is built from these."""

    name: str  # the config's `vendor:` tag and the `vendor` label
    account: type[AccountBase]
    adapter: type[Adapter[Any]]

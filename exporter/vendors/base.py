"""What every vendor adapter shares: the HTTP client with retries, pagination, the base class."""

from __future__ import annotations

import asyncio
import functools
import json
import random
import ssl
import time
import zlib
from abc import ABC, abstractmethod
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import httpx
from pydantic import SecretStr

from exporter import __version__
from exporter.accounts import AccountBase, CatalogAndConnections
from exporter.errors import (
    AuthFailed,
    BadResponse,
    RateLimited,
    RequestRejected,
    RequestTimedOut,
    TooLarge,
    TransportFailed,
    Unavailable,
    VendorError,
)
from exporter.logs import longest_first, redact_with, sanitise, secret_forms
from exporter.model import CatalogEntry, Connector, PollResult, StateSets
from exporter.vendors.events import Webhook

# Retry policy (SPEC §4): capped exponential backoff with full jitter, Retry-After honoured
# up to a cap so that one vendor cannot park a poll for an hour.
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 30.0
RETRY_AFTER_CAP_SECONDS = 60.0
CONNECT_TIMEOUT_SECONDS = 5.0
# No real page is anywhere near this; a body past it is a misbehaving server, not data. It
# bounds the DECODED body: 2 KB of stacked gzip can inflate to gigabytes.
MAX_RESPONSE_BYTES = 32 * 1024 * 1024
# Each decoding step produces at most this much at a time, so that memory stays bounded by the
# cap whatever the compression ratio or the number of stacked encodings.
DECODE_STEP_BYTES = 256 * 1024
# What we can decode with a bounded output; anything else a vendor sends is a bad response.
ACCEPT_ENCODING = "gzip, deflate"
# Pagination safety net on top of the repeated-cursor check: 5,000 pages of 1,000 connectors.
MAX_PAGES = 5_000
USER_AGENT = f"connector-exporter/{__version__}"
JSON = "application/json"
# A poll every minute is already far finer than any connector's own sync schedule; faster
# polling only spends the account's API budget, which other tools share.
DEFAULT_MIN_POLL_INTERVAL_SECONDS = 60.0

# A request waiting out a shared 429 pause re-checks it at most this often: another request's
# 429 may have pushed the pause further meanwhile.
MAX_PAUSE_CHECKS = 16


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


class _Overflow(Exception):
    """The decoded body ran past the cap."""


class _Layer:
    """One Content-Encoding being undone, its output handed out DECODE_STEP_BYTES at a time."""

    def __init__(self, coding: str) -> None:
        self.coding = coding
        self.obj = self._new()
        self._deflate_sniffed = coding != "deflate"
        self._pending = b""

    def _new(self) -> Any:
        # gzip: wbits 16+; deflate: zlib-wrapped, or raw as some servers send it (see below)
        return zlib.decompressobj(16 + zlib.MAX_WBITS if self.coding == "gzip" else zlib.MAX_WBITS)

    def feed(self, data: bytes) -> Iterator[bytes]:
        if not self._deflate_sniffed:
            # "deflate" is meant to be zlib-wrapped, but servers send raw deflate too: the
            # first byte of a zlib stream says which (as browsers and httpx decide).
            data = self._pending + data
            if len(data) < 2:
                self._pending = data
                return
            self._deflate_sniffed = True
            if (data[0] & 0x0F) != 8 or ((data[0] << 8) | data[1]) % 31:
                self.obj = zlib.decompressobj(-zlib.MAX_WBITS)
        while True:
            if self.obj.eof:
                rest = self.obj.unused_data + data
                if not rest or self.coding != "gzip":
                    return  # trailing bytes after a deflate stream are ignored, as httpx does
                self.obj = self._new()  # gzip members may be concatenated (RFC 1952)
                data = rest
            out = self.obj.decompress(data, DECODE_STEP_BYTES)
            data = self.obj.unconsumed_tail
            if out:
                yield out
            # a full step may leave output behind with no input left: ask again
            if not data and len(out) < DECODE_STEP_BYTES:
                return

    def finish(self) -> Iterator[bytes]:
        if not self._deflate_sniffed and self._pending:
            yield from self.feed(b"")
        if not self.obj.eof:
            raise zlib.error(f"{self.coding} stream ended early")


class Decoder:
    """The body behind a Content-Encoding list, decoded with every step's output bounded."""

    def __init__(self, content_encoding: str, cap: int = MAX_RESPONSE_BYTES) -> None:
        codings = [c.strip().lower() for c in content_encoding.split(",") if c.strip()]
        codings = [c for c in codings if c != "identity"]
        unknown = [c for c in codings if c not in ("gzip", "x-gzip", "deflate")]
        if unknown:
            raise ValueError(f"unsupported Content-Encoding {sanitise(unknown[0], 40)!r}")
        # The last coding applied is the first one undone.
        self.layers = [_Layer("gzip" if c == "x-gzip" else c) for c in reversed(codings)]
        self.cap = cap
        self.size = 0

    def _through(self, index: int, data: bytes) -> Iterator[bytes]:
        if index == len(self.layers):
            self.size += len(data)
            if self.size > self.cap:
                raise _Overflow
            yield data
            return
        for piece in self.layers[index].feed(data):
            yield from self._through(index + 1, piece)

    def feed(self, data: bytes) -> Iterator[bytes]:
        """Decoded bytes for this raw chunk; _Overflow past the cap, zlib.error if corrupt."""
        return self._through(0, data)

    def finish(self) -> Iterator[bytes]:
        for index, layer in enumerate(self.layers):
            for piece in layer.finish():
                yield from self._through(index + 1, piece)


def _no_cookies() -> CookieJar:
    """A jar that keeps nothing: a vendor's Set-Cookie must never be sent back (no state)."""
    return CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))


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
    # Monotonic time until which no request of this client starts. A 429 limits the whole
    # account, not one request: when concurrent requests run (detail requests per listed item), one
    # 429 pauses them all until its Retry-After instead of each finding out on its own.
    _resume_at: float = 0.0
    _forms: tuple[str, ...] | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                base_url=self.base_url,
                headers={
                    "User-Agent": USER_AGENT,
                    "Accept-Encoding": ACCEPT_ENCODING,
                    **self.headers,
                },
                cookies=_no_cookies(),
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
        """`text` with every credential of this account replaced, in every form it can be
        echoed (the Basic pair's base64, the header, escaped or URL-encoded copies), then
        sanitised and capped: errors may echo requests and vendors' text reaches logs and /."""
        if self._forms is None:
            self._forms = longest_first(secret_forms(self.secrets, self.headers))
        # Redacted before the cap, so that a cut never leaves half a secret to be found.
        return sanitise(redact_with(self._forms, text))

    async def _send(
        self, path: str, params: Mapping[str, Any]
    ) -> tuple[int, Mapping[str, str], bytes]:
        """One request, body read and decoded up to the cap; raises httpx errors as they come."""
        client = self._http()
        # httpx's timeout applies per phase (connect, each read); this bounds the whole request.
        async with asyncio.timeout(self.settings.request_timeout):
            async with client.stream("GET", path, params=params) as response:
                status = response.status_code
                # Raw bytes, decoded here: httpx decodes each raw chunk in one piece, so a
                # stacked gzip bomb would be in memory before any size check could run.
                try:
                    decoder = Decoder(response.headers.get("content-encoding", ""))
                except ValueError as err:
                    raise BadResponse(f"GET {path}: HTTP {status}: {err}", status=status) from None
                chunks: list[bytes] = []
                try:
                    async for raw in response.aiter_raw():
                        chunks.extend(decoder.feed(raw))
                    chunks.extend(decoder.finish())
                except _Overflow:
                    raise TooLarge(
                        f"GET {path}: HTTP {status} body larger than {MAX_RESPONSE_BYTES} "
                        "bytes once decoded",
                        status=status,
                    ) from None
                except zlib.error:
                    raise BadResponse(
                        f"GET {path}: HTTP {status} body is not valid "
                        f"{sanitise(response.headers.get('content-encoding', ''), 40)}",
                        status=status,
                    ) from None
                return status, response.headers, b"".join(chunks)

    async def _wait_if_paused(self) -> None:
        """Wait out the account-wide pause a 429 set, if any."""
        for _ in range(MAX_PAUSE_CHECKS):
            wait = self._resume_at - time.monotonic()
            if wait <= 0:
                return
            await asyncio.sleep(wait)

    async def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET `path` and return its decoded JSON, retrying 429, 5xx and transport errors."""
        params = {k: v for k, v in (params or {}).items() if v is not None}
        attempts = self.settings.max_retries + 1
        for attempt in range(attempts):
            retry_after: float | None = None
            await self._wait_if_paused()
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
                error: VendorError = RequestTimedOut(f"GET {path}: timed out")
                cause: BaseException = err
            except httpx.HTTPError as err:
                self.on_response("error")
                error = TransportFailed(self.redact(f"GET {path}: {type(err).__name__}: {err}"))
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
            delay = backoff_delay(attempt, retry_after)
            if isinstance(error, RateLimited):
                self._resume_at = max(self._resume_at, time.monotonic() + delay)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _decode(self, path: str, status: int, headers: Mapping[str, str], body: bytes) -> Any:
        try:
            return json.loads(body)
        except ValueError as err:
            ctype = sanitise(headers.get("content-type", "no content type").split(";")[0], 60)
            raise BadResponse(
                f"GET {path}: HTTP {status} body is not valid JSON ({ctype}, {len(body)} bytes)",
                status=status,
            ) from err


PageFetch = Callable[[str | None], Awaitable[tuple[list[Any], str | None]]]
# A vendor's page parser: the decoded JSON to the page's items and the next cursor.
PageParse = Callable[[Any], tuple[list[Any], str | None]]


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


def _walk(data: Any, path: str, kind: type) -> Any:
    """The value at dotted `path` of a response, which must be a `kind` (Mapping or list).

    Every level on the way must be an object too: a vendor that changed its shape is a
    BadResponse naming where ("response.data.items: expected a JSON array, got NoneType").
    """
    where = "response"
    for part in path.split(".") if path else ():
        if not isinstance(data, Mapping):
            raise BadResponse(f"{where}: expected a JSON object, got {type(data).__name__}")
        data, where = data.get(part), f"{where}.{part}"
    if not isinstance(data, kind):
        shape = "a JSON array" if kind is list else "a JSON object"
        raise BadResponse(f"{where}: expected {shape}, got {type(data).__name__}")
    return data


def list_at(data: Any, path: str) -> list[Any]:
    """The JSON array at dotted `path` of a response: a listing's items."""
    found: list[Any] = _walk(data, path, list)
    return found


def object_at(data: Any, path: str = "") -> Mapping[str, Any]:
    """The JSON object at dotted `path` of a response ("": the response itself)."""
    found: Mapping[str, Any] = _walk(data, path, Mapping)
    return found


def cursor_at(data: Any, *paths: str) -> str | None:
    """The next-page cursor: the first non-empty string at one of the dotted `paths`.

    Anything else (absent, null, "", a number) is how vendors say the listing has ended.
    """
    for path in paths:
        value = data
        for part in path.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        if isinstance(value, str) and value:
            return value
    return None


T = TypeVar("T")


def translate_all(items: Iterable[Any], one: Callable[[Mapping[str, Any]], T | None]) -> list[T]:
    """`one` applied to every JSON object in `items`; other values and None results are skipped.

    Vendors' pages hold objects, but a translator must survive anything a page can hold.
    """
    return [out for item in items if isinstance(item, Mapping) and (out := one(item)) is not None]


def bearer(token: SecretStr, **extra: str) -> dict[str, str]:
    """The headers of a JSON API that takes `Authorization: Bearer <token>`."""
    return {"Authorization": f"Bearer {token.get_secret_value()}", "Accept": JSON, **extra}


A = TypeVar("A", bound=AccountBase)
# A vendor object's translation with its context bound (e.g. the parent object a listing
# nests it in): what re-derives a connector from its vendor object after an event changed it.
Translate = Callable[[Mapping[str, Any]], Connector | None]


def merged(target: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """`target` with `patch` deep-merged in (objects merged key by key); neither is changed."""
    out = dict(target)
    for key, value in patch.items():
        before = out.get(key)
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            out[key] = merged(before, value)
        else:
            out[key] = value
    return out


class Adapter(ABC, Generic[A]):
    """One vendor: how to authenticate, and how to turn its listing into a PollResult.

    For an account that takes webhooks, the adapter also keeps each connector's last vendor
    object (and the translation that made it), so that an event re-runs the same translation
    on that object with the event's fields merged in: one set of health rules for both.
    """

    states: ClassVar[StateSets]

    def __init__(self, account: A, api: ApiClient) -> None:
        self.account = account
        self.api = api
        self.keep_raw = account.webhook_secret is not None
        # connector_id -> (translation, vendor object), as of the last good poll plus events
        self.raw: dict[str, tuple[Translate, Mapping[str, Any]]] = {}
        self._collecting: dict[str, tuple[Translate, Mapping[str, Any]]] = {}

    def translated(self, items: Iterable[Any], one: Translate) -> list[Connector]:
        """`translate_all(items, one)`, remembering each vendor object when webhooks need it."""
        if not self.keep_raw:
            return translate_all(items, one)
        out = []
        for item in items:
            if isinstance(item, Mapping) and (connector := one(item)) is not None:
                out.append(connector)
                self._collecting.setdefault(connector.connector_id, (one, item))
        return out

    def begin_poll(self) -> None:
        self._collecting = {}

    def end_poll(self, kept: Iterable[str]) -> None:
        """Keep the objects of the connectors a successful poll published, and only those."""
        collected, self._collecting = self._collecting, {}
        self.raw = {cid: collected[cid] for cid in kept if cid in collected}

    def retranslate(self, connector_id: str, patch: Mapping[str, Any]) -> Connector | None:
        """The connector re-derived from its last vendor object with `patch` merged in.

        None when the object is not known (a connector the last poll did not list).
        """
        known = self.raw.get(connector_id)
        if known is None:
            return None
        one, item = known
        item = merged(item, patch)
        connector = one(item)
        if connector is None or connector.connector_id != connector_id:
            return None  # the event rewrote the identity: that is for the next poll to say
        self.raw[connector_id] = (one, item)
        return connector

    async def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET `path`'s decoded JSON; an adapter that must pace its requests overrides it."""
        return await self.api.get_json(path, params)

    async def cursor_listing(
        self, path: str, parse: PageParse, size: tuple[str, int], cursor: str = "cursor"
    ) -> AsyncIterator[list[Any]]:
        """Each page's items of the cursor-paginated listing at `path`.

        `size` is the page-size query parameter and its value; `cursor` the parameter that
        carries the cursor `parse` found on the page before.
        """

        async def fetch(after: str | None) -> tuple[list[Any], str | None]:
            return parse(await self.get(path, {size[0]: size[1], cursor: after}))

        async for items in cursor_pages(fetch):
            yield items

    @staticmethod
    @abstractmethod
    def headers(account: A) -> dict[str, str]:
        """The request headers, auth included, for this account."""

    @abstractmethod
    async def poll(self) -> PollResult:
        """Fetch every page and translate it; raises VendorError on failure."""


class _HasToken(Protocol):
    @property
    def token(self) -> SecretStr: ...


class BearerToken:
    """Mixed into the adapter of a vendor whose accounts hold a `token` sent as a Bearer token."""

    @staticmethod
    def headers(account: _HasToken) -> dict[str, str]:
        return bearer(account.token)


C = TypeVar("C", bound=CatalogAndConnections)


class CatalogAdapter(Adapter[C]):
    """A vendor with a connector catalog and connections: each listing polled (catalog first)
    when the account asks for it."""

    @abstractmethod
    async def catalog(self) -> list[CatalogEntry]:
        """Every catalog entry; raises VendorError on failure."""

    @abstractmethod
    async def connections(self) -> list[Connector]:
        """Every connection, translated; raises VendorError on failure."""

    async def poll(self) -> PollResult:
        catalog = await self.catalog() if self.account.catalog else []
        connectors = await self.connections() if self.account.connections else []
        return PollResult(connectors=tuple(connectors), catalog=tuple(catalog))


@dataclass(frozen=True)
class Vendor:
    """What a vendor module declares as `VENDOR`; the registry is built from these."""

    name: str  # the config's `vendor:` tag and the `vendor` label
    account: type[AccountBase]
    adapter: type[Adapter[Any]]
    webhook: Webhook | None = None  # None: the vendor sends no webhooks (404 for its accounts)
    # The shortest poll_interval check-config accepts against this vendor's real API (loopback
    # base URLs, i.e. simulators and tests, are exempt), and the documented rate limit behind it.
    min_poll_interval: float = DEFAULT_MIN_POLL_INTERVAL_SECONDS
    rate_limit: str = "no published rate limit"

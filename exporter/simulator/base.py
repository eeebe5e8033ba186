"""What every vendor simulator shares: the fleet, pagination, auth and the fault switch."""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import json
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

import httpx
from aiohttp import web

from exporter.vendors import REGISTRY
from exporter.vendors.base import MAX_RESPONSE_BYTES

# What the fault switch can do to the next `count` API requests of one vendor (docs/reliability.md
# says what the exporter does about each):
# - before answering: `slow` (sleep `delay`, then answer), `hang` (never answer), `reset` (close
#   the connection without an answer), `error` (`status`, 500 by default), `rate_limit` (429,
#   `Retry-After: retry_after` unless that is null), `unauthorized` (the vendor's 401), `malformed`
#   (a well-framed 200 whose JSON stops short), `html` (a 200 HTML error page);
# - the real answer, altered: `truncated` (the connection drops halfway through the body),
#   `wrong_content_type` (the JSON as text/plain), `huge` (the JSON with a padding field that
#   takes it past the exporter's size cap, streamed);
# - the listing's pagination: `cursor_loop` (a cursor handed out again / `offset` ignored),
#   `endless` (always another page behind a fresh cursor or a growing `total`), `duplicates`
#   (each page starts with the last item of the page before).
FAULT_MODES = (
    "error",
    "rate_limit",
    "slow",
    "hang",
    "reset",
    "malformed",
    "html",
    "truncated",
    "wrong_content_type",
    "huge",
    "cursor_loop",
    "endless",
    "duplicates",
    "unauthorized",
)
# Scenarios: what a vendor's data says rather than how it is delivered, set like a fault (a
# `Fault` with one of these modes). Kept apart from FAULT_MODES, which the reliability tests
# sweep expecting each to fail or survive a poll in its own way.
# - `out_of_spec`: the listing as real accounts are known to send it where that differs from
#   the vendor's published schema, and values the schema has no room for (each simulator's
#   `out_of_spec()` says which). Without it every page validates against tests/schemas/
#   (tests/simulator/test_schemas.py).
# - `consumer_deleted` (vendors with a listing and a detail request per item): the listing
#   names one more item, whose detail request then answers 404, as when it is deleted between
#   the two requests.
SCENARIO_MODES = ("out_of_spec", "consumer_deleted")
ALL_MODES = FAULT_MODES + SCENARIO_MODES

# Modes applied to a vendor handler's real 200 answer rather than instead of it.
BODY_FAULTS = frozenset({"truncated", "wrong_content_type", "huge"})
PAGING_FAULTS = frozenset({"cursor_loop", "endless", "duplicates"})
# `huge`: one mebibyte past the cap, in 1 MiB chunks of one shared buffer.
HUGE_BYTES = MAX_RESPONSE_BYTES + 1024 * 1024
HUGE_CHUNK = b"x" * (1024 * 1024)


def iso(ts: float) -> str:
    """RFC 3339 with microseconds and a Z, as the vendors' seeds show."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


HOUR = 3600.0
DAY = 24 * HOUR


@dataclass(frozen=True)
class At:
    """In a table of field values: the timestamp `offset` seconds from the fleet's `now`."""

    offset: float


def resolve(value: Any, now: float) -> Any:
    """A fresh copy of `value` with every `At` in it (nested too) as its ISO timestamp."""
    if isinstance(value, At):
        return iso(now + value.offset)
    if isinstance(value, Mapping):
        return {k: resolve(v, now) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, now) for v in value]
    return value


def deep_merge(target: dict[str, Any], patch: Mapping[str, Any]) -> None:
    for key, value in patch.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            deep_merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


@dataclass
class Fault:
    """The next `count` API requests (-1: until cleared) misbehave in `mode`."""

    mode: str
    count: int = -1
    status: int = 500
    retry_after: str | None = "1"
    delay: float = 5.0


@dataclass(frozen=True)
class PageSize:
    """A listing's page-size query parameter as the vendor checks it."""

    param: str
    default: int
    maximum: int
    error: Mapping[str, Any]  # the vendor's own error body for a size out of bounds
    status: int = 400
    minimum: int = 1

    def invalid(self) -> web.Response:
        return web.json_response(self.error, status=self.status)


# Where guard() leaves the request's fault for finish() (aiohttp requests are mappings).
_FAULT = web.RequestKey[Fault | None]("simulator.fault")


class VendorSim(ABC):
    """One fake vendor API: its routes under `/<name>`, its fleet, its faults."""

    name: ClassVar[str]
    # What set_health writes, `At` timestamps relative to the change: first the vendor fields
    # of a healthy connector, then those that differ for the health asked for. The keys of
    # `health_fields` are the healths the simulator can put a connector into (what the vendor
    # can express), `healths` in that order.
    healthy_fields: ClassVar[Mapping[str, Any]]
    health_fields: ClassVar[Mapping[str, Mapping[str, Any]]]
    healths: ClassVar[tuple[str, ...]]
    # The demo's story for this vendor, one step at a time: (field, value naming a connector,
    # health).
    story: ClassVar[tuple[tuple[str, str, str], ...]] = ()
    page_size: ClassVar[PageSize]
    unauthorized_body: ClassVar[Mapping[str, Any]]  # the vendor's own 401 body

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.healths = tuple(cls.health_fields)

    def __init__(self, size: int | None = None, *, latency_ms: float = 0.0) -> None:
        self.size = size
        # Every API request waits this long before it is answered (a benchmark's distant API);
        # settable at any time.
        self.latency_ms = latency_ms
        self.connectors: dict[str, dict[str, Any]] = {}
        self.fault: Fault | None = None
        self.requests = 0
        # Concurrency seen by this vendor's API: tests assert one account is never polled twice
        # at once.
        self.in_flight = 0
        self.max_in_flight = 0
        self.webhooks = WebhookSender(self.name)
        self.reset()

    @classmethod
    def account_config(cls, base_url: str) -> dict[str, Any]:
        """The exporter config account that polls this simulator, its credentials included:
        every field the vendor's account model requires, from the class attribute of that name."""
        model = REGISTRY[cls.name].account
        required = [
            field
            for field, info in model.model_fields.items()
            if info.is_required() and field not in ("vendor", "name")
        ]
        credentials = {field: getattr(cls, field) for field in required}
        return {"vendor": cls.name, "name": "demo", **credentials, "base_url": base_url}

    def resize(self, size: int | None) -> None:
        """Serve a generated fleet of `size` connectors (None: the curated one) from now on."""
        self.size = size
        self.reset()

    def reset(self, now: float | None = None) -> None:
        """The initial fleet as of `now` (default: the current time), no fault."""
        now = time.time() if now is None else now
        self.connectors = {c["id"]: c for c in self.fleet(now, self.size)}
        self.fault = None

    @abstractmethod
    def fleet(self, now: float, size: int | None) -> list[dict[str, Any]]:
        """The initial connectors: a curated set covering every state, or `size` generated."""

    def set_health(self, connector: dict[str, Any], health: str, now: float) -> None:
        """Change vendor-native fields so that the exporter derives `health`."""
        for fields in (self.healthy_fields, self.health_fields[health]):
            deep_merge(connector, resolve(fields, now))

    @abstractmethod
    def authorized(self, request: web.Request) -> bool: ...

    def unauthorized(self) -> web.Response:
        return web.json_response(self.unauthorized_body, status=401)

    @abstractmethod
    def add_routes(self, app: web.Application, prefix: str) -> None: ...

    def out_of_spec(self, item: dict[str, Any]) -> dict[str, Any]:
        """`item` (a copy, free to change) as served under the `out_of_spec` fault."""
        return item

    def served(self, items: list[dict[str, Any]], fault: Fault | None) -> list[dict[str, Any]]:
        """The items a listing answers with: altered copies under the `out_of_spec` fault."""
        if fault is None or fault.mode != "out_of_spec":
            return items
        return [self.out_of_spec(copy.deepcopy(item)) for item in items]

    # --- webhooks: what the vendor pushes when its fleet changes --------------------------
    def change_health(self, connector: dict[str, Any], health: str, now: float) -> None:
        """`set_health`, then the vendor's webhooks about it to every registered URL."""
        before = copy.deepcopy(connector)
        self.set_health(connector, health, now)
        self.webhooks.send(self.webhook_events(before, connector, health, now))

    def webhook_events(
        self, before: dict[str, Any], after: dict[str, Any], health: str, now: float
    ) -> list[dict[str, Any]]:
        """The event bodies the vendor sends for this change, in order (none by default)."""
        return []

    def webhook_key(self, secret: str) -> str:
        """The key this vendor signs with, given the one registered with the URL."""
        return secret

    # --- helpers for the vendor handlers ------------------------------------------------
    def take_fault(self) -> Fault | None:
        fault = self.fault
        if fault is None:
            return None
        if fault.count > 0:
            fault.count -= 1
            if fault.count == 0:
                self.fault = None
        return fault

    async def guard_listing(
        self, request: web.Request
    ) -> tuple[web.Response | None, Fault | None, int]:
        """`guard`, then the page size: (response, fault, size), the vendor's own error as the
        response when the size is not a whole number within its bounds."""
        response, fault = await self.guard(request)
        if response is not None:
            return response, fault, 0
        size = int_param(request, self.page_size.param, self.page_size.default)
        if size is None or not self.page_size.minimum <= size <= self.page_size.maximum:
            return self.page_size.invalid(), fault, 0
        return None, fault, size

    async def guard(self, request: web.Request) -> tuple[web.Response | None, Fault | None]:
        """Auth and the fault switch, before a vendor handler answers. Returns (response, fault)."""
        self.requests += 1
        if self.latency_ms > 0:
            await asyncio.sleep(self.latency_ms / 1000)
        fault = self.take_fault()
        request[_FAULT] = fault
        if fault is not None:
            if fault.mode == "slow":
                await asyncio.sleep(fault.delay)
            elif fault.mode == "hang":
                # Until the client gives up (the server cancels the handler on disconnect).
                await asyncio.Event().wait()
            elif fault.mode == "reset":
                if request.transport is not None:
                    request.transport.abort()
                raise asyncio.CancelledError  # nothing left to answer on
            elif fault.mode == "error":
                return web.json_response(
                    {"message": "simulated server error"}, status=fault.status
                ), fault
            elif fault.mode == "rate_limit":
                headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
                return web.json_response(
                    {"message": "simulated rate limit"}, status=429, headers=headers
                ), fault
            elif fault.mode == "malformed":
                return web.Response(
                    body=b'{"data": {"items": [', content_type="application/json"
                ), fault
            elif fault.mode == "html":
                return web.Response(
                    text="<html><body>Service temporarily unavailable</body></html>",
                    content_type="text/html",
                ), fault
            elif fault.mode == "unauthorized":
                return self.unauthorized(), fault
        if not self.authorized(request):
            return self.unauthorized(), fault
        return None, fault

    @staticmethod
    async def finish(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
        """Apply a body fault (`truncated`, `wrong_content_type`, `huge`) to a 200 answer."""
        fault: Fault | None = request.get(_FAULT)
        if (
            fault is None
            or fault.mode not in BODY_FAULTS
            or not isinstance(response, web.Response)
            or response.status != 200
            or not isinstance(response.body, bytes)
        ):
            return response
        body = response.body
        if fault.mode == "wrong_content_type":
            return web.Response(body=body, content_type="text/plain", charset="utf-8")
        if fault.mode == "huge":
            return web.Response(body=huge_body(body), content_type="application/json")
        # truncated: announce the whole body, send half of it, drop the connection.
        cut = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        cut.content_length = len(body)
        await cut.prepare(request)
        await cut.write(body[: len(body) // 2])
        if request.transport is not None:
            request.transport.abort()
        raise asyncio.CancelledError

    @staticmethod
    def window(
        items: list[dict[str, Any]], offset: int, size: int, fault: Fault | None
    ) -> tuple[list[dict[str, Any]], int | None, int]:
        """The page at `offset`, the next page's offset (None at the end) and the `total`.

        `endless` wraps around the listing with ever larger offsets and a `total` always one
        page ahead; `duplicates` cuts the listing into (at least) two pages, each after the
        first starting with the last item of the one before.
        """
        count = len(items)
        mode = fault.mode if fault is not None else None
        if mode == "endless":
            start = offset % count if count else 0
            return items[start : start + size], offset + size, offset + size + 1
        if mode == "duplicates":
            size = max(1, min(size, (count + 1) // 2))
            end = offset + size
            return items[max(0, offset - 1) : end], end if end < count else None, count
        end = offset + size
        return items[offset:end], end if end < count else None, count

    @staticmethod
    def page(
        items: list[dict[str, Any]], cursor: str | None, size: int, fault: Fault | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """The page of `items` after `cursor`, and the next cursor (None at the end)."""
        offset = decode_cursor(cursor)
        if fault is not None and fault.mode == "cursor_loop":
            end = offset + size
            return items[offset:end], encode_cursor(offset or size)
        page, next_offset, _ = VendorSim.window(items, offset, size, fault)
        return page, None if next_offset is None else encode_cursor(next_offset)


def huge_body(body: bytes) -> AsyncIterator[bytes]:
    """`body` (a JSON object) with a leading padding member that takes it to HUGE_BYTES."""

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"padding": "'
        sent = 0
        while sent < HUGE_BYTES:
            yield HUGE_CHUNK
            sent += len(HUGE_CHUNK)
        rest = body.lstrip()[1:].lstrip()
        yield b'"' + (b"," + rest if rest and rest != b"}" else b"}")

    return chunks()


def encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode()


def decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise web.HTTPBadRequest(text="invalid cursor") from None
    if not text.startswith("o:") or not text[2:].isdigit():
        raise web.HTTPBadRequest(text="invalid cursor")
    return int(text[2:])


def int_param(request: web.Request, name: str, default: int) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        return None


def json_body(data: Any) -> web.Response:
    return web.Response(body=json.dumps(data).encode(), content_type="application/json")


@dataclass(frozen=True)
class WebhookTarget:
    url: str
    secret: str


class WebhookSender:
    """Delivers a vendor's events, signed with the vendor's own scheme, in order, per target.

    The scheme comes from the vendor's module (`Vendor.webhook.sign`), the one the exporter
    verifies with. Delivery happens in the background, like a vendor's: the change that caused
    it does not wait for it. Each delivery outcome is kept (bounded) for tests and the demo.
    """

    MAX_RESULTS = 1000

    def __init__(self, vendor: str) -> None:
        self.vendor = vendor
        self.targets: list[WebhookTarget] = []
        self.results: list[tuple[str, int | str]] = []  # (event name, status or error)
        self._tail: asyncio.Task[None] | None = None
        # One client for every delivery: creating one costs ~0.1 s (its TLS context), more
        # than everything else between a change and the exporter's new state.
        self._client: httpx.AsyncClient | None = None

    def add(self, url: str, secret: str) -> None:
        self.targets.append(WebhookTarget(url, secret))

    def clear(self) -> None:
        self.targets = []

    def send(self, bodies: list[dict[str, Any]]) -> None:
        if not bodies or not self.targets:
            return
        previous = self._tail
        self._tail = asyncio.get_running_loop().create_task(
            self._deliver(previous, list(self.targets), bodies)
        )

    async def drain(self) -> None:
        if self._tail is not None:
            await asyncio.gather(self._tail, return_exceptions=True)

    async def aclose(self) -> None:
        await self.drain()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _deliver(
        self,
        previous: asyncio.Task[None] | None,
        targets: list[WebhookTarget],
        bodies: list[dict[str, Any]],
    ) -> None:
        if previous is not None:  # events leave in the order they happened
            await asyncio.gather(previous, return_exceptions=True)
        spec = REGISTRY[self.vendor].webhook
        if spec is None:
            return
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=5.0)
        client = self._client
        for target in targets:
            for data in bodies:
                raw = json.dumps(data).encode()
                headers = {
                    "Content-Type": "application/json",
                    **spec.sign(target.secret.encode(), raw),
                }
                name = str(data.get("event") or data.get("name") or "event")
                try:
                    response = await client.post(target.url, content=raw, headers=headers)
                    outcome: int | str = response.status_code
                except httpx.HTTPError as err:
                    outcome = type(err).__name__
                self.results.append((name, outcome))
                del self.results[: -self.MAX_RESULTS]

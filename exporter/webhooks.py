"""The webhook listener (SPEC §6.2): `POST /webhooks/{vendor}/{account}`, nothing else.

Its own port, so that `/metrics` can stay internal while vendors reach this one through an
ingress. Each request goes: rate limit (per source) → account lookup → body read up to the cap
→ the vendor's signature check → the vendor's parser → duplicate check → the account's runner,
which re-translates the connectors the events name and publishes at once. Every answer is
counted in `connector_exporter_webhook_requests_total{vendor, account, result}`.

What a vendor signs and sends lives in its module (`Vendor.webhook`); nothing here names one.
"""

from __future__ import annotations

import json
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator, Mapping

import structlog
from aiohttp import web
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from exporter.collector import _family
from exporter.scheduler import AccountRunner
from exporter.vendors import REGISTRY
from exporter.vendors.events import BadEvent, event_key

log = structlog.get_logger("exporter.webhooks")

RESULTS = (
    "accepted",
    "duplicate",
    "bad_signature",
    "bad_request",
    "unknown_account",
    "too_large",
    "rate_limited",
)
# Requests that name no configured webhook account are counted under these labels: the path
# is the sender's to choose, and a label value per path would let anyone grow the exporter's
# series without bound.
UNKNOWN = ("", "")

# Per source address: a token bucket of BURST requests refilled at RATE per second. Vendors
# send a few events per connector per sync; a source far past that is misbehaving.
RATE_PER_SECOND = 50.0
BURST = 100.0
MAX_SOURCES = 10_000  # buckets kept (least recently seen dropped first)
# Event keys remembered per account, for at least this long, to apply redeliveries once.
MAX_EVENT_KEYS = 20_000
EVENT_KEY_TTL_SECONDS = 24 * 3600.0
READ_CHUNK = 64 * 1024


class RateLimiter:
    """Token buckets per source, in bounded memory."""

    def __init__(
        self,
        rate: float = RATE_PER_SECOND,
        burst: float = BURST,
        max_sources: int = MAX_SOURCES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate, self.burst, self.max_sources, self.clock = rate, burst, max_sources, clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def allow(self, source: str) -> bool:
        now = self.clock()
        tokens, last = self._buckets.pop(source, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        allowed = tokens >= 1.0
        self._buckets[source] = (tokens - 1.0 if allowed else tokens, now)
        while len(self._buckets) > self.max_sources:
            self._buckets.popitem(last=False)
        return allowed

    def __len__(self) -> int:
        return len(self._buckets)


class SeenEvents:
    """Event keys of one account: LRU-bounded, and forgotten after a TTL."""

    def __init__(
        self,
        max_keys: int = MAX_EVENT_KEYS,
        ttl: float = EVENT_KEY_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_keys, self.ttl, self.clock = max_keys, ttl, clock
        self._keys: OrderedDict[str, float] = OrderedDict()

    def add(self, key: str) -> bool:
        """Remember `key`; False when it was already seen (a duplicate)."""
        now = self.clock()
        while self._keys:
            oldest, at = next(iter(self._keys.items()))
            if now - at <= self.ttl:
                break
            del self._keys[oldest]
        if key in self._keys:
            return False
        self._keys[key] = now
        while len(self._keys) > self.max_keys:
            self._keys.popitem(last=False)
        return True

    def __len__(self) -> int:
        return len(self._keys)


class WebhookCollector(Collector):
    """`connector_exporter_webhook_requests_total`, read at scrape time."""

    def __init__(self, counts: Counter[tuple[str, str, str]]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[Metric]:
        family = _family("connector_exporter_webhook_requests")
        for (vendor, account, result), n in sorted(self._counts.items()):
            family.add_metric([vendor, account, result], float(n))
        yield family


class WebhookListener:
    """The aiohttp application behind the webhook port."""

    def __init__(
        self,
        runners: Callable[[], Mapping[str, AccountRunner]],
        *,
        max_body_bytes: int,
        limiter: RateLimiter | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._runners = runners
        self.max_body_bytes = max_body_bytes
        self.limiter = limiter or RateLimiter()
        self.clock = clock
        self.counts: Counter[tuple[str, str, str]] = Counter()
        self._seen: dict[str, SeenEvents] = {}

    def app(self) -> web.Application:
        # aiohttp's own body cap is not used: the handler reads the stream itself, so that an
        # oversize body is refused (and counted) as soon as it passes the cap.
        app = web.Application(client_max_size=self.max_body_bytes + 1)
        app.router.add_route("*", "/webhooks/{vendor}/{account}", self._handle)
        app.router.add_route("*", "/{tail:.*}", self._elsewhere)
        return app

    def collector(self) -> WebhookCollector:
        return WebhookCollector(self.counts)

    def _answer(
        self, labels: tuple[str, str], result: str, status: int, reason: str = ""
    ) -> web.Response:
        self.counts[(*labels, result)] += 1
        body = {"result": result, **({"reason": reason} if reason else {})}
        return web.json_response(body, status=status)

    async def _elsewhere(self, request: web.Request) -> web.Response:
        return self._answer(UNKNOWN, "bad_request", 404, "only POST /webhooks/{vendor}/{account}")

    def _seen_for(self, key: str, runners: Mapping[str, AccountRunner]) -> SeenEvents:
        seen = self._seen.get(key)
        if seen is None:
            # Accounts removed by a reload take their keys with them.
            for gone in [k for k in self._seen if k not in runners]:
                del self._seen[gone]
            seen = self._seen[key] = SeenEvents()
        return seen

    async def _read(self, request: web.Request) -> bytes | None:
        """The body, or None as soon as it is past the cap (announced or streamed)."""
        if request.content_length is not None and request.content_length > self.max_body_bytes:
            return None
        chunks: list[bytes] = []
        size = 0
        while chunk := await request.content.read(READ_CHUNK):
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    async def _handle(self, request: web.Request) -> web.Response:
        vendor_name = request.match_info["vendor"]
        account_name = request.match_info["account"]
        key = f"{vendor_name}/{account_name}"
        runners = self._runners()
        runner = runners.get(key)
        vendor = REGISTRY.get(vendor_name)
        labels = (vendor_name, account_name) if runner is not None else UNKNOWN
        if not self.limiter.allow(request.remote or ""):
            return self._answer(labels, "rate_limited", 429)
        if request.method != "POST":
            return self._answer(labels, "bad_request", 405, "POST only")
        secret = runner.account.webhook_secret if runner is not None else None
        if runner is None or vendor is None or vendor.webhook is None or secret is None:
            return self._answer(labels, "unknown_account", 404)
        body = await self._read(request)
        if body is None:
            response = self._answer(labels, "too_large", 413, f"limit {self.max_body_bytes} B")
            response.force_close()  # rather than read the rest of a body we will not use
            return response
        spec = vendor.webhook
        if not spec.verify(secret.get_secret_value().encode(), body, request.headers):
            log.debug("webhook_rejected", vendor=vendor_name, account=account_name)
            return self._answer(labels, "bad_signature", 401)
        try:
            events = spec.parse(json.loads(body), request.headers)
        except (ValueError, RecursionError, BadEvent) as err:
            # BadEvent texts are the parser's own; a JSON error quotes no payload either.
            reason = str(err) if isinstance(err, BadEvent) else "body is not JSON"
            return self._answer(labels, "bad_request", 400, reason)
        seen = self._seen_for(key, runners)
        # Keys are digests: an event id is vendor text up to the body cap, and 20,000 of them
        # must stay small in memory.
        fresh = [e for e in events if seen.add(event_key(e.kind, e.event_id, body))]
        if events and not fresh:
            return self._answer(labels, "duplicate", 200)
        received_at = self.clock()
        try:
            applied = await runner.deliver(fresh, received_at) if fresh else False
        except Exception:  # a bug must cost this event (the next poll corrects), not the daemon
            log.error(
                "webhook_apply_failed", vendor=vendor_name, account=account_name, exc_info=True
            )
            applied = False
        log.info(
            "webhook",
            vendor=vendor_name,
            account=account_name,
            events=[e.kind for e in fresh],
            connectors=len({e.connector_id for e in fresh}),
            applied=applied,
        )
        return self._answer(labels, "accepted", 200)

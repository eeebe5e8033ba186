"""OpenInt: GET /connector (catalog) and GET /connection, Bearer auth, offset pagination."""

from __future__ import annotations

import hmac
import re
import unicodedata
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any, ClassVar, Literal

from pydantic import SecretStr

from exporter.accounts import CatalogAndConnections
from exporter.errors import BadResponse
from exporter.model import CatalogEntry, Connector, Health, StateSets, first_applying
from exporter.vendors.base import (
    MAX_PAGES,
    BearerToken,
    CatalogAdapter,
    Vendor,
    list_at,
    object_at,
    translate_all,
)
from exporter.vendors.events import BadEvent, Event, Webhook
from exporter.vendors.fields import as_str, opt_str


class OpenintAccount(CatalogAndConnections):
    SECRET_FIELDS: ClassVar[tuple[str, ...]] = ("token",)

    vendor: Literal["openint"]
    token: SecretStr
    base_url: str = "https://api.openint.dev/v1"


CATALOG_PATH = "/connector"
CONNECTIONS_PATH = "/connection"
PAGE_SIZE = 1000  # SPEC §4; the seed allows 0..3000

STATES = StateSets(
    setup=("healthy", "disconnected", "error", "manual", "unknown"),
    catalog=("alpha", "beta", "ga"),
)
# `status_message` explains a non-healthy status (openint_connection.json: string or null). It is
# shown on the status page, cut to this many characters; never a label.
MAX_STATUS_MESSAGE = 300
# Control, format (bidi overrides, zero-width) and line/paragraph separator characters: nothing a
# one-line message needs, and the ones that could garble or disguise what the page shows.
_STRIPPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")  # terminal colour codes from a log line


def status_message(value: object) -> str:
    """The vendor's message as one line of plain text: controls removed, at most 300 characters.

    HTML escaping is the page's job (statuspage.py escapes every value); this only makes the
    text safe to show anywhere as one line.
    """
    if not isinstance(value, str):
        return ""
    value = _ANSI_ESCAPE.sub("", value)
    kept = (
        " " if ch.isspace() else ch
        for ch in value
        if ch.isspace() or unicodedata.category(ch) not in _STRIPPED_CATEGORIES
    )
    text = " ".join("".join(kept).split())
    if len(text) > MAX_STATUS_MESSAGE:
        text = text[: MAX_STATUS_MESSAGE - 1].rstrip() + "…"
    return text


def translate_one(item: Mapping[str, Any]) -> Connector | None:
    """One OpenInt connection object to a Connector. `settings` (credentials) is never read."""
    connector_id = as_str(item.get("id"))
    if not connector_id:
        return None
    status = STATES.normalise(STATES.setup, opt_str(item.get("status")))
    paused = item.get("disabled") is True

    # SPEC §5, openint row: the first rule that applies wins.
    health = first_applying(
        (paused, Health.PAUSED),
        (status == "disconnected", Health.RELINK_NEEDED),
        (status == "error", Health.FAILING),
        (status in ("healthy", "manual"), Health.HEALTHY),
        otherwise=Health.UNKNOWN,
    )

    connector_name = as_str(item.get("connector_name"))
    # Kept only where it explains something: a healthy connection's message is not shown.
    message = "" if health is Health.HEALTHY else status_message(item.get("status_message"))
    return Connector(
        connector_id=connector_id,
        name=connector_name,
        integration=connector_name,
        group=as_str(item.get("connector_config_id")),
        end_user=as_str(item.get("customer_id")),
        health=health,
        setup_state=status,
        paused=paused,
        relink_needed=status == "disconnected",
        status_message=message,
    )


def translate(items: Iterable[Any]) -> list[Connector]:
    """OpenInt connection objects to Connectors; non-objects and id-less items are skipped."""
    return translate_all(items, translate_one)


def translate_catalog(items: Iterable[Any]) -> list[CatalogEntry]:
    """Catalog connector objects (seed: GET /connector) to CatalogEntries, keyed by `name`."""
    out = []
    for item in items:
        if not isinstance(item, Mapping) or not (name := as_str(item.get("name"))):
            continue
        # Older API versions spell it `authType` (docs.openint.dev, get-connection example).
        auth_type = item.get("auth_type", item.get("authType"))
        out.append(
            CatalogEntry(
                connector_id=name,
                name=as_str(item.get("display_name")) or name,
                auth_type=as_str(auth_type),
                status=STATES.normalise(STATES.catalog, opt_str(item.get("stage"))),
            )
        )
    return out


def parse_page(data: Any) -> tuple[list[Any], int | None]:
    """A page's items and the listing's `total` (None when absent or not a count)."""
    items = list_at(data, "items")
    total = object_at(data).get("total")
    if isinstance(total, bool) or not isinstance(total, int) or total < 0:
        total = None
    return items, total


OffsetFetch = Callable[[int], Awaitable[tuple[list[Any], int | None]]]


def item_key(item: Any) -> str:
    """What identifies a listed object (`id` for connections, `name` for catalog entries)."""
    if not isinstance(item, Mapping):
        return ""
    return as_str(item.get("id")) or as_str(item.get("name"))


async def offset_pages(
    fetch: OffsetFetch, limit: int, *, max_pages: int = MAX_PAGES
) -> AsyncIterator[list[Any]]:
    """Yield pages while `offset + len(items) < total`, stopping on an empty page.

    `has_next_page` is never read: the seed documents it as `offset + limit >= total`, which
    is inverted, and some deployments send it wrong. Without a `total`, a short page ends it.
    A page holding only objects seen before means the server ignores `offset`: stop with an
    error rather than report a partial listing as complete.
    """
    seen: set[str] = set()
    offset = 0
    for _ in range(max_pages):
        items, total = await fetch(offset)
        if not items:
            return
        keys = {k for k in map(item_key, items) if k}
        if keys and keys <= seen:
            raise BadResponse("pagination returned a page it had returned before")
        seen |= keys
        yield items
        offset += len(items)
        if total is None:
            if len(items) < limit:
                return
        elif offset >= total:
            return
    raise BadResponse(f"pagination did not end after {max_pages} pages")


class OpenintAdapter(BearerToken, CatalogAdapter[OpenintAccount]):
    states = STATES

    async def _pages(self, path: str) -> AsyncIterator[list[Any]]:
        async def fetch(offset: int) -> tuple[list[Any], int | None]:
            params = {"limit": PAGE_SIZE, "offset": offset}
            return parse_page(await self.get(path, params))

        async for items in offset_pages(fetch, PAGE_SIZE):
            yield items

    async def catalog(self) -> list[CatalogEntry]:
        return [e async for items in self._pages(CATALOG_PATH) for e in translate_catalog(items)]

    async def connections(self) -> list[Connector]:
        return [
            c
            async for items in self._pages(CONNECTIONS_PATH)
            for c in self.translated(items, translate_one)
        ]


# Webhooks: OpenInt documents connection events but no signing scheme, so the sender proves
# itself with the shared secret alone, as `Authorization: Bearer <secret>`. Weaker than an
# HMAC: the body is not bound to the secret, and anyone who sees one request (a TLS-terminating
# proxy's log) can send others. Body: `{"id", "name", "data": {"connection": {...}}}` with the
# connection object as GET /connection lists it (or `data.connection_id` plus its fields).
def verify_webhook(secret: bytes, body: bytes, headers: Mapping[str, str]) -> bool:
    presented = headers.get("Authorization", "")
    if not presented.startswith("Bearer "):
        return False
    return hmac.compare_digest(presented[7:].strip().encode(), secret)


def sign_webhook(secret: bytes, body: bytes) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret.decode()}"}


def parse_webhook(data: Any, headers: Mapping[str, str]) -> list[Event]:
    body = data if isinstance(data, Mapping) else {}
    name = as_str(body.get("name")) or as_str(body.get("type"))
    if not name:
        raise BadEvent("no event `name`")
    payload = body.get("data")
    payload = payload if isinstance(payload, Mapping) else {}
    connection = payload.get("connection")
    connection = dict(connection) if isinstance(connection, Mapping) else {}
    connection_id = as_str(connection.get("id")) or as_str(payload.get("connection_id"))
    if not connection_id:
        return []
    # `settings` holds the connection's credentials: never kept, never read.
    patch = {k: v for k, v in connection.items() if k not in ("settings", "id")}
    for key in ("status", "disabled"):
        if key in payload:
            patch[key] = payload[key]
    return [
        Event(event_id=as_str(body.get("id")), connector_id=connection_id, kind=name, patch=patch)
    ]


WEBHOOK = Webhook(
    verify=verify_webhook,
    parse=parse_webhook,
    sign=sign_webhook,
    docs="https://docs.openint.dev (connection events; no signature scheme documented)",
)
# OpenInt documents no rate limit; the default floor keeps the exporter a polite client.
MIN_POLL_INTERVAL_SECONDS = 60.0
RATE_LIMIT = "OpenInt publishes no rate limit; the exporter stays a polite client"

VENDOR = Vendor(
    "openint",
    OpenintAccount,
    OpenintAdapter,
    webhook=WEBHOOK,
    min_poll_interval=MIN_POLL_INTERVAL_SECONDS,
    rate_limit=RATE_LIMIT,
)

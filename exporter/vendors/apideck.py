"""Apideck: the connector catalog and Vault consumers' connections, Bearer + app id, cursors."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from functools import partial
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import quote

from pydantic import Field, SecretStr

from exporter.accounts import CatalogAndConnections
from exporter.errors import RequestRejected
from exporter.model import CatalogEntry, Connector, Health, StateSets, first_applying
from exporter.vendors.base import (
    ApiClient,
    CatalogAdapter,
    Vendor,
    bearer,
    cursor_at,
    list_at,
    object_at,
    translate_all,
)
from exporter.vendors.events import BadEvent, Event, Webhook, digest_matches, hmac_sha256
from exporter.vendors.fields import as_float, as_list, as_mapping, as_str, opt_str, parse_timestamp

# Consumer detail requests (one per consumer, SPEC §4) run this many at a time by default: at
# 150 ms a request, 1,000 consumers take ~19 s instead of 150 s one after another.
DEFAULT_MAX_CONCURRENCY = 8
MIN_CONCURRENCY = 1
MAX_CONCURRENCY = 64


class ApideckAccount(CatalogAndConnections):
    # app_id names the Unify application (it is shown in dashboards and URLs) and grants nothing
    # without the key, so it is not treated as a secret; it still never becomes a label.
    SECRET_FIELDS: ClassVar[tuple[str, ...]] = ("api_key",)

    vendor: Literal["apideck"]
    api_key: SecretStr
    app_id: Annotated[str, Field(min_length=1)]
    base_url: str = "https://unify.apideck.com"
    # SPEC §4/§6.1: consumer detail requests in flight at once.
    max_concurrency: Annotated[int, Field(ge=MIN_CONCURRENCY, le=MAX_CONCURRENCY)] = (
        DEFAULT_MAX_CONCURRENCY
    )


CATALOG_PATH = "/connector/connectors"
CONSUMERS_PATH = "/vault/consumers"
PAGE_SIZE = 200  # the API's maximum (seed: "Minimum 1, Maximum 200, Default 20")

STATES = StateSets(
    setup=("available", "added", "authorized", "callable", "invalid"),
    # The catalog sends `early-access`; StateSets.normalise turns the hyphen into `_`.
    catalog=("live", "beta", "early_access", "development", "considering"),
)

# Connection `health` values (vault.yml ConnectionHealth) grouped by the SPEC §5 apideck row.
RELINK_HEALTHS = frozenset({"needs_auth", "revoked", "needs_consent"})
# `pending_confirmation` is not in the SPEC row; vault.yml says an unconfirmed connection "is
# not callable yet", which is what the row's `incomplete` rule is about.
INCOMPLETE_HEALTHS = frozenset({"missing_settings", "pending_confirmation"})
DEGRADED_HEALTHS = frozenset({"degraded", "pending_refresh"})


def parse_millis(value: object) -> float | None:
    """An Apideck refresh timestamp as Unix seconds; None for absent, null or 0 ("none").

    vault.yml (apideck-libraries/openapi-specs) documents `credentials_expire_at` and
    `last_refresh_failed_at` as Unix milliseconds with 0 meaning none on `Connection`, but as
    nullable ISO 8601 strings on the `ConsumerConnection` embedded in a consumer. Both are
    accepted; a bare number is always milliseconds.
    """
    if isinstance(value, str):
        text = value.strip()
        # str.isdigit() is also true of "²"; int() refuses those and 4,300+ digit strings.
        if not (text.isascii() and text.isdigit()):
            return parse_timestamp(text)
        value = float(text)
    millis = as_float(value)  # None for null, booleans, non-numbers, past float range
    return millis / 1000.0 if millis is not None and millis > 0 else None


def translate_connection(consumer_id: str, item: Mapping[str, Any]) -> Connector | None:
    """One connection of one Vault consumer to a Connector; None when it has no id."""
    connection_id = as_str(item.get("id"))
    if not connection_id or not consumer_id:
        return None
    state = STATES.normalise(STATES.setup, opt_str(item.get("state")))
    raw_health = opt_str(item.get("health"))
    health_value = raw_health.strip().lower() if raw_health else None
    paused = item.get("enabled") is False
    relink = state == "invalid" or health_value in RELINK_HEALTHS

    # SPEC §5, apideck row: the first rule that applies wins.
    not_callable = state is not None and state != "callable"
    health = first_applying(
        (paused, Health.PAUSED),
        (relink, Health.RELINK_NEEDED),
        (health_value in INCOMPLETE_HEALTHS or not_callable, Health.INCOMPLETE),
        (health_value in DEGRADED_HEALTHS, Health.DEGRADED),
        # neither field sent: nothing to judge by
        (state is None and health_value is None, Health.UNKNOWN),
        otherwise=Health.HEALTHY,
    )

    return Connector(
        connector_id=f"{consumer_id}/{connection_id}",
        name=as_str(item.get("name")),
        integration=as_str(item.get("service_id")),
        group=as_str(item.get("unified_api")),
        end_user=consumer_id,
        health=health,
        setup_state=state,
        paused=paused,
        relink_needed=relink,
        last_failure=parse_millis(item.get("last_refresh_failed_at")),
        credential_expiry=parse_millis(item.get("credentials_expire_at")),
    )


def translate_consumer(consumer: Mapping[str, Any]) -> list[Connector]:
    """The connections embedded in one consumer object. Connection `settings` are never read."""
    consumer_id = as_str(consumer.get("consumer_id"))
    return translate_all(
        as_list(consumer.get("connections")), lambda item: translate_connection(consumer_id, item)
    )


def translate_catalog(items: Iterable[Any]) -> list[CatalogEntry]:
    """Catalog connector objects (seed: List Connectors) to CatalogEntries."""
    out = []
    for item in items:
        if not isinstance(item, Mapping) or not (connector_id := as_str(item.get("id"))):
            continue
        out.append(
            CatalogEntry(
                connector_id=connector_id,
                name=as_str(item.get("name")),
                auth_type=as_str(item.get("auth_type")),
                status=STATES.normalise(STATES.catalog, opt_str(item.get("status"))),
            )
        )
    return out


def parse_page(data: Any) -> tuple[list[Any], str | None]:
    """A list page's `data` and its next cursor (`meta.cursors.next`, null at the end)."""
    return list_at(data, "data"), cursor_at(data, "meta.cursors.next")


def parse_consumer(data: Any) -> Mapping[str, Any]:
    """The consumer object of a `GET /vault/consumers/{consumer_id}` response."""
    return object_at(data, "data")


class ApideckAdapter(CatalogAdapter[ApideckAccount]):
    states = STATES

    @staticmethod
    def headers(account: ApideckAccount) -> dict[str, str]:
        return bearer(account.api_key, **{"x-apideck-app-id": account.app_id})

    def __init__(self, account: ApideckAccount, api: ApiClient) -> None:
        super().__init__(account, api)
        # Every request of a poll takes a slot, listing pages included: Apideck sees at most
        # `max_concurrency` requests of this account at once.
        self._slots = asyncio.Semaphore(account.max_concurrency)

    async def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        async with self._slots:
            return await self.api.get_json(path, params)

    def _pages(self, path: str) -> AsyncIterator[list[Any]]:
        return self.cursor_listing(path, parse_page, ("limit", PAGE_SIZE))

    async def _consumer(self, consumer_id: str) -> Mapping[str, Any] | None:
        """One consumer with its connections; None when it was deleted since the listing."""
        path = f"{CONSUMERS_PATH}/{quote(consumer_id, safe='')}"
        try:
            return parse_consumer(await self.get(path))
        except RequestRejected as err:
            if err.status == 404:
                return None
            raise

    def _translate_consumer(self, consumer_id: str, consumer: Mapping[str, Any]) -> list[Connector]:
        connections = as_list(consumer.get("connections"))
        return self.translated(connections, partial(translate_connection, consumer_id))

    async def catalog(self) -> list[CatalogEntry]:
        return [e async for items in self._pages(CATALOG_PATH) for e in translate_catalog(items)]

    async def connections(self) -> list[Connector]:
        """Every listed consumer's connections, in listing order.

        SPEC §4 reads the connections embedded in each consumer. vault.yml's GetConsumersResponse
        items carry only `services`, not `connections`; those come with
        GET /vault/consumers/{consumer_id} (schema Consumer). Embedded connections are used when
        the listing has them; the detail requests run `max_concurrency` at a time while the
        listing is still being paged, and all of them share the client's 429 pause.
        """
        slots: list[list[Connector]] = []  # one per listed consumer: the order is the listing's
        jobs: asyncio.Queue[tuple[int, str] | None] = asyncio.Queue()

        async def worker() -> None:
            while (job := await jobs.get()) is not None:
                index, consumer_id = job
                detail = await self._consumer(consumer_id)
                if detail is not None:
                    slots[index] = self._translate_consumer(consumer_id, detail)

        workers = [asyncio.create_task(worker()) for _ in range(self.account.max_concurrency)]
        try:
            async for consumers in self._pages(CONSUMERS_PATH):
                for consumer in consumers:
                    if not isinstance(consumer, Mapping):
                        continue
                    consumer_id = as_str(consumer.get("consumer_id"))
                    if not consumer_id:
                        continue
                    if isinstance(consumer.get("connections"), list):
                        slots.append(self._translate_consumer(consumer_id, consumer))
                    else:
                        slots.append([])
                        jobs.put_nowait((len(slots) - 1, consumer_id))
                if any(w.done() for w in workers):
                    break  # a detail request failed the poll: stop listing, report it below
            for _ in workers:
                jobs.put_nowait(None)
            await asyncio.gather(*workers)
        finally:
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
        return [c for slot in slots for c in slot]


# Webhooks (developers.apideck.com/guides/webhook-signature-verification and the Vault API's
# "Webhook Events" reference): `x-apideck-signature` is the HMAC-SHA256, keyed with the
# account's API key, of the body with every object's keys sorted recursively (array order
# kept); `x-apideck-idempotency-key` identifies the event. The body is `{"payload": {event_id,
# event_type, entity_id, entity (the Connection), occurred_at, ...}}`. The guide's examples do
# not fix the digest's encoding: hex, base64 and base64url are all accepted.
SIGNATURE_HEADER = "x-apideck-signature"
IDEMPOTENCY_HEADER = "x-apideck-idempotency-key"


def canonical(body: bytes) -> bytes | None:
    """The body as Apideck signs it: keys sorted at every level, compact, UTF-8 as is."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # checked before the signature: anyone's bytes
        return None
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def verify_webhook(secret: bytes, body: bytes, headers: Mapping[str, str]) -> bool:
    presented = headers.get(SIGNATURE_HEADER)
    sorted_body = canonical(body)
    ok = digest_matches(hmac_sha256(secret, body), presented)
    if sorted_body is not None:
        ok |= digest_matches(hmac_sha256(secret, sorted_body), presented)
    return ok


def sign_webhook(secret: bytes, body: bytes) -> dict[str, str]:
    digest = hmac_sha256(secret, canonical(body) or body)
    return {SIGNATURE_HEADER: base64.b64encode(digest).decode()}


def _event_patch(event_type: str, entity: Mapping[str, Any], occurred: float) -> dict[str, Any]:
    """The Connection fields an event changes: the entity it carries, plus what its name says."""
    # Connection `settings` can hold credentials; the translation never reads them, and an
    # event must not bring them into memory either.
    patch: dict[str, Any] = {k: v for k, v in entity.items() if k != "settings"}
    if event_type.endswith(".revoked"):
        patch["health"] = "revoked"
    elif event_type.endswith(".token_refresh.failed"):
        patch["last_refresh_failed_at"] = int(occurred * 1000)
    elif event_type.endswith(".disabled"):
        patch["enabled"] = False
    elif event_type.endswith(".callable"):
        patch["state"] = "callable"
    return patch


def parse_webhook(data: Any, headers: Mapping[str, str]) -> list[Event]:
    payload = as_mapping(as_mapping(data).get("payload"))
    event_type = as_str(payload.get("event_type"))
    if not event_type:
        raise BadEvent("no `payload.event_type`")
    if not event_type.startswith("vault.connection."):
        return []  # unified-API data events (crm.contact.updated, ...) change no connection
    entity = as_mapping(payload.get("entity"))
    consumer_id = as_str(entity.get("consumer_id")) or as_str(payload.get("consumer_id"))
    connection_id = as_str(entity.get("id")) or as_str(payload.get("entity_id"))
    if not consumer_id or not connection_id:
        return []
    occurred = parse_timestamp(payload.get("occurred_at")) or time.time()
    event_id = as_str(payload.get("event_id")) or headers.get(IDEMPOTENCY_HEADER, "")
    return [
        Event(
            event_id=event_id,
            connector_id=f"{consumer_id}/{connection_id}",
            kind=event_type,
            patch=_event_patch(event_type, entity, occurred),
        )
    ]


WEBHOOK = Webhook(
    verify=verify_webhook,
    parse=parse_webhook,
    sign=sign_webhook,
    docs="https://developers.apideck.com/guides/webhook-signature-verification",
)
# Apideck publishes no Unify limit of its own (help.apideck.com, "Is there a rate limit for
# Unify?"), but a poll costs one request per Vault consumer, so a fast interval multiplies quickly.
MIN_POLL_INTERVAL_SECONDS = 60.0
RATE_LIMIT = (
    "Apideck publishes no limit of its own, but each poll makes one request per Vault consumer"
)

VENDOR = Vendor(
    "apideck",
    ApideckAccount,
    ApideckAdapter,
    webhook=WEBHOOK,
    min_poll_interval=MIN_POLL_INTERVAL_SECONDS,
    rate_limit=RATE_LIMIT,
)

"""Apideck: the connector catalog and Vault consumers' connections, Bearer + app id, cursors."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import quote

from pydantic import Field, SecretStr

from exporter.accounts import CatalogAndConnections
from exporter.errors import RequestRejected
from exporter.model import CatalogEntry, Connector, Health, PollResult, StateSets
from exporter.vendors.base import (
    Adapter,
    Vendor,
    cursor_pages,
    expect_list,
    expect_mapping,
    optional_cursor,
    translate_all,
)
from exporter.vendors.fields import as_float, as_list, as_mapping, as_str, opt_str, parse_timestamp


class ApideckAccount(CatalogAndConnections):
    # app_id names the Unify application (it is shown in dashboards and URLs) and grants nothing
    # without the key, so it is not treated as a secret; it still never becomes a label.
    SECRET_FIELDS: ClassVar[tuple[str, ...]] = ("api_key",)

    vendor: Literal["apideck"]
    api_key: SecretStr
    app_id: Annotated[str, Field(min_length=1)]
    base_url: str = "https://unify.apideck.com"


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
    if paused:
        health = Health.PAUSED
    elif relink:
        health = Health.RELINK_NEEDED
    elif health_value in INCOMPLETE_HEALTHS or (state is not None and state != "callable"):
        health = Health.INCOMPLETE
    elif health_value in DEGRADED_HEALTHS:
        health = Health.DEGRADED
    elif state is None and health_value is None:
        health = Health.UNKNOWN  # neither field sent: nothing to judge by
    else:
        health = Health.HEALTHY

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
    body = expect_mapping(data, "response")
    items = expect_list(body.get("data"), "response.data")
    cursors = as_mapping(as_mapping(body.get("meta")).get("cursors"))
    return items, optional_cursor(cursors.get("next"))


def parse_consumer(data: Any) -> Mapping[str, Any]:
    """The consumer object of a `GET /vault/consumers/{consumer_id}` response."""
    return expect_mapping(expect_mapping(data, "response").get("data"), "response.data")


class ApideckAdapter(Adapter[ApideckAccount]):
    states = STATES

    @staticmethod
    def headers(account: ApideckAccount) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {account.api_key.get_secret_value()}",
            "x-apideck-app-id": account.app_id,
            "Accept": "application/json",
        }

    async def _pages(self, path: str) -> AsyncIterator[list[Any]]:
        async def fetch(cursor: str | None) -> tuple[list[Any], str | None]:
            return parse_page(await self.api.get_json(path, {"limit": PAGE_SIZE, "cursor": cursor}))

        async for items in cursor_pages(fetch):
            yield items

    async def _consumer(self, consumer_id: str) -> Mapping[str, Any] | None:
        """One consumer with its connections; None when it was deleted since the listing."""
        path = f"{CONSUMERS_PATH}/{quote(consumer_id, safe='')}"
        try:
            return parse_consumer(await self.api.get_json(path))
        except RequestRejected as err:
            if err.status == 404:
                return None
            raise

    async def poll(self) -> PollResult:
        catalog: list[CatalogEntry] = []
        connectors: list[Connector] = []
        if self.account.catalog:
            async for items in self._pages(CATALOG_PATH):
                catalog.extend(translate_catalog(items))
        if self.account.connections:
            async for consumers in self._pages(CONSUMERS_PATH):
                for consumer in consumers:
                    if not isinstance(consumer, Mapping):
                        continue
                    consumer_id = as_str(consumer.get("consumer_id"))
                    if not consumer_id:
                        continue
                    # SPEC §4 reads the connections embedded in each consumer. vault.yml's
                    # GetConsumersResponse items carry only `services`, not `connections`;
                    # those come with GET /vault/consumers/{consumer_id} (schema Consumer).
                    # Embedded connections are used when the listing has them.
                    if not isinstance(consumer.get("connections"), list):
                        detail = await self._consumer(consumer_id)
                        if detail is None:
                            continue
                        consumer = {**detail, "consumer_id": consumer_id}
                    connectors.extend(translate_consumer(consumer))
        return PollResult(connectors=tuple(connectors), catalog=tuple(catalog))


VENDOR = Vendor("apideck", ApideckAccount, ApideckAdapter)

"""Bindbee: GET /api/{category}/v1/connectors per category, Bearer auth, cursor pagination."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, SecretStr, field_validator

from exporter.accounts import AccountBase
from exporter.model import Connector, Health, PollResult, StateSets
from exporter.vendors.base import (
    Adapter,
    Vendor,
    cursor_pages,
    expect_list,
    expect_mapping,
    optional_cursor,
    translate_all,
)
from exporter.vendors.fields import as_str, parse_timestamp

BindbeeCategory = Literal["hris", "ats", "lms"]
BINDBEE_CATEGORIES: tuple[BindbeeCategory, ...] = ("hris", "ats", "lms")


class BindbeeAccount(AccountBase):
    SECRET_FIELDS: ClassVar[tuple[str, ...]] = ("token",)

    vendor: Literal["bindbee"]
    token: SecretStr
    base_url: str = "https://api.bindbee.dev"
    categories: Annotated[list[BindbeeCategory], Field(min_length=1)] = Field(
        default_factory=lambda: list(BINDBEE_CATEGORIES)
    )

    @field_validator("categories")
    @classmethod
    def _unique(cls, value: list[BindbeeCategory]) -> list[BindbeeCategory]:
        return list(dict.fromkeys(value))


PAGE_SIZE = 200  # the API's maximum (seed: "Maximum size is 200")

STATES = StateSets(
    setup=("complete", "incomplete", "relink_needed"),
    sync=("syncing", "done", "failed"),
)


def translate_one(item: Mapping[str, Any], category: str) -> Connector | None:
    """One Bindbee connector object to a Connector. `connector_token` is never read."""
    connector_id = as_str(item.get("id"))
    if not connector_id:
        return None
    raw_status = item.get("status")
    setup = STATES.normalise(STATES.setup, raw_status if isinstance(raw_status, str) else None)
    raw_sync = item.get("sync_status")
    sync = STATES.normalise(STATES.sync, raw_sync if isinstance(raw_sync, str) else None)
    # is_active is required by the schema; a missing or null one is not evidence of a pause.
    paused = item.get("is_active") is False

    if paused:
        health = Health.PAUSED
    elif setup == "relink_needed":
        health = Health.RELINK_NEEDED
    elif setup == "incomplete":
        health = Health.INCOMPLETE
    elif sync == "failed":
        health = Health.FAILING
    else:
        health = Health.HEALTHY

    slug = as_str(item.get("integration_slug"))
    return Connector(
        connector_id=connector_id,
        name=slug,
        integration=slug,
        group=category,
        end_user=as_str(item.get("end_user")),
        health=health,
        setup_state=setup,
        sync_state=sync,
        paused=paused,
        relink_needed=setup == "relink_needed",
        last_sync_start=parse_timestamp(item.get("last_sync_start_time")),
        next_sync=parse_timestamp(item.get("next_sync_start_time")),
        relink_needed_since=parse_timestamp(item.get("relink_needed_at")),
    )


def translate(items: Iterable[Any], category: str) -> list[Connector]:
    """Bindbee connector objects of one category to Connectors."""
    return translate_all(items, lambda item: translate_one(item, category))


def parse_page(data: Any) -> tuple[list[Any], str | None]:
    body = expect_mapping(data, "response")
    return expect_list(body.get("items"), "response.items"), optional_cursor(body.get("cursor"))


class BindbeeAdapter(Adapter[BindbeeAccount]):
    states = STATES

    @staticmethod
    def headers(account: BindbeeAccount) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {account.token.get_secret_value()}",
            "Accept": "application/json",
        }

    async def poll(self) -> PollResult:
        connectors: list[Connector] = []
        for category in self.account.categories:
            path = f"/api/{category}/v1/connectors"

            async def fetch(cursor: str | None, path: str = path) -> tuple[list[Any], str | None]:
                params = {"page_size": PAGE_SIZE, "cursor": cursor}
                return parse_page(await self.api.get_json(path, params))

            async for items in cursor_pages(fetch):
                connectors.extend(translate(items, category))
        return PollResult(connectors=tuple(connectors))


VENDOR = Vendor("bindbee", BindbeeAccount, BindbeeAdapter)

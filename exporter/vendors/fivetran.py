"""Fivetran: GET /v1/connections (or legacy /v1/connectors), Basic auth, cursor pagination."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Literal

from pydantic import SecretStr

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
from exporter.vendors.fields import as_float, as_mapping, as_str, opt_str, parse_timestamp


class FivetranAccount(AccountBase):
    SECRET_FIELDS: ClassVar[tuple[str, ...]] = ("api_key", "api_secret")

    vendor: Literal["fivetran"]
    api_key: SecretStr
    api_secret: SecretStr
    base_url: str = "https://api.fivetran.com"
    endpoint: Literal["connections", "connectors"] = "connections"


PAGE_SIZE = 1000  # the API's maximum (seed: "Accepts a number in the range 1..1000")
# `version=2` selects the current response shape; without it the API answers in v1 shape.
ACCEPT = "application/json;version=2"

STATES = StateSets(
    setup=("connected", "incomplete", "broken"),
    sync=("scheduled", "syncing", "paused", "rescheduled"),
    update=("on_schedule", "delayed"),
)


def _count(value: Any) -> int | None:
    return len(value) if isinstance(value, list) else None


def translate_one(item: Mapping[str, Any]) -> Connector | None:
    """One Fivetran connection object to a Connector; None when it has no id."""
    connector_id = as_str(item.get("id"))
    if not connector_id:
        return None
    status = as_mapping(item.get("status"))
    setup = STATES.normalise(STATES.setup, opt_str(status.get("setup_state")))
    sync = STATES.normalise(STATES.sync, opt_str(status.get("sync_state")))
    update = STATES.normalise(STATES.update, opt_str(status.get("update_state")))
    paused = item.get("paused") is True
    succeeded = parse_timestamp(item.get("succeeded_at"))
    failed = parse_timestamp(item.get("failed_at"))
    tasks = _count(status.get("tasks"))
    frequency = item.get("sync_frequency")

    # SPEC §5, fivetran row: the first rule that applies wins.
    if paused:
        health = Health.PAUSED
    elif setup == "broken":
        health = Health.BROKEN
    elif setup == "incomplete":
        health = Health.INCOMPLETE
    elif failed is not None and (succeeded is None or failed > succeeded):
        health = Health.FAILING
    elif update == "delayed" or sync == "rescheduled" or (tasks or 0) > 0:
        health = Health.DEGRADED
    else:
        health = Health.HEALTHY

    return Connector(
        connector_id=connector_id,
        name=as_str(item.get("schema")),
        integration=as_str(item.get("service")),
        group=as_str(item.get("group_id")),
        end_user="",
        health=health,
        setup_state=setup,
        sync_state=sync,
        update_state=update,
        paused=paused,
        relink_needed=False,  # Fivetran has no re-authentication state of its own
        last_success=succeeded,
        last_failure=failed,
        next_sync=parse_timestamp(status.get("rescheduled_for")),
        sync_frequency=None if (minutes := as_float(frequency)) is None else minutes * 60,
        warnings=_count(status.get("warnings")),
        tasks=tasks,
    )


def translate(items: Iterable[Any]) -> list[Connector]:
    """Fivetran connection objects to Connectors; non-objects and id-less items are skipped."""
    return translate_all(items, translate_one)


def parse_page(data: Any) -> tuple[list[Any], str | None]:
    """A page's items and next cursor. The docs show `next_cursor`; the seed shows `nextCursor`."""
    body = expect_mapping(expect_mapping(data, "response").get("data"), "response.data")
    items = expect_list(body.get("items"), "response.data.items")
    cursor = optional_cursor(body.get("next_cursor")) or optional_cursor(body.get("nextCursor"))
    return items, cursor


class FivetranAdapter(Adapter[FivetranAccount]):
    states = STATES

    @staticmethod
    def headers(account: FivetranAccount) -> dict[str, str]:
        pair = f"{account.api_key.get_secret_value()}:{account.api_secret.get_secret_value()}"
        return {
            "Authorization": "Basic " + base64.b64encode(pair.encode()).decode(),
            "Accept": ACCEPT,
        }

    async def poll(self) -> PollResult:
        path = f"/v1/{self.account.endpoint}"

        async def fetch(cursor: str | None) -> tuple[list[Any], str | None]:
            return parse_page(await self.api.get_json(path, {"limit": PAGE_SIZE, "cursor": cursor}))

        connectors: list[Connector] = []
        async for items in cursor_pages(fetch):
            connectors.extend(translate(items))
        return PollResult(connectors=tuple(connectors))


VENDOR = Vendor("fivetran", FivetranAccount, FivetranAdapter)

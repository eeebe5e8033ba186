"""Bindbee: GET /api/{category}/v1/connectors per category, Bearer auth, cursor pagination."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterable, Mapping
from functools import partial
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, SecretStr, field_validator

from exporter.accounts import AccountBase
from exporter.model import Connector, Health, PollResult, StateSets, first_applying
from exporter.vendors.base import (
    Adapter,
    BearerToken,
    Vendor,
    cursor_at,
    list_at,
    translate_all,
)
from exporter.vendors.events import BadEvent, Event, Webhook, digest_matches, hmac_sha256
from exporter.vendors.fields import as_float, as_str, parse_timestamp

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
    # SPEC §6.1: false drops connectors marked `is_test_connector` from the snapshot.
    include_test_connectors: bool = True

    @field_validator("categories")
    @classmethod
    def _unique(cls, value: list[BindbeeCategory]) -> list[BindbeeCategory]:
        return list(dict.fromkeys(value))


PAGE_SIZE = 200  # the API's maximum (seed: "Maximum size is 200")
# HRIS listings' `sync_progress` is an integer percentage (bindbee_connectors.json,
# HrisConnectorResponse); the exporter exposes a 0..1 ratio.
PERCENT = 100.0

STATES = StateSets(
    setup=("complete", "incomplete", "relink_needed"),
    sync=("syncing", "done", "failed"),
)


def progress_ratio(value: object) -> float | None:
    """`sync_progress` (percent) as a ratio clamped to 0..1; None when absent or not a number."""
    percent = as_float(value)  # None for null, booleans, strings, NaN and past-float-range
    if percent is None:
        return None
    return min(max(percent / PERCENT, 0.0), 1.0)


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

    health = first_applying(
        (paused, Health.PAUSED),
        (setup == "relink_needed", Health.RELINK_NEEDED),
        (setup == "incomplete", Health.INCOMPLETE),
        (sync == "failed", Health.FAILING),
        otherwise=Health.HEALTHY,
    )

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
        sync_progress=progress_ratio(item.get("sync_progress")),
        test=test if isinstance(test := item.get("is_test_connector"), bool) else None,
    )


def translate(items: Iterable[Any], category: str) -> list[Connector]:
    """Bindbee connector objects of one category to Connectors."""
    return translate_all(items, lambda item: translate_one(item, category))


def parse_page(data: Any) -> tuple[list[Any], str | None]:
    return list_at(data, "items"), cursor_at(data, "cursor")


class BindbeeAdapter(BearerToken, Adapter[BindbeeAccount]):
    states = STATES

    async def poll(self) -> PollResult:
        connectors: list[Connector] = []
        for category in self.account.categories:
            path = f"/api/{category}/v1/connectors"
            async for items in self.cursor_listing(path, parse_page, ("page_size", PAGE_SIZE)):
                connectors.extend(self.translated(items, partial(translate_one, category=category)))
        if not self.account.include_test_connectors:
            connectors = [c for c in connectors if c.test is not True]
        return PollResult(connectors=tuple(connectors))


# Webhooks (docs.bindbee.dev/webhooks/overview): `X-Bindbee-Webhook-Signature` is "an encoded
# combination" of the organisation's signature key and the payload; read as the HMAC-SHA256 of
# the raw body keyed with that key, base64 (hex and base64url accepted too: the page does not
# name the encoding). Body: `webhook.event` (connector_sync_started, connector_synced,
# connector_sync_error, ...), `connector` (the connector object), `data`. No event id: a
# redelivery repeats the body, whose hash is the key.
SIGNATURE_HEADER = "X-Bindbee-Webhook-Signature"
SYNC_EVENTS = {
    "connector_sync_started": ("syncing", None),
    "connector_synced": ("done", "success"),
    "connector_sync_error": ("failed", "failure"),
}


def verify_webhook(secret: bytes, body: bytes, headers: Mapping[str, str]) -> bool:
    return digest_matches(hmac_sha256(secret, body), headers.get(SIGNATURE_HEADER))


def sign_webhook(secret: bytes, body: bytes) -> dict[str, str]:
    return {SIGNATURE_HEADER: base64.b64encode(hmac_sha256(secret, body)).decode()}


def parse_webhook(data: Any, headers: Mapping[str, str]) -> list[Event]:
    body = data if isinstance(data, Mapping) else {}
    hook = body.get("webhook") or body.get("hook")
    name = as_str(hook.get("event")) if isinstance(hook, Mapping) else ""
    if not name:
        raise BadEvent("no `webhook.event`")
    connector = body.get("connector")
    connector_id = as_str(connector.get("id")) if isinstance(connector, Mapping) else ""
    if name not in SYNC_EVENTS or not connector_id:
        return []  # data-model changes say nothing about the connector's health
    sync_status, result = SYNC_EVENTS[name]
    now = time.time()
    patch: dict[str, Any] = {"sync_status": sync_status}
    if result is None:
        patch["last_sync_start_time"] = now
    return [
        Event(
            event_id="",
            connector_id=connector_id,
            kind=name,
            patch=patch,
            sync_start=now if result is None else None,
            sync_end=now if result is not None else None,
            sync_result=result,
        )
    ]


WEBHOOK = Webhook(
    verify=verify_webhook,
    parse=parse_webhook,
    sign=sign_webhook,
    docs="https://docs.bindbee.dev/webhooks/overview",
)
# Bindbee allows 200 requests a minute (docs.bindbee.dev, API reference "Rate limits").
MIN_POLL_INTERVAL_SECONDS = 60.0
RATE_LIMIT = "Bindbee allows 200 API requests a minute"

VENDOR = Vendor(
    "bindbee",
    BindbeeAccount,
    BindbeeAdapter,
    webhook=WEBHOOK,
    min_poll_interval=MIN_POLL_INTERVAL_SECONDS,
    rate_limit=RATE_LIMIT,
)

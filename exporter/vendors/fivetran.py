"""Fivetran: GET /v1/connections (or legacy /v1/connectors), Basic auth, cursor pagination."""

from __future__ import annotations

import base64
import hmac
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

from pydantic import SecretStr

from exporter.accounts import AccountBase
from exporter.model import Connector, Health, PollResult, StateSets, first_applying
from exporter.vendors.base import Adapter, Vendor, cursor_at, list_at, translate_all
from exporter.vendors.events import BadEvent, Event, Webhook, hmac_sha256
from exporter.vendors.fields import (
    as_float,
    as_list,
    as_mapping,
    as_str,
    opt_str,
    parse_timestamp,
)


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
    # SPEC §6.1; fivetran-mcp list_connections.json types `status.schema_status` as a string.
    schema=("ready", "blocked_on_capture", "blocked_on_customer"),
)
# `schedule_type` (required in list_connections.json): `auto` or `manual`; a manual connection
# only syncs when triggered through the API, so it never syncs by itself.
MANUAL_SCHEDULE = "manual"
# `status.tasks[]` / `status.warnings[]` codes become `connector_issue_info{kind, code}` labels.
# Codes are Fivetran's own identifiers, but a label is bounded anyway: at most this many per
# connector and this long each, so that a vendor sending free text cannot blow up the series.
ISSUE_KINDS = (("task", "tasks"), ("warning", "warnings"))
MAX_ISSUES_PER_CONNECTOR = 20
MAX_CODE_LENGTH = 64
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_NOT_WORD = re.compile(r"[^a-z0-9]+")


def _count(value: Any) -> int | None:
    return len(value) if isinstance(value, list) else None


def issue_code(value: object) -> str:
    """A task or warning code as a lower snake_case label value ("" when there is none)."""
    text = _CAMEL.sub("_", as_str(value).strip())
    return _NOT_WORD.sub("_", text.lower()).strip("_")[:MAX_CODE_LENGTH].rstrip("_")


def _issues(status: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    def found() -> Iterator[tuple[str, str]]:
        for kind, key in ISSUE_KINDS:
            for entry in as_list(status.get(key)):
                if isinstance(entry, Mapping) and (code := issue_code(entry.get("code"))):
                    yield kind, code

    return tuple(sorted(set(found())))[:MAX_ISSUES_PER_CONNECTOR]


def _bool(value: object) -> bool | None:
    return value if isinstance(value, bool) else None


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
    schema = STATES.normalise(STATES.schema, opt_str(status.get("schema_status")))
    # go-fivetran also nests it in `schedule`; the top-level key is the documented one.
    schedule = opt_str(item.get("schedule_type")) or opt_str(
        as_mapping(item.get("schedule")).get("schedule_type")
    )

    # SPEC §5, fivetran row: the first rule that applies wins.
    last_sync_failed = failed is not None and (succeeded is None or failed > succeeded)
    held_up = (
        update == "delayed"
        or sync == "rescheduled"
        or (tasks or 0) > 0
        or schema == "blocked_on_customer"
    )
    health = first_applying(
        (paused, Health.PAUSED),
        (setup == "broken", Health.BROKEN),
        (setup == "incomplete", Health.INCOMPLETE),
        (last_sync_failed, Health.FAILING),
        (held_up, Health.DEGRADED),
        # `other` (a value we do not know) or no setup state at all: nothing to call it
        # healthy by.
        (setup != "connected", Health.UNKNOWN),
        otherwise=Health.HEALTHY,
    )

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
        schema_state=schema,
        manual_schedule=None if schedule is None else schedule.strip().lower() == MANUAL_SCHEDULE,
        historical_sync=_bool(status.get("is_historical_sync")),
        issues=_issues(status),
    )


def translate(items: Iterable[Any]) -> list[Connector]:
    """Fivetran connection objects to Connectors; non-objects and id-less items are skipped."""
    return translate_all(items, translate_one)


def parse_page(data: Any) -> tuple[list[Any], str | None]:
    """A page's items and next cursor. The docs show `next_cursor`; the seed shows `nextCursor`."""
    return list_at(data, "data.items"), cursor_at(data, "data.next_cursor", "data.nextCursor")


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
        connectors: list[Connector] = []
        async for items in self.cursor_listing(path, parse_page, ("limit", PAGE_SIZE)):
            connectors.extend(self.translated(items, translate_one))
        return PollResult(connectors=tuple(connectors))


# Webhooks (fivetran.com/docs/rest-api/getting-started/webhooks): each POST carries
# `X-Fivetran-Signature-256`, the HMAC-SHA256 of the raw body keyed with the webhook's `secret`,
# in hex (Fivetran's examples print it upper case; compared case-blind). Payload: `event`,
# `created`, `connector_id`, `sync_id`, `data` (`sync_end`: `data.status` SUCCESSFUL, FAILURE,
# FAILURE_WITH_TASK, RESCHEDULED or CANCELED).
SIGNATURE_HEADER = "X-Fivetran-Signature-256"
SYNC_END_RESULTS = {
    "successful": "success",
    "failure": "failure",
    "failure_with_task": "failure",
    "rescheduled": "rescheduled",
    "canceled": "canceled",
    "cancelled": "canceled",
}


def verify_webhook(secret: bytes, body: bytes, headers: Mapping[str, str]) -> bool:
    presented = headers.get(SIGNATURE_HEADER, "").strip().lower()
    expected = hmac_sha256(secret, body).hex()
    return bool(presented) and hmac.compare_digest(presented.encode(), expected.encode())


def sign_webhook(secret: bytes, body: bytes) -> dict[str, str]:
    return {SIGNATURE_HEADER: hmac_sha256(secret, body).hex().upper()}


def _event_patch(name: str, data: Mapping[str, Any], created: str) -> tuple[dict[str, Any], str]:
    """The connection-object fields an event changes, and the sync result it reports."""
    if name == "sync_start":
        return {"status": {"sync_state": "syncing"}}, ""
    if name == "sync_end":
        raw = as_str(data.get("status")).strip().lower()
        result = SYNC_END_RESULTS.get(raw, "")
        if result == "success":
            return {"succeeded_at": created, "status": {"sync_state": "scheduled"}}, result
        if result == "failure":
            return {"failed_at": created, "status": {"sync_state": "scheduled"}}, result
        if result == "rescheduled":
            later = data.get("rescheduled_for") or data.get("rescheduledAt")
            return {"status": {"sync_state": "rescheduled", "rescheduled_for": later}}, result
        return {"status": {"sync_state": "scheduled"}}, result
    if name == "connection_failure":
        return {"status": {"setup_state": "broken"}}, ""
    if name == "connection_successful":
        return {"status": {"setup_state": "connected"}}, ""
    if name == "pause_connector":
        return {"paused": True, "status": {"sync_state": "paused"}}, ""
    if name == "resume_connector":
        return {"paused": False, "status": {"sync_state": "scheduled"}}, ""
    return {}, ""  # edits, creations, dbt runs: nothing the listing's health depends on


def parse_webhook(data: Any, headers: Mapping[str, str]) -> list[Event]:
    if not isinstance(data, Mapping):
        raise BadEvent("expected a JSON object")
    name = as_str(data.get("event"))
    if not name:
        raise BadEvent("no `event`")
    connector_id = as_str(data.get("connector_id"))
    if name == "test_event" or not connector_id:
        return []  # Fivetran's creation-time test payload names a placeholder connector
    stamped = as_str(data.get("created"))
    # An event without a usable time happened when it arrived, as far as anyone can tell.
    when = parse_timestamp(stamped) or time.time()
    created = datetime.fromtimestamp(when, UTC).isoformat()
    patch, result = _event_patch(name, as_mapping(data.get("data")), created)
    sync_id = as_str(data.get("sync_id"))
    return [
        Event(
            # Fivetran sends no event id; a sync's start and end share `sync_id`, so the id
            # is the event, the connection, the sync and the time.
            event_id=f"{name}:{connector_id}:{sync_id}:{stamped}" if stamped else "",
            connector_id=connector_id,
            kind=name,
            patch=patch,
            sync_id=sync_id,
            sync_start=when if name == "sync_start" else None,
            sync_end=when if name == "sync_end" else None,
            sync_result=result or None,
        )
    ]


WEBHOOK = Webhook(
    verify=verify_webhook,
    parse=parse_webhook,
    sign=sign_webhook,
    docs="https://fivetran.com/docs/rest-api/getting-started/webhooks",
)
# Fivetran allows 20,000 API requests an hour per account (500 on trial accounts), shared with
# every other tool using that account (fivetran.com/docs/rest-api/rate-limiting).
MIN_POLL_INTERVAL_SECONDS = 60.0
RATE_LIMIT = (
    "Fivetran allows 20,000 API requests an hour per account (500 on trials), shared with every"
    " other tool using the account"
)

VENDOR = Vendor(
    "fivetran",
    FivetranAccount,
    FivetranAdapter,
    webhook=WEBHOOK,
    min_poll_interval=MIN_POLL_INTERVAL_SECONDS,
    rate_limit=RATE_LIMIT,
)

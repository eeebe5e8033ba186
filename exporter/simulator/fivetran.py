"""Fake Fivetran API following seeds/fivetran-list-connectors.txt and the published schema
(tests/schemas/fivetran_list_connections.json)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any, ClassVar

from aiohttp import web

from exporter.simulator import fleets
from exporter.simulator.base import HOUR, At, PageSize, VendorSim, iso, json_body

API_KEY = "sim-key"
API_SECRET = "sim-secret"  # noqa: S105 - the simulator's public demo credential
MAX_LIMIT = 1000
DEFAULT_LIMIT = 100


# Timestamps a connection may not have (never synced, never failed, nothing rescheduled): the
# schema types them as strings without null, so a conforming answer leaves them out; real
# accounts send null (the `out_of_spec` fault).
NULLABLE = ("succeeded_at", "failed_at")
NULLABLE_STATUS = ("rescheduled_for",)


def connection(cid: str, now: float, **overrides: Any) -> dict[str, Any]:
    """A connection object shaped like fivetran_list_connections.json, healthy unless overridden.

    An override of None leaves the field out.
    """
    status: dict[str, Any] = {
        "tasks": [],
        "warnings": [],
        "schema_status": "ready",
        "update_state": "on_schedule",
        "setup_state": "connected",
        "sync_state": "scheduled",
        "is_historical_sync": False,
    }
    status.update(overrides.pop("status", {}))
    item: dict[str, Any] = {
        "id": cid,
        "service": "postgres",
        "schema": cid.replace("ft_", ""),
        "paused": False,
        "status": status,
        # The schema types every `config` value as an object (Fivetran's OpenAPI renders a map
        # of anything that way); real accounts send plain values (the `out_of_spec` fault).
        "config": {"connection": {"host": "db.internal", "port": 5432}},
        "daily_sync_time": "14:00",
        "succeeded_at": iso(now - 0.5 * HOUR),
        "sync_frequency": 360,
        "group_id": "warehouse_prod",
        "connected_by": "user_sim",
        "setup_tests": [{"title": "Connection", "status": "PASSED", "message": "", "details": {}}],
        "source_sync_details": {},
        "service_version": 1,
        "created_at": iso(now - 90 * 24 * HOUR),
        "failed_at": iso(now - 72 * HOUR),
        "networking_method": "Directly",
        "pause_after_trial": False,
        "data_delay_threshold": 0,
        "data_delay_sensitivity": "NORMAL",
        "schedule_type": "auto",
        # Fields a real response carries that the exporter must never expose.
        "connect_card": {
            "token": "eyJ0eXAiOiJKV1QiLCJhbGciOi.sim",
            "uri": "https://example.invalid",
        },
    }
    item.update(overrides)
    for fields, target in ((NULLABLE, item), (NULLABLE_STATUS, status)):
        for field in fields:
            if target.get(field, "") is None:
                del target[field]
    return item


def out_of_spec(item: dict[str, Any]) -> dict[str, Any]:
    """A connection as real accounts send it where that differs from the schema."""
    for field in NULLABLE:
        item.setdefault(field, None)
    for field in NULLABLE_STATUS:
        item["status"].setdefault(field, None)
    config = item.get("config") or {}
    item["config"] = {
        k: v for value in config.values() if isinstance(value, dict) for k, v in value.items()
    }
    for test in item.get("setup_tests") or []:
        test["details"] = ""
    return item


def curated(now: float) -> list[dict[str, Any]]:
    """Every state of SPEC §5's fivetran row and every signal of §6.1, one connector each
    (fleets/fivetran.yaml)."""
    return [connection(entry.pop("id"), now, **entry) for entry in fleets.curated("fivetran", now)]


# The problem states of a generated fleet (base.generate), a steady share each.
VARIANTS: tuple[dict[str, Any], ...] = (
    {"status": {"setup_state": "broken"}},
    {"failed_at": At(-60)},
    {"status": {"update_state": "delayed"}},
    {"paused": True, "status": {"sync_state": "paused"}},
    {"schedule_type": "manual", "succeeded_at": At(-9 * 24 * HOUR)},
    {"status": {"sync_state": "syncing", "is_historical_sync": True}},
    {"status": {"schema_status": "blocked_on_customer"}},
)


def generated(now: float, size: int) -> list[dict[str, Any]]:
    """`size` connectors, mostly healthy with a steady share of every problem state."""

    def make(i: int, overrides: dict[str, Any]) -> dict[str, Any]:
        return connection(f"ft_{i:06d}", now, group_id=f"group_{i % 50:02d}", **overrides)

    return fleets.generate(size, now, VARIANTS, make)


class FivetranSim(VendorSim):
    name = "fivetran"
    api_key = API_KEY
    api_secret = API_SECRET
    healthy_fields: ClassVar[dict[str, Any]] = {
        "paused": False,
        "status": {
            "setup_state": "connected",
            "sync_state": "scheduled",
            "update_state": "on_schedule",
            "schema_status": "ready",
            "is_historical_sync": False,
            "tasks": [],
        },
        "succeeded_at": At(-60),
        "failed_at": At(-24 * HOUR),
    }
    health_fields: ClassVar[dict[str, dict[str, Any]]] = {
        "healthy": {},
        "degraded": {"status": {"update_state": "delayed"}},
        "failing": {"failed_at": At(0)},
        "broken": {"status": {"setup_state": "broken"}, "failed_at": At(0)},
        "incomplete": {"status": {"setup_state": "incomplete"}},
        "paused": {"paused": True, "status": {"sync_state": "paused"}},
    }
    story = (
        ("id", "ft_orders", "broken"),
        ("id", "ft_orders", "healthy"),
        ("id", "ft_crm", "failing"),
        ("id", "ft_crm", "healthy"),
    )

    def fleet(self, now: float, size: int | None) -> list[dict[str, Any]]:
        return curated(now) if size is None else generated(now, size)

    def set_health(self, c: dict[str, Any], health: str, now: float) -> None:
        c["status"].pop("rescheduled_for", None)  # nothing is rescheduled any more
        super().set_health(c, health, now)

    def out_of_spec(self, item: dict[str, Any]) -> dict[str, Any]:
        return out_of_spec(item)

    def authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            pair = base64.b64decode(header[6:], validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        return pair == f"{self.api_key}:{self.api_secret}"

    unauthorized_body: ClassVar[Mapping[str, Any]] = {
        "code": "AuthFailed",
        "message": "Missing or invalid API key or secret",
    }

    page_size = PageSize(
        "limit",
        DEFAULT_LIMIT,
        MAX_LIMIT,
        {"code": "InvalidInput", "message": "limit must be in 1..1000"},
    )

    def add_routes(self, app: web.Application, prefix: str) -> None:
        # /v1/connections uses `next_cursor` (current API); the legacy /v1/connectors answers
        # with `nextCursor` exactly as the seed document shows.
        app.router.add_get(f"{prefix}/v1/connections", self._handler("next_cursor"))
        app.router.add_get(f"{prefix}/v1/connectors", self._handler("nextCursor"))

    def _handler(self, cursor_key: str) -> Any:
        async def list_connections(request: web.Request) -> web.Response:
            response, fault, limit = await self.guard_listing(request)
            if response is not None:
                return response
            items, cursor = self.page(
                list(self.connectors.values()), request.query.get("cursor"), limit, fault
            )
            data: dict[str, Any] = {"items": self.served(items, fault)}
            if cursor:
                data[cursor_key] = cursor
            return json_body({"code": "Success", "message": "Operation performed.", "data": data})

        return list_connections

    def webhook_events(
        self, before: dict[str, Any], after: dict[str, Any], health: str, now: float
    ) -> list[dict[str, Any]]:
        """What Fivetran pushes (rest-api/getting-started/webhooks) for a change to `health`."""
        sync_id = f"sim-{after['id']}-{int(now * 1000)}"

        def event(name: str, at: float, **data: Any) -> dict[str, Any]:
            return {
                "event": name,
                "created": iso(at),
                "connector_type": after["service"],
                "connector_id": after["id"],
                "connector_name": after["schema"],
                "sync_id": sync_id,
                "destination_group_id": after["group_id"],
                "data": data,
            }

        out = []
        if before.get("paused") and health != "paused":
            out.append(event("resume_connector", now))
        if health == "paused":
            out.append(event("pause_connector", now))
        elif health == "broken":
            out.append(event("connection_failure", now))
        elif health == "failing":
            out += [event("sync_start", now - 1), event("sync_end", now, status="FAILURE")]
        elif health == "healthy":
            out += [
                event("connection_successful", now),
                event("sync_start", now - 1),
                event("sync_end", now, status="SUCCESSFUL"),
            ]
        return out


SIMULATOR = FivetranSim

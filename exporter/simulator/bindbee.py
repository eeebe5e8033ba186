"""Fake Bindbee API following seeds/bindbee-list-connectors.txt (HRIS, ATS, LMS) and the published
schema (tests/schemas/bindbee_connectors.json)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, ClassVar

from aiohttp import web

from exporter.simulator import fleets
from exporter.simulator.base import HOUR, At, PageSize, VendorSim, iso, json_body

TOKEN = "sim-token"  # noqa: S105 - the simulator's public demo credential
MAX_PAGE_SIZE = 200
DEFAULT_PAGE_SIZE = 50
CATEGORIES = ("hris", "ats", "lms")
_NS = uuid.UUID("0b1e5a6e-3c52-4a4e-9a39-6a1f2b7c5d10")
# Only the HRIS listing carries these (HrisConnectorResponse); `sync_progress` is how far a
# running sync has got, in percent.
HRIS_FIELDS: dict[str, Any] = {
    "sync_progress": None,
    "total_employees": 412,
    "active_employees": 388,
    "avg_sync_duration": "0:07:42",
}
# The problem states of a generated fleet (base.generate), a steady share each.
VARIANTS: tuple[dict[str, Any], ...] = (
    {"sync_status": "Syncing", "sync_progress": 55},
    {"sync_status": "Failed"},
    {"is_test_connector": True},
)


def connector(
    slug: str, category: str, now: float, end_user: str = "Acme Corp.", **overrides: Any
) -> dict[str, Any]:
    """A connector object shaped like the seed's ConnectorResponse, healthy unless overridden."""
    item: dict[str, Any] = {
        "id": str(uuid.uuid5(_NS, f"{category}/{slug}/{end_user}")),
        "is_active": True,
        "status": "COMPLETE",
        "integration_slug": slug,
        "end_user": end_user,
        "origin_id": "user_" + end_user.split()[0].lower(),
        "sync_status": "Done",
        "last_sync_start_time": iso(now - 2 * HOUR),
        "next_sync_start_time": iso(now + 22 * HOUR),
        # A real token per connector: the exporter must never read, log or expose it.
        "connector_token": "sim-connector-token-" + slug,
        "category": category.upper(),
        "relink_needed_at": None,
        "is_test_connector": False,
        "completed_at": iso(now - 30 * 24 * HOUR),
        "created_at": iso(now - 31 * 24 * HOUR),
    }
    if category == "hris":
        item.update(HRIS_FIELDS)
    else:  # overrides of HRIS-only fields apply to HRIS connectors only
        overrides = {k: v for k, v in overrides.items() if k not in HRIS_FIELDS}
    item.update(overrides)
    return item


def curated(now: float) -> list[dict[str, Any]]:
    """Every state of SPEC §5's bindbee row and every signal of §6.1 (fleets/bindbee.yaml)."""
    return [
        connector(entry.pop("integration_slug"), entry.pop("category"), now, **entry)
        for entry in fleets.curated("bindbee", now)
    ]


# Per connector (`integration_slug/end_user`), what the `out_of_spec` fault changes: a status
# the published enum does not have.
OUT_OF_SPEC: dict[str, dict[str, Any]] = {"lever/Globex": {"status": "PENDING_REVIEW"}}


class BindbeeSim(VendorSim):
    name = "bindbee"
    token = TOKEN
    healthy_fields: ClassVar[dict[str, Any]] = {
        "is_active": True,
        "status": "COMPLETE",
        "sync_status": "Done",
        "relink_needed_at": None,
    }
    health_fields: ClassVar[dict[str, dict[str, Any]]] = {
        "healthy": {},
        "failing": {"sync_status": "Failed"},
        "relink_needed": {"status": "RELINK_NEEDED", "relink_needed_at": At(0)},
        "incomplete": {"status": "INCOMPLETE"},
        "paused": {"is_active": False},
    }
    story = (
        ("integration_slug", "bamboohr", "relink_needed"),
        ("integration_slug", "bamboohr", "healthy"),
    )

    def fleet(self, now: float, size: int | None) -> list[dict[str, Any]]:
        if size is None:
            return curated(now)

        def make(i: int, overrides: dict[str, Any]) -> dict[str, Any]:
            return connector(f"app-{i:06d}", CATEGORIES[i % 3], now, f"Customer {i}", **overrides)

        return fleets.generate(size, now, VARIANTS, make)

    def set_health(self, c: dict[str, Any], health: str, now: float) -> None:
        super().set_health(c, health, now)
        if "sync_progress" in c:  # HRIS only: no sync is running
            c["sync_progress"] = None

    def out_of_spec(self, item: dict[str, Any]) -> dict[str, Any]:
        item.update(OUT_OF_SPEC.get(f"{item['integration_slug']}/{item['end_user']}", {}))
        return item

    def authorized(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {self.token}"

    unauthorized_body: ClassVar[Mapping[str, Any]] = {"detail": "Invalid or expired token"}

    page_size = PageSize(
        "page_size",
        DEFAULT_PAGE_SIZE,
        MAX_PAGE_SIZE,
        {
            "detail": [
                {
                    "loc": ["query", "page_size"],
                    "msg": "Input should be less than or equal to 200",
                    "type": "less_than_equal",
                }
            ]
        },
        status=422,
    )

    def add_routes(self, app: web.Application, prefix: str) -> None:
        app.router.add_get(prefix + "/api/{category}/v1/connectors", self._list)

    async def _list(self, request: web.Request) -> web.Response:
        category = request.match_info["category"]
        if category not in CATEGORIES:
            return web.json_response({"detail": "Not Found"}, status=404)
        response, fault, size = await self.guard_listing(request)
        if response is not None:
            return response
        # Each category is its own listing, paged independently.
        listing = [c for c in self.connectors.values() if c.get("category") == category.upper()]
        items, cursor = self.page(listing, request.query.get("cursor"), size, fault)
        return json_body(
            {"cursor": cursor, "page_size": len(items), "items": self.served(items, fault)}
        )

    def webhook_events(
        self, before: dict[str, Any], after: dict[str, Any], health: str, now: float
    ) -> list[dict[str, Any]]:
        """Connector sync events (docs.bindbee.dev/webhooks/overview) for a sync outcome."""
        if health not in ("failing", "healthy"):
            return []  # relinks and pauses have no documented webhook event

        def event(name: str) -> dict[str, Any]:
            return {
                "webhook": {"webhook_id": "sim-webhook", "url": "", "event": name},
                "connector": {
                    "id": after["id"],
                    "display_name": after.get("integration_slug", ""),
                    "end_user": after.get("end_user"),
                    "sent_at": iso(now),
                },
                "data": {},
            }

        done = "connector_sync_error" if health == "failing" else "connector_synced"
        return [event("connector_sync_started"), event(done)]


SIMULATOR = BindbeeSim

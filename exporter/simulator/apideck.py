"""Fake Apideck Unify API: the connector catalog (seed apideck-list-connectors.txt) and Vault.

Vault follows apideck-libraries/openapi-specs vault.yml: `GET /vault/consumers` lists consumers
with the services they use but no connections; `GET /vault/consumers/{consumer_id}` returns the
consumer with its `connections` (schema ConsumerConnection, tests/schemas/). Its timestamps are
ISO 8601 strings or null; the Unix milliseconds (0 = none) of vault.yml's other `Connection`
schema are served only under the `out_of_spec` fault.

For a benchmark: `latency_ms` delays every request, and `per_consumer` sets how many
connections each consumer of a generated fleet has (1: as many consumers as connections).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import urlencode

from aiohttp import web

from exporter.simulator import fleets
from exporter.simulator.base import DAY, HOUR, At, Fault, PageSize, VendorSim, iso, json_body

API_KEY = "sim-apideck-key"
APP_ID = "sim-app"
MAX_LIMIT = 200
DEFAULT_LIMIT = 20

_REASONS = {
    400: ("Bad Request", "RequestValidationError"),
    401: ("Unauthorized", "UnauthorizedError"),
    402: ("Payment Required", "PaymentRequiredError"),
    404: ("Not Found", "EntityNotFoundError"),
    429: ("Too Many Requests", "TooManyRequestsError"),
}
QUOTA_MESSAGE = "Request limit reached for the current billing period"
# Consumers exist before they connect anything (Vault creates them with a session).
EMPTY_CONSUMERS = ("hooli",)
# Listed under the `consumer_deleted` fault, gone (404) by the time its detail is asked for.
DELETED_CONSUMER = "deleted-consumer"


def error_body(status: int, message: str, detail: str = "") -> dict[str, Any]:
    """Apideck's error envelope: {status_code, error, type_name, message, detail}."""
    reason, type_name = _REASONS.get(status, ("Internal Server Error", "ServerError"))
    return {
        "status_code": status,
        "error": reason,
        "type_name": type_name,
        "message": message,
        "detail": detail or message,
        "ref": f"https://developers.apideck.com/errors#{type_name.lower()}",
    }


def error(status: int, message: str, detail: str = "") -> web.Response:
    return web.json_response(error_body(status, message, detail), status=status)


def ms(value: Any) -> int:
    """An ISO 8601 timestamp (or None) as vault.yml's `Connection` sends it: Unix ms, 0 = none."""
    if not isinstance(value, str):
        return 0
    return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)


def catalog_entry(cid: str, name: str, status: str, auth_type: str = "oauth2") -> dict[str, Any]:
    """A connector of the catalog, shaped like the seed's List Connectors item."""
    unified_api, _, service_id = cid.partition("+")
    entry: dict[str, Any] = {
        "id": cid,
        "name": name,
        "status": status,
        "description": f"{name} connector",
        "icon_url": f"https://res.cloudinary.com/apideck/icons/{service_id}",
        "website_url": f"https://www.{service_id}.example",
        "auth_type": auth_type,
        "auth_only": False,
        "blind_mapped": False,
        "service_id": service_id,
        "unified_apis": [{"id": unified_api, "name": unified_api.upper() + " API"}],
        "supported_resources": [{"id": "companies", "name": "Companies", "status": "live"}],
        "webhook_support": {"mode": "virtual"},
        "schema_support": {"supported": False},
    }
    if auth_type == "oauth2":
        # an enum without null: connectors without OAuth leave it out
        entry["oauth_grant_type"] = "authorization_code"
    return entry


CATALOG = (
    catalog_entry("crm+salesforce", "Salesforce", "live"),
    catalog_entry("crm+hubspot", "HubSpot", "live"),
    catalog_entry("hris+bamboohr", "BambooHR", "beta", "apiKey"),
    catalog_entry("accounting+exact-online", "Exact Online", "early-access"),
    catalog_entry("ats+teamtailor", "Teamtailor", "development", "apiKey"),
    catalog_entry("crm+copper", "Copper", "considering"),
    # `sunset` under the `out_of_spec` fault (CATALOG_OUT_OF_SPEC)
    catalog_entry("pos+square", "Square", "live"),
)
# What the `out_of_spec` fault changes in the catalog: a status the published enum does not have,
# and a null where the enum has none.
CATALOG_OUT_OF_SPEC: dict[str, dict[str, Any]] = {
    "pos+square": {"status": "sunset"},
    "hris+bamboohr": {"oauth_grant_type": None},
}


def connection(
    consumer_id: str, cid: str, name: str, now: float, **overrides: Any
) -> dict[str, Any]:
    """A ConsumerConnection (vault.yml), callable and healthy unless overridden.

    An override `health=None` leaves `health` out (its enum has no null).
    """
    unified_api, _, service_id = cid.partition("+")
    item: dict[str, Any] = {
        "id": cid,
        "name": name,
        "icon": f"https://res.cloudinary.com/apideck/icons/{service_id}",
        "service_id": service_id,
        "unified_api": unified_api,
        "consumer_id": consumer_id,
        "auth_type": "oauth2",
        "enabled": True,
        # Settings can hold the end user's own keys: the exporter must never read them.
        "settings": {"instance_url": "https://acme.example", "api_key": "sim-downstream-key"},
        "metadata": {"plan": "enterprise"},
        "created_at": iso(now - 60 * DAY),
        "updated_at": iso(now - DAY),
        "state": "callable",
        "health": "ok",
        "credentials_expire_at": None,
        "last_refresh_failed_at": None,
    }
    item.update(overrides)
    if item["health"] is None:
        del item["health"]
    return item


def curated(now: float) -> list[dict[str, Any]]:
    """Every state and health rule of SPEC §5's apideck row and every signal of §6.1
    (fleets/apideck.yaml)."""
    return [
        connection(entry.pop("consumer_id"), entry.pop("id"), entry.pop("name"), now, **entry)
        for entry in fleets.curated("apideck", now)
    ]


# Per connection (the control API's id), what the `out_of_spec` fault changes besides the
# timestamps: values the published enums do not have, and a null where the enum has none.
OUT_OF_SPEC: dict[str, dict[str, Any]] = {
    "umbrella/crm+close": {"state": "archived"},
    "acme/hris+bamboohr": {"health": None},
}


# The problem states of a generated fleet (base.generate), a steady share each.
VARIANTS: tuple[dict[str, Any], ...] = (
    {"state": "invalid", "health": "needs_auth"},
    {"health": "pending_refresh", "last_refresh_failed_at": At(-60)},
    {"enabled": False},
    {"credentials_expire_at": At(HOUR)},
    {"state": "authorized", "health": "pending_confirmation"},
)


def generated(now: float, size: int, per_consumer: int = 10) -> list[dict[str, Any]]:
    """`size` connections over consumers of `per_consumer` connections each, a steady share
    unhealthy."""

    def make(i: int, overrides: dict[str, Any]) -> dict[str, Any]:
        slot = i % per_consumer
        consumer = f"customer-{i // per_consumer:06d}"
        return connection(consumer, f"crm+svc{slot}", f"Svc {slot}", now, **overrides)

    return fleets.generate(size, now, VARIANTS, make)


def key(c: dict[str, Any]) -> str:
    """The control API's id of a connection: the exporter's `{consumer_id}/{connection id}`."""
    return f"{c['consumer_id']}/{c['id']}"


class ApideckSim(VendorSim):
    name = "apideck"
    catalog: list[dict[str, Any]]
    api_key = API_KEY
    app_id = APP_ID
    healthy_fields: ClassVar[dict[str, Any]] = {
        "enabled": True,
        "state": "callable",
        "health": "ok",
        "credentials_expire_at": None,
        "last_refresh_failed_at": None,
    }
    health_fields: ClassVar[dict[str, dict[str, Any]]] = {
        "healthy": {},
        "degraded": {
            "health": "pending_refresh",
            "last_refresh_failed_at": At(0),
            "credentials_expire_at": At(7 * DAY),
        },
        "relink_needed": {
            "state": "invalid",
            "health": "needs_auth",
            "last_refresh_failed_at": At(0),
        },
        "incomplete": {"state": "added", "health": "missing_settings"},
        "paused": {"enabled": False},
    }
    story = (
        ("consumer_id", "acme", "relink_needed"),
        ("consumer_id", "acme", "healthy"),
    )

    def __init__(
        self, size: int | None = None, *, latency_ms: float = 0.0, per_consumer: int = 10
    ) -> None:
        # Connections per consumer in a generated fleet; resize() applies a change.
        self.per_consumer = max(1, per_consumer)
        super().__init__(size, latency_ms=latency_ms)

    def reset(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        self.connectors = {key(c): c for c in self.fleet(now, self.size)}
        self.catalog = [dict(entry) for entry in CATALOG]
        self.fault = None

    def fleet(self, now: float, size: int | None) -> list[dict[str, Any]]:
        return curated(now) if size is None else generated(now, size, self.per_consumer)

    def out_of_spec(self, item: dict[str, Any]) -> dict[str, Any]:
        """A ConsumerConnection with vault.yml `Connection`'s millisecond timestamps and the
        values OUT_OF_SPEC gives it."""
        for field in ("credentials_expire_at", "last_refresh_failed_at"):
            item[field] = ms(item.get(field))
        item.update(OUT_OF_SPEC.get(key(item), {}))
        return item

    def authorized(self, request: web.Request) -> bool:
        return (
            request.headers.get("Authorization") == f"Bearer {self.api_key}"
            and request.headers.get("x-apideck-app-id") == self.app_id
        )

    unauthorized_body: ClassVar[Mapping[str, Any]] = error_body(
        401, "Unauthorized Request", "Missing or invalid API key or application id"
    )

    page_size = PageSize(
        "limit",
        DEFAULT_LIMIT,
        MAX_LIMIT,
        error_body(400, "Invalid Params", "limit must be between 1 and 200"),
    )

    def add_routes(self, app: web.Application, prefix: str) -> None:
        app.router.add_get(prefix + "/connector/connectors", self._catalog)
        app.router.add_get(prefix + "/vault/consumers", self._consumers)
        app.router.add_get(prefix + "/vault/consumers/{consumer_id}", self._consumer)

    async def guard(self, request: web.Request) -> tuple[web.Response | None, Fault | None]:
        """The common guard, with injected HTTP errors in Apideck's envelope (402 = quota)."""
        response, fault = await super().guard(request)
        if response is not None and fault is not None and fault.mode == "error":
            status = response.status
            message = QUOTA_MESSAGE if status == 402 else "simulated server error"
            return error(status, message), fault
        return response, fault

    def _services(self) -> dict[str, set[str]]:
        """Every consumer's services, in listing order (consumers without any last)."""
        services: dict[str, set[str]] = {}
        for c in self.connectors.values():
            services.setdefault(c["consumer_id"], set()).add(c["service_id"])
        for cid in EMPTY_CONSUMERS:
            services.setdefault(cid, set())
        return services

    async def _list(
        self,
        request: web.Request,
        items: list[dict[str, Any]],
        alter: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> web.Response:
        """A cursor-paged listing; `alter` changes copies of the page's items under the
        `out_of_spec` fault."""
        response, fault, limit = await self.guard_listing(request)
        if response is not None:
            return response
        if fault is not None and fault.mode == "consumer_deleted" and items:
            items = [*items, {**items[-1], "consumer_id": DELETED_CONSUMER}]
        cursor = request.query.get("cursor")
        page, next_cursor = self.page(items, cursor, limit, fault)
        if fault is not None and fault.mode == "out_of_spec" and alter is not None:
            page = [alter(copy.deepcopy(item)) for item in page]
        base = str(request.url.with_query(None))
        return json_body(
            {
                "status_code": 200,
                "status": "OK",
                "data": page,
                "meta": {
                    "items_on_page": len(page),
                    "cursors": {"previous": None, "current": cursor, "next": next_cursor},
                },
                "links": {
                    "previous": None,
                    "current": str(request.url),
                    "next": f"{base}?{urlencode({'cursor': next_cursor})}" if next_cursor else None,
                },
            }
        )

    async def _catalog(self, request: web.Request) -> web.Response:
        def alter(entry: dict[str, Any]) -> dict[str, Any]:
            entry.update(CATALOG_OUT_OF_SPEC.get(str(entry.get("id")), {}))
            return entry

        return await self._list(request, self.catalog, alter)

    async def _consumers(self, request: web.Request) -> web.Response:
        now = time.time()
        consumers = [
            {
                "consumer_id": cid,
                "application_id": self.app_id,
                "metadata": {"account_name": cid.title(), "user_name": f"Admin {cid}"},
                "aggregated_request_count": 101,
                "request_counts": {"unify": 80, "proxy": 0, "vault": 21},
                "created": iso(now - 90 * DAY),
                "modified": iso(now - DAY),
                "request_count_updated": iso(now - HOUR),
                "services": sorted(services),
            }
            for cid, services in self._services().items()
        ]
        return await self._list(request, consumers)

    async def _consumer(self, request: web.Request) -> web.Response:
        response, fault = await self.guard(request)
        if response is not None:
            return response
        cid = request.match_info["consumer_id"]
        connections = [c for c in self.connectors.values() if c["consumer_id"] == cid]
        if not connections and cid not in EMPTY_CONSUMERS:
            return error(404, "Unknown Resource", f"consumer {cid} not found")
        return json_body(
            {
                "status_code": 200,
                "status": "OK",
                "data": {
                    "consumer_id": cid,
                    "application_id": self.app_id,
                    "metadata": {"account_name": cid.title()},
                    "connections": self.served(connections, fault),
                    "services": sorted({c["service_id"] for c in connections}),
                },
            }
        )

    def webhook_key(self, secret: str) -> str:
        return self.api_key  # Apideck signs with the application's API key

    def webhook_events(
        self, before: dict[str, Any], after: dict[str, Any], health: str, now: float
    ) -> list[dict[str, Any]]:
        """Vault connection events (vault.yml "Webhook Events"), the Connection as entity."""
        kind = {
            "relink_needed": "revoked",
            "paused": "disabled",
            "healthy": "callable",
            "degraded": "token_refresh.failed",
        }.get(health, "updated")
        entity = {k: v for k, v in after.items() if k != "settings"}
        return [
            {
                "payload": {
                    "event_id": f"sim-{after['consumer_id']}-{after['id']}-{int(now * 1000)}",
                    "event_type": f"vault.connection.{kind}",
                    "service_id": after.get("service_id", ""),
                    "consumer_id": after["consumer_id"],
                    "entity_id": after["id"],
                    "entity_type": "Connection",
                    "entity": entity,
                    "execution_attempt": 1,
                    "occurred_at": iso(now),
                }
            }
        ]


SIMULATOR = ApideckSim

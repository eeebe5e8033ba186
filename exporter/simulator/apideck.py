"""Fake Apideck Unify API: the connector catalog (seed apideck-list-connectors.txt) and Vault.

Vault follows apideck-libraries/openapi-specs vault.yml: `GET /vault/consumers` lists consumers
with the services they use but no connections; `GET /vault/consumers/{consumer_id}` returns the
consumer with its `connections` (schema ConsumerConnection).
"""

from __future__ import annotations

import time
from typing import Any, ClassVar
from urllib.parse import urlencode

from aiohttp import web

from exporter.simulator.base import Fault, VendorSim, int_param, iso, json_body

API_KEY = "sim-apideck-key"
APP_ID = "sim-app"
MAX_LIMIT = 200
DEFAULT_LIMIT = 20
HOUR = 3600.0
DAY = 24 * HOUR

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


def error(status: int, message: str, detail: str = "") -> web.Response:
    """Apideck's error envelope: {status_code, error, type_name, message, detail}."""
    reason, type_name = _REASONS.get(status, ("Internal Server Error", "ServerError"))
    body = {
        "status_code": status,
        "error": reason,
        "type_name": type_name,
        "message": message,
        "detail": detail or message,
        "ref": f"https://developers.apideck.com/errors#{type_name.lower()}",
    }
    return web.json_response(body, status=status)


def ms(ts: float) -> int:
    return int(ts * 1000)


def catalog_entry(cid: str, name: str, status: str, auth_type: str = "oauth2") -> dict[str, Any]:
    """A connector of the catalog, shaped like the seed's List Connectors item."""
    unified_api, _, service_id = cid.partition("+")
    return {
        "id": cid,
        "name": name,
        "status": status,
        "description": f"{name} connector",
        "icon_url": f"https://res.cloudinary.com/apideck/icons/{service_id}",
        "website_url": f"https://www.{service_id}.example",
        "auth_type": auth_type,
        "auth_only": False,
        "blind_mapped": False,
        "oauth_grant_type": "authorization_code" if auth_type == "oauth2" else None,
        "service_id": service_id,
        "unified_apis": [{"id": unified_api, "name": unified_api.upper() + " API"}],
        "supported_resources": [{"id": "companies", "name": "Companies", "status": "live"}],
        "webhook_support": {"mode": "virtual"},
        "schema_support": {"supported": False},
    }


CATALOG = (
    catalog_entry("crm+salesforce", "Salesforce", "live"),
    catalog_entry("crm+hubspot", "HubSpot", "live"),
    catalog_entry("hris+bamboohr", "BambooHR", "beta", "apiKey"),
    catalog_entry("accounting+exact-online", "Exact Online", "early-access"),
    catalog_entry("ats+teamtailor", "Teamtailor", "development", "apiKey"),
    catalog_entry("crm+copper", "Copper", "considering"),
    catalog_entry("pos+square", "Square", "sunset"),  # a status the seed does not list
)


def connection(
    consumer_id: str, cid: str, name: str, now: float, **overrides: Any
) -> dict[str, Any]:
    """A ConsumerConnection (vault.yml), callable and healthy unless overridden."""
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
        "credentials_expire_at": 0,
        "last_refresh_failed_at": 0,
    }
    item.update(overrides)
    return item


def curated(now: float) -> list[dict[str, Any]]:
    """Every state and health rule of SPEC §5's apideck row."""
    return [
        connection("acme", "crm+salesforce", "Salesforce", now),
        connection("acme", "hris+bamboohr", "BambooHR", now, auth_type="apiKey", health=None),
        connection("acme", "crm+hubspot", "HubSpot", now, enabled=False),
        connection(
            "globex",
            "crm+salesforce",
            "Salesforce",
            now,
            state="invalid",
            health="needs_auth",
            last_refresh_failed_at=ms(now - 2 * HOUR),
        ),
        connection("globex", "accounting+exact-online", "Exact Online", now, health="revoked"),
        connection(
            "globex", "ats+teamtailor", "Teamtailor", now, state="added", health="missing_settings"
        ),
        connection("initech", "crm+hubspot", "HubSpot", now, state="authorized"),
        connection("initech", "pos+square", "Square", now, state="available", health=None),
        connection(
            "initech",
            "crm+pipedrive",
            "Pipedrive",
            now,
            health="pending_refresh",
            # the embedded schema documents ISO 8601 strings here; the exporter takes both
            credentials_expire_at=iso(now + 5 * DAY),
            last_refresh_failed_at=iso(now - 0.5 * HOUR),
        ),
        connection("umbrella", "crm+copper", "Copper", now, health="degraded"),
        connection("umbrella", "hris+personio", "Personio", now, health="needs_consent"),
        connection("umbrella", "crm+close", "Close", now, state="archived"),
    ]


def generated(now: float, size: int) -> list[dict[str, Any]]:
    """`size` connections over consumers of ten connections each, a steady share unhealthy."""
    out = []
    for i in range(size):
        overrides: dict[str, Any] = {}
        kind = i % 20
        if kind == 1:
            overrides.update(state="invalid", health="needs_auth")
        elif kind == 2:
            overrides.update(health="pending_refresh", last_refresh_failed_at=ms(now - 60))
        elif kind == 3:
            overrides["enabled"] = False
        out.append(
            connection(
                f"customer-{i // 10:06d}", f"crm+svc{i % 10}", f"Svc {i % 10}", now, **overrides
            )
        )
    return out


def key(c: dict[str, Any]) -> str:
    """The control API's id of a connection: the exporter's `{consumer_id}/{connection id}`."""
    return f"{c['consumer_id']}/{c['id']}"


class ApideckSim(VendorSim):
    name = "apideck"
    catalog: list[dict[str, Any]]
    api_key = API_KEY
    app_id = APP_ID
    healths: ClassVar[tuple[str, ...]] = (
        "healthy",
        "degraded",
        "relink_needed",
        "incomplete",
        "paused",
    )

    def reset(self) -> None:
        self.connectors = {key(c): c for c in self.fleet(time.time(), self.size)}
        self.catalog = [dict(entry) for entry in CATALOG]
        self.fault = None

    def fleet(self, now: float, size: int | None) -> list[dict[str, Any]]:
        return curated(now) if size is None else generated(now, size)

    def set_health(self, c: dict[str, Any], health: str, now: float) -> None:
        c.update(enabled=health != "paused", state="callable", health="ok")
        c.update(credentials_expire_at=0, last_refresh_failed_at=0)
        if health == "relink_needed":
            c.update(state="invalid", health="needs_auth", last_refresh_failed_at=ms(now))
        elif health == "incomplete":
            c.update(state="added", health="missing_settings")
        elif health == "degraded":
            c.update(health="pending_refresh", last_refresh_failed_at=ms(now))
            c["credentials_expire_at"] = ms(now + 7 * DAY)

    def authorized(self, request: web.Request) -> bool:
        return (
            request.headers.get("Authorization") == f"Bearer {self.api_key}"
            and request.headers.get("x-apideck-app-id") == self.app_id
        )

    def unauthorized(self) -> web.Response:
        return error(401, "Unauthorized Request", "Missing or invalid API key or application id")

    def add_routes(self, app: web.Application, prefix: str) -> None:
        app.router.add_get(prefix + "/connector/connectors", self._catalog)
        app.router.add_get(prefix + "/vault/consumers", self._consumers)
        app.router.add_get(prefix + "/vault/consumers/{consumer_id}", self._consumer)

    async def _guard(self, request: web.Request) -> tuple[web.Response | None, Fault | None]:
        """The common guard, with injected HTTP errors in Apideck's envelope (402 = quota)."""
        response, fault = await self.guard(request)
        if response is not None and fault is not None and fault.mode == "error":
            status = response.status
            message = QUOTA_MESSAGE if status == 402 else "simulated server error"
            return error(status, message), fault
        return response, fault

    def _consumer_ids(self) -> list[str]:
        ids = [c["consumer_id"] for c in self.connectors.values()]
        return list(dict.fromkeys([*ids, *EMPTY_CONSUMERS]))

    async def _list(self, request: web.Request, items: list[dict[str, Any]]) -> web.Response:
        response, fault = await self._guard(request)
        if response is not None:
            return response
        limit = int_param(request, "limit", DEFAULT_LIMIT)
        if limit is None or not 1 <= limit <= MAX_LIMIT:
            return error(400, "Invalid Params", "limit must be between 1 and 200")
        cursor = request.query.get("cursor")
        page, next_cursor = self.page(items, cursor, limit, fault)
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
        return await self._list(request, self.catalog)

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
                "services": sorted(
                    {c["service_id"] for c in self.connectors.values() if c["consumer_id"] == cid}
                ),
            }
            for cid in self._consumer_ids()
        ]
        return await self._list(request, consumers)

    async def _consumer(self, request: web.Request) -> web.Response:
        response, _ = await self._guard(request)
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
                    "connections": connections,
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
# The demo's story for this vendor, one step at a time: (field, value naming a connector, health).
STORY: tuple[tuple[str, str, str], ...] = (
    ("consumer_id", "acme", "relink_needed"),
    ("consumer_id", "acme", "healthy"),
)


def account_config(base_url: str) -> dict[str, Any]:
    """The exporter config account that polls this simulator, its credentials included."""
    return {
        "vendor": "apideck",
        "name": "demo",
        "api_key": API_KEY,
        "app_id": APP_ID,
        "base_url": base_url,
    }

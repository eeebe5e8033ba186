"""Fake OpenInt API following seeds/openint-list-connectors.txt and docs.openint.dev.

`has_next_page` is computed with the docs' formula `offset + limit >= total`, which is inverted
(true on the last page, false while more remain): the exporter must page on `total` instead.
As in the server code (openintegrations/openint packages/api-v1/trpc/routers), `GET /connection`
is ordered by `updated_at`, newest first, and `GET /connector`'s `total` is the length of the
page, not of the catalog. Pages validate against tests/schemas/openint_*.json.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from aiohttp import web

from exporter.simulator import fleets
from exporter.simulator.base import (
    DAY,
    HOUR,
    PAGING_FAULTS,
    At,
    Fault,
    PageSize,
    VendorSim,
    int_param,
    iso,
    json_body,
)

TOKEN = "sim-openint-token"  # noqa: S105 - the simulator's published demo credential
MAX_LIMIT = 3000  # seed: "Required range: 0 <= x <= 3000"
DEFAULT_LIMIT = 50


def catalog_entry(name: str, display: str, stage: str, auth_type: str) -> dict[str, Any]:
    """A connector of GET /connector, shaped like the seed."""
    return {
        "name": name,
        "display_name": display,
        "logo_url": f"https://cdn.openint.dev/{name}.svg",
        "stage": stage,
        "platforms": ["web"],
        "schemas": {"connector_config": {}, "connection_settings": {}},
        "auth_type": auth_type,
        "required_scopes": [],
        "openint_default_scopes": [],
        "openint_allowed_scopes": [],
        "scopes": [],
        "has_openint_credentials": stage == "ga",
        "integrations": [],
    }


CATALOG = (
    catalog_entry("salesforce", "Salesforce", "ga", "OAUTH2"),
    catalog_entry("hubspot", "HubSpot", "ga", "OAUTH2"),
    catalog_entry("greenhouse", "Greenhouse", "beta", "API_KEY"),
    catalog_entry("plaid", "Plaid", "beta", "CUSTOM"),
    catalog_entry("twenty", "Twenty", "alpha", "API_KEY"),
    catalog_entry("acme-oauth2", "Acme OAuth2", "hidden", "OAUTH2"),  # not in the seed's enum
)


def connection(
    cid: str, connector_name: str, customer: str, now: float, **overrides: Any
) -> dict[str, Any]:
    """A connection of GET /connection, healthy unless overridden."""
    item: dict[str, Any] = {
        "id": cid,
        "customer_id": customer,
        "connector_config_id": f"ccfg_{connector_name}_prod",
        "integration_id": None,
        "status_message": None,
        "created_at": iso(now - 30 * DAY),
        "updated_at": iso(now - HOUR),
        "display_name": f"{connector_name} for {customer}",
        "disabled": False,
        "status": "healthy",
        "metadata": {},
        "connector_name": connector_name,
        # Credentials: the real listing sends them only with include_secrets=true, which the
        # exporter never asks for; they are served anyway so that the tests can prove it never
        # reads them (the schema lets a connection carry more members).
        "settings": {
            "oauth": {
                "credentials": {
                    "access_token": f"sim-openint-access-{cid}",
                    "refresh_token": f"sim-openint-refresh-{cid}",
                    "expires_at": iso(now + HOUR),
                    "token_type": "bearer",
                }
            }
        },
    }
    item.update(overrides)
    return item


def curated(now: float) -> list[dict[str, Any]]:
    """Every status and health rule of SPEC §5's openint row; `status_message` on the
    connections that are not healthy (SPEC §6.1) (fleets/openint.yaml)."""
    return [
        connection(
            entry.pop("id"), entry.pop("connector_name"), entry.pop("customer_id"), now, **entry
        )
        for entry in fleets.curated("openint", now)
    ]


# Per connection, what the `out_of_spec` fault changes: a status the published enum lacks.
OUT_OF_SPEC: dict[str, dict[str, Any]] = {"conn_sf_umbrella": {"status": "expired"}}


# The problem states of a generated fleet (base.generate), a steady share each.
VARIANTS: tuple[dict[str, Any], ...] = (
    {"status": "disconnected", "status_message": "Refresh token revoked"},
    {"status": "error", "status_message": "Upstream returned 500"},
    {"disabled": True},
)


def generated(now: float, size: int) -> list[dict[str, Any]]:
    def make(i: int, overrides: dict[str, Any]) -> dict[str, Any]:
        name = ("salesforce", "hubspot", "greenhouse")[i % 3]
        return connection(f"conn_{i:06d}", name, f"cus_{i // 5:06d}", now, **overrides)

    return fleets.generate(size, now, VARIANTS, make)


class OpenintSim(VendorSim):
    name = "openint"
    token = TOKEN
    catalog: list[dict[str, Any]]
    healthy_fields: ClassVar[dict[str, Any]] = {
        "disabled": False,
        "status": "healthy",
        "status_message": None,
        "updated_at": At(0),
    }
    health_fields: ClassVar[dict[str, dict[str, Any]]] = {
        "healthy": {},
        "failing": {"status": "error", "status_message": "Upstream returned 500"},
        "relink_needed": {"status": "disconnected", "status_message": "Re-authentication required"},
        "paused": {"disabled": True},
        "unknown": {"status": "unknown"},
    }
    story = (
        ("id", "conn_sf_acme", "failing"),
        ("id", "conn_sf_acme", "healthy"),
    )

    def reset(self, now: float | None = None) -> None:
        super().reset(now)
        self.catalog = [dict(entry) for entry in CATALOG]

    def fleet(self, now: float, size: int | None) -> list[dict[str, Any]]:
        return curated(now) if size is None else generated(now, size)

    def out_of_spec(self, item: dict[str, Any]) -> dict[str, Any]:
        item.update(OUT_OF_SPEC.get(str(item.get("id")), {}))
        return item

    def authorized(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {self.token}"

    unauthorized_body: ClassVar[Mapping[str, Any]] = {
        "code": "UNAUTHORIZED",
        "message": "Invalid API key or token",
    }

    page_size = PageSize(
        "limit",
        DEFAULT_LIMIT,
        MAX_LIMIT,
        {"code": "BAD_REQUEST", "message": "limit must be 0..3000 and offset >= 0"},
        minimum=0,
    )

    def add_routes(self, app: web.Application, prefix: str) -> None:
        app.router.add_get(prefix + "/connector", self._catalog)
        app.router.add_get(prefix + "/connection", self._connections)

    def _offset_page(
        self, items: list[dict[str, Any]], offset: int, limit: int, fault: Fault | None
    ) -> tuple[list[dict[str, Any]], int]:
        """The page at `offset` and the `total` to announce."""
        # The offset-paged equivalent of a cursor loop: a server that ignores `offset`.
        if fault is not None and fault.mode == "cursor_loop":
            return items[:limit], len(items)
        page, _, total = self.window(items, offset, limit, fault)
        return page, total

    async def _list(
        self, request: web.Request, items: list[dict[str, Any]], catalog: bool = False
    ) -> web.Response:
        response, fault, limit = await self.guard_listing(request)
        if response is not None:
            return response
        offset = int_param(request, "offset", 0)
        if offset is None or offset < 0:
            return self.page_size.invalid()
        page, total = self._offset_page(items, offset, limit, fault)
        if catalog and (fault is None or fault.mode not in PAGING_FAULTS):
            # as the server computes it; a paging fault keeps its own `total`
            total = len(page)
        else:
            page = self.served(page, fault)
        return json_body(
            {
                "items": page,
                "total": total,
                "limit": limit,
                "offset": offset,
                # The documented formula, inverted on purpose (see the module docstring).
                "has_next_page": offset + limit >= total,
            }
        )

    async def _catalog(self, request: web.Request) -> web.Response:
        return await self._list(request, self.catalog, catalog=True)

    async def _connections(self, request: web.Request) -> web.Response:
        # Newest first; ties keep the fleet's order. ISO strings in one format sort by time.
        listing = sorted(self.connectors.values(), key=lambda c: c["updated_at"], reverse=True)
        return await self._list(request, listing)

    def webhook_events(
        self, before: dict[str, Any], after: dict[str, Any], health: str, now: float
    ) -> list[dict[str, Any]]:
        """A connection event carrying the connection as GET /connection lists it."""
        connection = {k: v for k, v in after.items() if k != "settings"}
        return [
            {
                "id": f"sim-{after['id']}-{int(now * 1000)}",
                "name": "connection.updated",
                "data": {"connection": connection},
            }
        ]


SIMULATOR = OpenintSim

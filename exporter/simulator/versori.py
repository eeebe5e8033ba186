"""Fake Versori Connect API following seeds/versori-list-connectors.txt and the connect v1
OpenAPI of versori/versori-js-sdk (tests/schemas/versori_connectors.json).

Connectors are paged; the unit the exporter monitors is each connection embedded in them, so
the control API addresses connections by their id. In that definition a credential's
`expiresAt` is when Versori deletes it, `errors` may be left out when empty, and an auth-scheme
config's `validationMessages` come from validating it when it was saved.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, ClassVar

from aiohttp import web

from exporter.simulator import fleets
from exporter.simulator.base import DAY, HOUR, PageSize, VendorSim, iso, json_body

TOKEN = "sim-versori-token"  # noqa: S105 - the simulator's published demo credential
ORGANISATION_ID = "01HSIMORG0000000000000000"
MAX_FIRST = 100
DEFAULT_FIRST = 20
ABSENT = object()  # a credential whose `errors` key is left out: never validated


def message(text: str, severity: str) -> dict[str, Any]:
    return {"text": text, "severity": severity, "detail": []}


# The members each AuthSchemeConfig variant requires besides id and description (the schema's
# oneOf picks the variant by `schemeType`), and the CredentialType a credential for it has (our
# pick from the enum: the definition does not tie credential types to scheme types).
SCHEME_FIELDS: dict[str, dict[str, Any]] = {
    "oauth2": {
        "authorizeUrl": "https://login.example/oauth2/authorize",
        "tokenUrl": "https://login.example/oauth2/token",
        "scopes": [{"name": "api"}, {"name": "refresh_token"}],
        "defaultScopes": ["api", "refresh_token"],
        "grant": {"grantType": "authorization_code"},
    },
    "api-key": {"name": "X-Api-Key", "in": "header"},
    "hmac": {
        "name": "Authorization",
        "in": "header",
        "algorithm": "sha256",
        "digestInputs": ["url"],
    },
    "basic-auth": {},
    "certificate": {},
    "none": {},
}
CREDENTIAL_TYPES = {
    "oauth2": "oauth2-code",
    "api-key": "string",
    "hmac": "string",
    "basic-auth": "basic-auth",
    "certificate": "certificate",
    "none": "none",
}
# What the `out_of_spec` fault changes: a scheme type the schema's oneOf has no variant for.
OUT_OF_SPEC_SCHEMES: dict[str, dict[str, Any]] = {"as_ns_tba": {"schemeType": "oauth1"}}


def scheme(
    scheme_id: str, scheme_type: str = "oauth2", *messages: dict[str, Any]
) -> dict[str, Any]:
    return {
        "id": scheme_id,
        "description": f"{scheme_type} for the connector",
        "schemeType": scheme_type,
        **SCHEME_FIELDS[scheme_type],
        "validationMessages": list(messages),
    }


def usage(
    cred_id: str,
    auth_scheme: dict[str, Any],
    now: float,
    *,
    errors: Any = (),
    expires_in: float | None = None,
) -> dict[str, Any]:
    """A credential usage `{id, authSchemeConfig, credential}` as embedded in a connection.

    `expires_in`: when Versori deletes the credential (None: never, `expiresAt` left out);
    `errors=ABSENT` leaves `errors` out, as the API does when there are none.
    """
    credential: dict[str, Any] = {
        "id": f"cred_{cred_id}",
        "organisationId": ORGANISATION_ID,
        "type": CREDENTIAL_TYPES[auth_scheme["schemeType"]],
        "name": f"{cred_id} credential",
        # The secret itself: the exporter must never read, copy or expose it.
        "data": {"accessToken": f"sim-versori-secret-{cred_id}", "refreshToken": "sim-refresh"},
        "usages": [],
    }
    if expires_in is not None:
        credential["expiresAt"] = iso(now + expires_in)
    if errors is not ABSENT:
        credential["errors"] = list(errors)
    return {"id": f"use_{cred_id}", "authSchemeConfig": dict(auth_scheme), "credential": credential}


def out_of_spec(connector: dict[str, Any]) -> dict[str, Any]:
    """A served connector with an auth-scheme type the schema lacks, credentials typed by their
    scheme type, and `expiresAt: null` where a credential is never deleted."""
    schemes = [connector.get("authSchemeConfigs", [])]
    for conn in connector.get("connections", []):
        for group in ("action", "trigger"):
            for use in conn["credentials"].get(group, []):
                schemes.append([use["authSchemeConfig"]])
                cred = use["credential"]
                cred["type"] = use["authSchemeConfig"]["schemeType"]
                cred.setdefault("expiresAt", None)
    for group in schemes:
        for config in group:
            config.update(OUT_OF_SPEC_SCHEMES.get(str(config.get("id")).split("@")[0], {}))
    return connector


def connection(
    conn_id: str, name: str, now: float, action: list[Any], trigger: list[Any] | None = None
) -> dict[str, Any]:
    return {
        "id": conn_id,
        "name": name,
        "credentials": {"action": action, "trigger": trigger or []},
        "variables": [{"name": "region", "value": "eu"}],
        "createdAt": iso(now - 40 * DAY),
        "updatedAt": iso(now - DAY),
    }


def connector(cid: str, name: str, now: float, *schemes: dict[str, Any]) -> dict[str, Any]:
    """A Connector of the seed's ConnectorPage, without its connections (added when served)."""
    return {
        "id": cid,
        "organisationId": ORGANISATION_ID,
        "name": name,
        "public": False,
        "protocol": "http",
        "authSchemeConfigs": list(schemes),
        "versions": [
            {
                "id": f"{cid}_v1",
                "name": "v1",
                "isLatest": True,
                "isDefault": True,
                "createdAt": iso(now - 90 * DAY),
                "updatedAt": iso(now - 2 * DAY),
                "publishedAt": iso(now - 2 * DAY),
            }
        ],
        "createdAt": iso(now - 90 * DAY),
        "updatedAt": iso(now - 2 * DAY),
        "baseUrl": f"https://api.{name.lower()}.example",
        "tags": {},
        "connectionVariables": [],
    }


# The problem states of a generated fleet's credentials (base.generate), a steady share each.
VARIANTS: tuple[dict[str, Any], ...] = (
    {"errors": ["expired"]},
    {"expires_in": -HOUR},
    {"errors": ABSENT},
    {"expires_in": 30 * DAY},
)
Fleet = tuple[list[dict[str, Any]], list[tuple[str, dict[str, Any]]]]


def curated(now: float) -> Fleet:
    """Every setup state and health rule of SPEC §5's versori row; credentials with and without
    `errors` and `expiresAt`, auth-scheme configs with validationMessages (SPEC §6.1)."""
    sf = scheme("as_sf_oauth")
    shopify = scheme("as_shopify_key", "api-key", message("Key rotates in 30 days", "warning"))
    # `oauth1` under the `out_of_spec` fault (OUT_OF_SPEC_SCHEMES)
    netsuite = scheme("as_ns_tba", "hmac", message("Token-based auth is disabled", "error"))
    hubspot = scheme("as_hs_oauth", "oauth2", message("Scopes were narrowed", "info"))
    slack = scheme("as_slack_oauth")
    none = scheme("as_none", "none")
    connectors = [
        connector("vc_salesforce", "Salesforce", now, sf),
        connector("vc_shopify", "Shopify", now, shopify),
        connector("vc_netsuite", "NetSuite", now, netsuite),
        connector("vc_hubspot", "HubSpot", now, hubspot),
        connector("vc_slack", "Slack", now, slack),
        connector("vc_webhook", "Webhook", now, none),
    ]
    connections = [
        (
            "vc_salesforce",
            # a temporary credential: Versori deletes it in 30 days
            connection(
                "conn_sf_prod",
                "Salesforce prod",
                now,
                [usage("sf1", sf, now, expires_in=30 * DAY)],
            ),
        ),
        (
            "vc_salesforce",
            connection(
                "conn_sf_eu",
                "Salesforce EU",
                now,
                [usage("sf2", sf, now, errors=["invalid_grant: refresh token revoked"])],
            ),
        ),
        (
            "vc_salesforce",
            connection(
                "conn_sf_sandbox",
                "Salesforce sandbox",
                now,
                [usage("sf3", sf, now, expires_in=-2 * HOUR)],
            ),
        ),
        (
            "vc_shopify",
            connection("conn_shopify", "Shopify store", now, [usage("sh1", shopify, now)]),
        ),
        (
            "vc_netsuite",
            connection("conn_netsuite", "NetSuite ERP", now, [usage("ns1", netsuite, now)]),
        ),
        (
            "vc_hubspot",
            connection("conn_hubspot", "HubSpot CRM", now, [usage("hs1", hubspot, now)]),
        ),
        (
            "vc_slack",
            connection(
                "conn_slack",
                "Slack alerts",
                now,
                [usage("sl1", slack, now)],
                [usage("sl2", slack, now, errors=ABSENT, expires_in=12 * HOUR)],
            ),
        ),
        ("vc_webhook", connection("conn_webhook", "Inbound webhook", now, [])),
    ]
    return connectors, connections


def generated(now: float, size: int) -> Fleet:
    """`size` connections, five per connector, a steady share invalid or expired."""
    auth = scheme("as_gen")
    connectors = [connector(f"vc_{i:05d}", f"System{i}", now, auth) for i in range((size + 4) // 5)]

    def make(i: int, overrides: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        cred = usage(f"g{i}", auth, now, **overrides)
        return f"vc_{i // 5:05d}", connection(f"conn_{i:06d}", f"Conn {i}", now, [cred])

    return connectors, fleets.generate(size, now, VARIANTS, make)


class VersoriSim(VendorSim):
    name = "versori"
    token = TOKEN
    organisation_id = ORGANISATION_ID
    parents: dict[str, str]
    listed: dict[str, dict[str, Any]]
    # Applied to each credential usage of the connection.
    healthy_fields: ClassVar[dict[str, Any]] = {
        "credential": {"errors": []},
        "authSchemeConfig": {"validationMessages": []},
    }
    health_fields: ClassVar[dict[str, dict[str, Any]]] = {
        "healthy": {},
        "degraded": {
            "authSchemeConfig": {
                "validationMessages": [message("Client secret expires soon", "warning")]
            }
        },
        "broken": {
            "authSchemeConfig": {
                "validationMessages": [message("Client secret rejected by the provider", "error")]
            }
        },
        "relink_needed": {"credential": {"errors": ["invalid_grant: refresh token revoked"]}},
    }
    story = (
        ("id", "conn_sf_prod", "broken"),
        ("id", "conn_sf_prod", "healthy"),
    )

    def reset(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        connectors, connections = curated(now) if self.size is None else generated(now, self.size)
        self.listed = {c["id"]: c for c in connectors}
        self.parents = {conn["id"]: parent for parent, conn in connections}
        self.connectors = {conn["id"]: conn for _, conn in connections}
        self.fault = None

    def fleet(self, now: float, size: int | None) -> list[dict[str, Any]]:
        _, connections = curated(now) if size is None else generated(now, size)
        return [conn for _, conn in connections]

    def set_health(self, c: dict[str, Any], health: str, now: float) -> None:
        for group in ("action", "trigger"):
            for use in c["credentials"].get(group, []):
                super().set_health(use, health, now)
                use["credential"].pop("expiresAt", None)  # never deleted
                # The connector's shared copy of the scheme would still apply: detach from it.
                scheme_id = str(use["authSchemeConfig"].get("id"))
                if not scheme_id.endswith(f"@{c['id']}"):
                    use["authSchemeConfig"]["id"] = f"{scheme_id}@{c['id']}"
        c["updatedAt"] = iso(now)

    def out_of_spec(self, item: dict[str, Any]) -> dict[str, Any]:
        return out_of_spec(item)

    def authorized(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {self.token}"

    unauthorized_body: ClassVar[Mapping[str, Any]] = {
        "code": 401,
        "message": "unauthorized: invalid API key",
    }

    page_size = PageSize(
        "first",
        DEFAULT_FIRST,
        MAX_FIRST,
        {"code": 400, "message": "first must be 1..100"},
    )

    def add_routes(self, app: web.Application, prefix: str) -> None:
        app.router.add_get(prefix + "/o/{organisation_id}/connectors", self._list)

    def page_of_connectors(self) -> list[dict[str, Any]]:
        """Connectors as served: each with its current connections embedded."""
        out = []
        for cid, conn in self.listed.items():
            embedded = [c for k, c in self.connectors.items() if self.parents.get(k) == cid]
            out.append({**conn, "connections": embedded})
        return out

    async def _list(self, request: web.Request) -> web.Response:
        response, fault, first = await self.guard_listing(request)
        if response is not None:
            return response
        if request.match_info["organisation_id"] != self.organisation_id:
            return web.json_response({"code": 404, "message": "organisation not found"}, status=404)
        listing = self.page_of_connectors()
        items, cursor = self.page(listing, request.query.get("after"), first, fault)
        body: dict[str, Any] = {
            "totalCount": len(listing),
            "connectors": self.served(items, fault),
        }
        if cursor:
            body["next"] = cursor
        return json_body(body)


SIMULATOR = VersoriSim

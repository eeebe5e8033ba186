"""Every endpoint the simulators serve, crawled over HTTP and checked against the vendors' schemas.

The schemas in tests/schemas/ are the vendors' own published definitions (tests/schemas/README.md
names each source). A crawl follows every page with a small page size, with each vendor's real
auth, so that pagination is exercised and every connector is seen.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
from jsonschema import Draft202012Validator, FormatChecker

from exporter.simulator import Simulator

SCHEMAS = Path(__file__).parent.parent / "schemas"
# Small pages: every listing of a curated fleet spans several of them.
PAGE = 2
# A bound on every crawl loop: far more pages than any fleet the tests build.
MAX_PAGES = 2000


@dataclass(frozen=True)
class Endpoint:
    """One endpoint of one vendor, and the schema (file, optional `$defs` entry) its body has."""

    name: str
    vendor: str
    schema: str
    ref: str | None = None


ENDPOINTS = (
    Endpoint("fivetran GET /v1/connections", "fivetran", "fivetran_list_connections.json"),
    Endpoint("fivetran GET /v1/connectors", "fivetran", "fivetran_list_connectors_legacy.json"),
    Endpoint(
        "bindbee GET /api/hris/v1/connectors",
        "bindbee",
        "bindbee_connectors.json",
        "PaginatedResponse_HrisConnectorResponse_",
    ),
    Endpoint(
        "bindbee GET /api/{ats,lms}/v1/connectors",
        "bindbee",
        "bindbee_connectors.json",
        "PaginatedResponse_ConnectorResponse_",
    ),
    Endpoint("apideck GET /connector/connectors", "apideck", "apideck_connector_connectors.json"),
    Endpoint("apideck GET /vault/consumers", "apideck", "apideck_vault_consumers.json"),
    Endpoint("apideck GET /vault/consumers/{id}", "apideck", "apideck_vault_consumer.json"),
    Endpoint("openint GET /connector", "openint", "openint_connector.json"),
    Endpoint("openint GET /connection", "openint", "openint_connection.json"),
    Endpoint("versori GET /o/{org}/connectors", "versori", "versori_connectors.json"),
)

# The formats the schemas use that say something about a served value. `ulid` (Versori ids)
# and `uri` are not asserted: the simulators use readable ids that tests name, and URIs
# carry no health signal.
FORMATS = FormatChecker(formats=())


@FORMATS.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True  # `type` speaks for non-strings
    # RFC 3339: a date, a "T", a time and a zone (Python parses a superset, so check the "T").
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return "T" in value.upper() and parsed.tzinfo is not None


@FORMATS.checks("uuid", raises=ValueError)
def _uuid(value: object) -> bool:
    return not isinstance(value, str) or bool(UUID(value))


@cache
def validator(schema: str, ref: str | None) -> Draft202012Validator:
    document = json.loads((SCHEMAS / schema).read_text())
    if ref is not None:
        # A file of `$defs` only: validate against one of them, resolved within the file.
        document = {**document, "$ref": f"#/$defs/{ref}"}
    Draft202012Validator.check_schema(document)
    return Draft202012Validator(document, format_checker=FORMATS)


def problems(endpoint: Endpoint, url: str, body: Any) -> list[str]:
    """What the schema rejects in one served body (empty when it conforms)."""
    out = []
    for error in validator(endpoint.schema, endpoint.ref).iter_errors(body):
        # A failed oneOf/anyOf says only "not valid under any": name the reason deepest in
        # the document, which is in the branch that was meant (the others fail at its top).
        cause = error
        for _ in range(100):
            if not cause.context:
                break
            cause = max(cause.context, key=lambda e: len(e.absolute_path))
        out.append(f"{url} {cause.json_path}: {cause.message[:200]}")
    return sorted(out)


def headers(sim: Simulator, vendor: str) -> dict[str, str]:
    """The vendor's real auth headers, from the account the exporter would poll it with."""
    account = next(a for a in sim.accounts() if a["vendor"] == vendor)
    if vendor == "fivetran":
        basic = httpx.BasicAuth(account["api_key"], account["api_secret"])
        request = next(basic.auth_flow(httpx.Request("GET", "http://x")))
        return {"Authorization": request.headers["Authorization"]}
    if vendor == "apideck":
        return {
            "Authorization": f"Bearer {account['api_key']}",
            "x-apideck-app-id": account["app_id"],
        }
    return {"Authorization": f"Bearer {account['token']}"}


class Crawler:
    """Fetches every page of every endpoint of a running simulator."""

    def __init__(self, sim: Simulator, client: httpx.AsyncClient) -> None:
        self.sim, self.client = sim, client

    async def get(self, vendor: str, path: str, params: Mapping[str, str | int]) -> tuple[str, Any]:
        response = await self.client.get(
            self.sim.url(vendor) + path, params=dict(params), headers=headers(self.sim, vendor)
        )
        assert response.status_code == 200, (response.url, response.status_code, response.text)
        assert response.headers["content-type"].startswith("application/json")
        return str(response.url), response.json()

    async def cursor_pages(
        self,
        vendor: str,
        path: str,
        size: Mapping[str, int],
        cursor_param: str,
        next_cursor: Any,
    ) -> list[tuple[str, Any]]:
        """Pages of a cursor listing: `next_cursor(body)` gives the next cursor or None."""
        pages: list[tuple[str, Any]] = []
        params: dict[str, str | int] = dict(size)
        for _ in range(MAX_PAGES):
            url, body = await self.get(vendor, path, params)
            pages.append((url, body))
            cursor = next_cursor(body)
            if not cursor:
                return pages
            params[cursor_param] = cursor
        raise AssertionError(f"{path} did not end within {MAX_PAGES} pages")

    async def offset_pages(self, vendor: str, path: str) -> list[tuple[str, Any]]:
        """Pages of an OpenInt listing, until an empty page (neither `total` nor
        `has_next_page` is trusted: the real server computes both oddly)."""
        pages: list[tuple[str, Any]] = []
        offset = 0
        for _ in range(MAX_PAGES):
            url, body = await self.get(vendor, path, {"limit": PAGE, "offset": offset})
            pages.append((url, body))
            items = body.get("items") if isinstance(body, dict) else None
            if not items:
                return pages
            offset += len(items)
        raise AssertionError(f"{path} did not end within {MAX_PAGES} pages")

    async def crawl(self, endpoint: Endpoint) -> list[tuple[str, Any]]:
        """Every page `endpoint` serves now, as (url, body)."""
        name = endpoint.name
        if name.startswith("fivetran"):
            path = name.split(" ", 2)[2]
            key = "next_cursor" if path.endswith("connections") else "nextCursor"
            return await self.cursor_pages(
                "fivetran", path, {"limit": PAGE}, "cursor", lambda b: b["data"].get(key)
            )
        if name.startswith("bindbee"):
            categories = ("hris",) if "hris" in name else ("ats", "lms")
            pages = []
            for category in categories:
                pages += await self.cursor_pages(
                    "bindbee",
                    f"/api/{category}/v1/connectors",
                    {"page_size": PAGE},
                    "cursor",
                    lambda b: b.get("cursor"),
                )
            return pages
        if name.startswith("apideck"):
            return await self.apideck(name)
        if name.startswith("openint"):
            return await self.offset_pages("openint", name.split(" ", 2)[2])
        organisation = next(a for a in self.sim.accounts() if a["vendor"] == "versori")[
            "organisation_id"
        ]
        return await self.cursor_pages(
            "versori",
            f"/o/{organisation}/connectors",
            {"first": PAGE},
            "after",
            lambda b: b.get("next"),
        )

    async def apideck(self, name: str) -> list[tuple[str, Any]]:
        def next_cursor(body: Any) -> Any:
            return body.get("meta", {}).get("cursors", {}).get("next")

        limit = {"limit": PAGE}
        if name.endswith("/connector/connectors"):
            return await self.cursor_pages(
                "apideck", "/connector/connectors", limit, "cursor", next_cursor
            )
        listing = await self.cursor_pages(
            "apideck", "/vault/consumers", limit, "cursor", next_cursor
        )
        if name.endswith("/vault/consumers"):
            return listing
        ids = [c["consumer_id"] for _, body in listing for c in body["data"]]
        assert ids, "the consumer listing is empty"
        return [await self.get("apideck", f"/vault/consumers/{cid}", {}) for cid in ids]

    async def check(self, endpoint: Endpoint) -> list[str]:
        """What the schema rejects on every page of `endpoint` (empty when all conform)."""
        out: list[str] = []
        for url, body in await self.crawl(endpoint):
            out += problems(endpoint, url, body)
        return out

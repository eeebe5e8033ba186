"""Crawling what the simulators serve over HTTP, and checking it against the vendors' schemas.

The schemas in tests/schemas/ are the vendors' own published definitions (tests/schemas/README.md
names each source). Which endpoints a vendor has, their schemas and how to crawl them are the
vendor's own: its quirk test module (tests/vendors/test_<vendor>.py) declares SCHEMA_ENDPOINTS.
A crawl follows every page with a small page size, with the auth headers the exporter sends, so
that pagination is exercised and every connector is seen.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any
from uuid import UUID

import httpx
from jsonschema import Draft202012Validator, FormatChecker

from exporter.simulator import SPECS, Simulator
from exporter.vendors import REGISTRY
from tests.conftest import make_config

SCHEMAS = Path(__file__).parent.parent / "schemas"
# Small pages: every listing of a curated fleet spans several of them.
PAGE = 2
# A bound on every crawl loop: far more pages than any fleet the tests build.
MAX_PAGES = 2000


# One served page: the URL it was fetched from, and its JSON body.
Page = tuple[str, Any]
# How to fetch every page an endpoint serves now.
Crawl = Callable[["Crawler"], Awaitable[list[Page]]]


@dataclass(frozen=True)
class Endpoint:
    """One endpoint a vendor's simulator serves, as its quirk test module declares it.

    `schema` is a file in tests/schemas/ (`ref` one of its `$defs`); `crawl` fetches every page
    the endpoint serves now; `out_of_spec` says the `out_of_spec` fault makes it serve values
    the schema rejects (what real accounts are known to send).
    """

    name: str
    schema: str
    crawl: Crawl
    ref: str | None = None
    out_of_spec: bool = False


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


def vendor_tests(vendor: str) -> ModuleType:
    """tests/vendors/test_<vendor>.py: its quirks, and what its simulator serves."""
    return importlib.import_module(f"tests.vendors.test_{vendor}")


def endpoints() -> list[tuple[str, Endpoint]]:
    """(vendor, endpoint) for every endpoint of every registered vendor, in registry order.

    Each vendor's quirk test module declares SCHEMA_ENDPOINTS; one without it (or with none)
    fails here, at collection, rather than leaving its simulator unchecked.
    """
    found: list[tuple[str, Endpoint]] = []
    for vendor in REGISTRY:
        declared = getattr(vendor_tests(vendor), "SCHEMA_ENDPOINTS", ())
        assert declared, f"tests/vendors/test_{vendor}.py declares no SCHEMA_ENDPOINTS"
        found += [(vendor, e) for e in declared]
    return found


class Crawler:
    """Fetches pages from a running simulator with each vendor's real auth headers: those the
    exporter's adapter sends for the config account that polls that simulator."""

    def __init__(self, sim: Simulator, client: httpx.AsyncClient) -> None:
        self.sim, self.client = sim, client
        self._headers: dict[str, dict[str, str]] = {}

    def account(self, vendor: str) -> dict[str, Any]:
        """The config account (a mapping, as in a config file) that polls `vendor`."""
        return SPECS[vendor].account(self.sim.url(vendor))

    def headers(self, vendor: str) -> dict[str, str]:
        if vendor not in self._headers:
            account = make_config([self.account(vendor)]).accounts[0]
            self._headers[vendor] = REGISTRY[vendor].adapter.headers(account)
        return self._headers[vendor]

    async def get(self, vendor: str, path: str, params: Mapping[str, str | int]) -> Page:
        response = await self.client.get(
            self.sim.url(vendor) + path, params=dict(params), headers=self.headers(vendor)
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
        next_cursor: Callable[[Any], Any],
    ) -> list[Page]:
        """Pages of a cursor listing: `next_cursor(body)` gives the next cursor or None."""
        pages: list[Page] = []
        params: dict[str, str | int] = dict(size)
        for _ in range(MAX_PAGES):
            url, body = await self.get(vendor, path, params)
            pages.append((url, body))
            cursor = next_cursor(body)
            if not cursor:
                return pages
            params[cursor_param] = cursor
        raise AssertionError(f"{path} did not end within {MAX_PAGES} pages")

    async def offset_pages(
        self,
        vendor: str,
        path: str,
        items: Callable[[Any], Any],
    ) -> list[Page]:
        """Pages of a `limit`/`offset` listing, until a page whose `items(body)` is empty (a
        page's own totals or "has next" flags are not trusted)."""
        pages: list[Page] = []
        offset = 0
        for _ in range(MAX_PAGES):
            url, body = await self.get(vendor, path, {"limit": PAGE, "offset": offset})
            pages.append((url, body))
            found = items(body) if isinstance(body, dict) else None
            if not found:
                return pages
            offset += len(found)
        raise AssertionError(f"{path} did not end within {MAX_PAGES} pages")

    async def check(self, endpoint: Endpoint) -> list[str]:
        """What the schema rejects on every page of `endpoint` (empty when all conform)."""
        out: list[str] = []
        for url, body in await endpoint.crawl(self):
            out += problems(endpoint, url, body)
        return out


async def served(sim: Simulator, endpoints: Iterable[Endpoint]) -> dict[str, list[Any]]:
    """Every page body of each of `endpoints`, by endpoint name."""
    async with httpx.AsyncClient(timeout=10) as client:
        crawler = Crawler(sim, client)
        return {e.name: [body for _, body in await e.crawl(crawler)] for e in endpoints}


def items(
    pages: Mapping[str, list[Any]], endpoint: str, key: Callable[[Any], Iterable[Any]]
) -> list[dict[str, Any]]:
    """The objects `key(body)` lists on every page of `endpoint`."""
    return [item for body in pages[endpoint] for item in key(body)]

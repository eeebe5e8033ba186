"""What every vendor simulator shares: the fleet, pagination, auth and the fault switch."""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import json
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from aiohttp import web

FAULT_MODES = ("error", "rate_limit", "slow", "malformed", "html", "cursor_loop", "unauthorized")


def iso(ts: float) -> str:
    """RFC 3339 with microseconds and a Z, as the vendors' seeds show."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def deep_merge(target: dict[str, Any], patch: Mapping[str, Any]) -> None:
    for key, value in patch.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            deep_merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


@dataclass
class Fault:
    """The next `count` API requests (-1: until cleared) misbehave in `mode`."""

    mode: str
    count: int = -1
    status: int = 500
    retry_after: str | None = "1"
    delay: float = 5.0


class VendorSim(ABC):
    """One fake vendor API: its routes under `/<name>`, its fleet, its faults."""

    name: ClassVar[str]
    # health values the simulator can put a connector into (what the vendor can express)
    healths: ClassVar[tuple[str, ...]]

    def __init__(self, size: int | None = None) -> None:
        self.size = size
        self.connectors: dict[str, dict[str, Any]] = {}
        self.fault: Fault | None = None
        self.requests = 0
        # Concurrency seen by this vendor's API: tests assert one account is never polled twice
        # at once.
        self.in_flight = 0
        self.max_in_flight = 0
        self.reset()

    def resize(self, size: int | None) -> None:
        """Serve a generated fleet of `size` connectors (None: the curated one) from now on."""
        self.size = size
        self.reset()

    def reset(self) -> None:
        self.connectors = {c["id"]: c for c in self.fleet(time.time(), self.size)}
        self.fault = None

    @abstractmethod
    def fleet(self, now: float, size: int | None) -> list[dict[str, Any]]:
        """The initial connectors: a curated set covering every state, or `size` generated."""

    @abstractmethod
    def set_health(self, connector: dict[str, Any], health: str, now: float) -> None:
        """Change vendor-native fields so that the exporter derives `health`."""

    @abstractmethod
    def authorized(self, request: web.Request) -> bool: ...

    @abstractmethod
    def unauthorized(self) -> web.Response: ...

    @abstractmethod
    def add_routes(self, app: web.Application, prefix: str) -> None: ...

    # --- helpers for the vendor handlers ------------------------------------------------
    def take_fault(self) -> Fault | None:
        fault = self.fault
        if fault is None:
            return None
        if fault.count > 0:
            fault.count -= 1
            if fault.count == 0:
                self.fault = None
        return fault

    async def guard(self, request: web.Request) -> tuple[web.Response | None, Fault | None]:
        """Auth and the fault switch, before a vendor handler answers. Returns (response, fault)."""
        self.requests += 1
        fault = self.take_fault()
        if fault is not None:
            if fault.mode == "slow":
                await asyncio.sleep(fault.delay)
            elif fault.mode == "error":
                return web.json_response(
                    {"message": "simulated server error"}, status=fault.status
                ), fault
            elif fault.mode == "rate_limit":
                headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
                return web.json_response(
                    {"message": "simulated rate limit"}, status=429, headers=headers
                ), fault
            elif fault.mode == "malformed":
                return web.Response(
                    body=b'{"data": {"items": [', content_type="application/json"
                ), fault
            elif fault.mode == "html":
                return web.Response(
                    text="<html><body>Service temporarily unavailable</body></html>",
                    content_type="text/html",
                ), fault
            elif fault.mode == "unauthorized":
                return self.unauthorized(), fault
        if not self.authorized(request):
            return self.unauthorized(), fault
        return None, fault

    @staticmethod
    def page(
        items: list[dict[str, Any]], cursor: str | None, size: int, fault: Fault | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """The page of `items` after `cursor`, and the next cursor (None at the end)."""
        offset = decode_cursor(cursor)
        end = offset + size
        if fault is not None and fault.mode == "cursor_loop":
            return items[offset:end], encode_cursor(offset or size)
        return items[offset:end], encode_cursor(end) if end < len(items) else None


def encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode()


def decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise web.HTTPBadRequest(text="invalid cursor") from None
    if not text.startswith("o:") or not text[2:].isdigit():
        raise web.HTTPBadRequest(text="invalid cursor")
    return int(text[2:])


def int_param(request: web.Request, name: str, default: int) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        return None


def json_body(data: Any) -> web.Response:
    return web.Response(body=json.dumps(data).encode(), content_type="application/json")

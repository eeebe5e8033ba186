"""Built-in vendor simulators: real HTTP servers on 127.0.0.1 following the seed documents.

Every vendor API lives under `/<vendor>` (its `base_url`), and a control API under
`/_control` lets tests and the demo change the fleet and inject faults:

- `GET /_control/{vendor}/connectors`: the vendor objects as served
- `POST /_control/{vendor}/connectors/{id}/health` `{"health": "broken"}`
- `PATCH /_control/{vendor}/connectors/{id}` (a JSON object merged in), `DELETE` (removes it)
  (`{id}` is the exporter's `connector_id`, slashes included, e.g. `consumer/connection`)
- `POST /_control/{vendor}/faults` `{"mode": "error", "count": 2, "status": 503,
  "retry_after": "1", "delay": 5}` (modes: `FAULT_MODES` and the out-of-spec scenarios
  `SCENARIO_MODES` in base.py; `"retry_after": null` sends no Retry-After);
  `DELETE /_control/{vendor}/faults`
- `POST /_control/{vendor}/settings` `{"latency_ms": 150, "size": 1000}` (and vendor knobs such
  as `per_consumer` where a simulator has it)
- `POST /_control/reset`: the initial fleets, no faults
- `POST /_control/{vendor}/webhooks` `{"url": ..., "secret": ...}`: from now on, every health
  change (control API or demo story) also sends the vendor's signed webhooks to `url`;
  `GET` lists the URLs and delivery outcomes (never the secrets), `DELETE` forgets them
"""

from __future__ import annotations

import importlib
import pkgutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from exporter.simulator.base import ALL_MODES, Fault, VendorSim, deep_merge
from exporter.vendors import REGISTRY


@dataclass(frozen=True)
class SimSpec:
    """What `exporter/simulator/<vendor>.py` declares (its `SIMULATOR`): its server, config
    account and story."""

    sim: type[VendorSim]
    account: Callable[[str], dict[str, Any]]  # base_url -> the config account that polls it
    story: tuple[tuple[str, str, str], ...]  # (field, value naming a connector, health)


def _spec(module: ModuleType) -> SimSpec:
    sim: type[VendorSim] = module.SIMULATOR
    return SimSpec(sim, sim.account_config, sim.story)


# One simulator per registered vendor, in the registry's order; a vendor without one fails here.
SPECS: dict[str, SimSpec] = {
    name: _spec(importlib.import_module(f"{__name__}.{name}")) for name in REGISTRY
}
SIMULATORS: tuple[type[VendorSim], ...] = tuple(s.sim for s in SPECS.values())
assert {i.name for i in pkgutil.iter_modules(__path__)} - {"base", "fleets"} == set(SPECS), (
    "every simulator module belongs to a registered vendor"
)


class Simulator:
    """All vendor simulators behind one aiohttp server."""

    def __init__(self, sizes: Mapping[str, int] | None = None) -> None:
        sizes = sizes or {}
        self.vendors: dict[str, VendorSim] = {
            cls.name: cls(sizes.get(cls.name)) for cls in SIMULATORS
        }
        self._runner: web.AppRunner | None = None
        self.port = 0

    @web.middleware
    async def _track(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        sim = self.vendors.get(request.path.split("/", 2)[1])
        if sim is None:
            return await handler(request)
        sim.in_flight += 1
        sim.max_in_flight = max(sim.max_in_flight, sim.in_flight)
        try:
            return await sim.finish(request, await handler(request))
        finally:
            sim.in_flight -= 1

    def app(self) -> web.Application:
        app = web.Application(client_max_size=1024 * 1024, middlewares=[self._track])
        for name, sim in self.vendors.items():
            sim.add_routes(app, f"/{name}")
        app.router.add_get("/_control/{vendor}/connectors", self._list)
        app.router.add_post("/_control/{vendor}/connectors/{id:.+}/health", self._health)
        app.router.add_patch("/_control/{vendor}/connectors/{id:.+}", self._patch)
        app.router.add_delete("/_control/{vendor}/connectors/{id:.+}", self._delete)
        app.router.add_post("/_control/{vendor}/faults", self._set_fault)
        app.router.add_delete("/_control/{vendor}/faults", self._clear_fault)
        app.router.add_post("/_control/{vendor}/settings", self._settings)
        app.router.add_post("/_control/reset", self._reset)
        app.router.add_post("/_control/{vendor}/webhooks", self._add_webhook)
        app.router.add_get("/_control/{vendor}/webhooks", self._list_webhooks)
        app.router.add_delete("/_control/{vendor}/webhooks", self._clear_webhooks)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        # A "slow" fault sleeps server-side; when the client gives up, stop sleeping too, and
        # never let a stop wait for such a handler.
        self._runner = web.AppRunner(
            self.app(),
            access_log=None,
            handle_signals=False,
            handler_cancellation=True,
            shutdown_timeout=0.5,
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, reuse_address=True)
        await site.start()
        server: Any = site._server  # aiohttp exposes no public accessor for the bound port
        self.port = server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        for sim in self.vendors.values():
            await sim.webhooks.aclose()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def url(self, vendor: str) -> str:
        return f"http://127.0.0.1:{self.port}/{vendor}"

    def accounts(self, webhook_secret: str | None = None) -> list[dict[str, Any]]:
        """Exporter config accounts that poll these simulators with their credentials.

        With `webhook_secret`, every account whose vendor sends webhooks verifies them with
        the key that vendor signs with (see `add_webhooks`).
        """
        out = []
        for name, spec in SPECS.items():
            account = spec.account(self.url(name))
            if webhook_secret is not None and REGISTRY[name].webhook is not None:
                account["webhook_secret"] = self.vendors[name].webhook_key(webhook_secret)
            out.append(account)
        return out

    # --- control API ------------------------------------------------------------------
    def _vendor(self, request: web.Request) -> VendorSim:
        sim = self.vendors.get(request.match_info["vendor"])
        if sim is None:
            raise web.HTTPNotFound(text="unknown vendor")
        return sim

    def _connector(self, request: web.Request) -> tuple[VendorSim, dict[str, Any]]:
        sim = self._vendor(request)
        connector = sim.connectors.get(request.match_info["id"])
        if connector is None:
            raise web.HTTPNotFound(text="unknown connector")
        return sim, connector

    async def _list(self, request: web.Request) -> web.Response:
        return web.json_response(list(self._vendor(request).connectors.values()))

    async def _health(self, request: web.Request) -> web.Response:
        sim, connector = self._connector(request)
        body = await request.json()
        health = body.get("health") if isinstance(body, dict) else None
        if health not in sim.healths:
            raise web.HTTPBadRequest(text=f"{sim.name} can express: {', '.join(sim.healths)}")
        sim.change_health(connector, health, time.time())
        return web.json_response(connector)

    async def _patch(self, request: web.Request) -> web.Response:
        _, connector = self._connector(request)
        body = await request.json()
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(text="expected a JSON object")
        deep_merge(connector, body)
        return web.json_response(connector)

    async def _delete(self, request: web.Request) -> web.Response:
        sim, _ = self._connector(request)
        del sim.connectors[request.match_info["id"]]
        return web.Response(status=204)

    async def _set_fault(self, request: web.Request) -> web.Response:
        sim = self._vendor(request)
        body = await request.json()
        if not isinstance(body, dict) or body.get("mode") not in ALL_MODES:
            raise web.HTTPBadRequest(text=f"mode must be one of: {', '.join(ALL_MODES)}")
        fields = {k: body[k] for k in ("count", "status", "retry_after", "delay") if k in body}
        sim.fault = Fault(mode=body["mode"], **fields)
        return web.json_response({"mode": sim.fault.mode, "count": sim.fault.count})

    async def _clear_fault(self, request: web.Request) -> web.Response:
        self._vendor(request).fault = None
        return web.Response(status=204)

    async def _settings(self, request: web.Request) -> web.Response:
        """`{"latency_ms": 150}` delays every API answer; `{"size": N}` serves N generated
        connectors (null: the curated fleet); vendor-specific knobs (e.g. `per_consumer`) too."""
        sim = self._vendor(request)
        body = await request.json()
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(text="expected a JSON object")
        for key, value in body.items():
            if key == "size":
                if value is not None and (not isinstance(value, int) or value < 0):
                    raise web.HTTPBadRequest(text="size: a whole number or null")
                continue
            current = getattr(sim, key, None)
            if (
                key.startswith("_")
                or not isinstance(current, int | float)
                or isinstance(current, bool)
            ):
                raise web.HTTPBadRequest(text=f"{sim.name} has no numeric setting {key!r}")
            if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                raise web.HTTPBadRequest(text=f"{key}: a number >= 0")
            setattr(sim, key, type(current)(value))
        if "size" in body:
            sim.resize(body["size"])
        return web.json_response({"size": sim.size, "latency_ms": sim.latency_ms})

    def add_webhooks(self, base_url: str, secret: str) -> None:
        """Send every vendor's webhooks to `<base_url>/<vendor>/<account name>` (the exporter's
        `POST /webhooks/{vendor}/{account}`), for the accounts `accounts()` describes."""
        for name, spec in SPECS.items():
            sim = self.vendors[name]
            if REGISTRY[name].webhook is not None:
                account = spec.account(self.url(name))["name"]
                sim.webhooks.add(
                    f"{base_url.rstrip('/')}/{name}/{account}", sim.webhook_key(secret)
                )

    async def _add_webhook(self, request: web.Request) -> web.Response:
        sim = self._vendor(request)
        body = await request.json()
        url = body.get("url") if isinstance(body, dict) else None
        secret = body.get("secret") if isinstance(body, dict) else None
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise web.HTTPBadRequest(text="url must be an http(s) URL")
        if not isinstance(secret, str) or not secret:
            raise web.HTTPBadRequest(text="secret must be a non-empty string")
        if REGISTRY[sim.name].webhook is None:
            raise web.HTTPBadRequest(text=f"{sim.name} sends no webhooks")
        sim.webhooks.add(url, sim.webhook_key(secret))
        return web.json_response({"urls": [t.url for t in sim.webhooks.targets]})

    async def _list_webhooks(self, request: web.Request) -> web.Response:
        hooks = self._vendor(request).webhooks
        return web.json_response(
            {"urls": [t.url for t in hooks.targets], "deliveries": hooks.results[-100:]}
        )

    async def _clear_webhooks(self, request: web.Request) -> web.Response:
        self._vendor(request).webhooks.clear()
        return web.Response(status=204)

    async def _reset(self, _: web.Request) -> web.Response:
        for sim in self.vendors.values():
            sim.reset()
        return web.Response(status=204)

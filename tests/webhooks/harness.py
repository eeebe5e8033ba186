"""The real daemon with its webhook listener on 127.0.0.1, for the listener tests over every
vendor (tests/webhooks/) and each vendor's own event semantics (tests/vendors/test_<v>.py).

A vendor with webhooks hands the generic tests what only it knows from its quirk module,
`tests/vendors/test_<vendor>.py`:

- `webhook_event(connector_id, key) -> WebhookSample`: a body of an event that changes a healthy
  connector, the health `/metrics` then shows and the sync result it counts;
- `WEBHOOK_SIM_CHANGES`: (connector, health) changes made through the simulator's control API
  that the simulator pushes as webhooks (tests/webhooks/test_simulator_webhooks.py);
- `WEBHOOK_SIGNATURE_BINDS_BODY = False` only where the scheme does not sign the body.

A registered vendor with webhooks and without these fails the generic tests, loudly.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from types import ModuleType

import httpx
from prometheus_client.parser import text_string_to_metric_families

from exporter.daemon import Daemon
from exporter.scheduler import AccountRunner
from exporter.simulator import Simulator
from exporter.vendors import REGISTRY
from exporter.vendors.events import Webhook
from tests.conftest import make_config, sim_account

# The key every test account verifies with (a vendor may sign with another: its simulator's
# `webhook_key`, e.g. an API key, which is then the account's `webhook_secret`).
SECRET = "webhook-test-secret-4d1c"
WEBHOOK_VENDORS = [name for name, v in REGISTRY.items() if v.webhook is not None]
NO_WEBHOOK_VENDORS = [name for name, v in REGISTRY.items() if v.webhook is None]
# Small enough that an oversize body is cheap to send, large enough for every sample event.
MAX_BODY_BYTES = 4096

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@dataclass(frozen=True)
class WebhookSample:
    """One event body from a vendor's quirk module and what it must do to a healthy connector."""

    body: bytes
    health: str  # the connector's health on /metrics once the event is applied
    sync_result: str | None = None  # the connector_syncs_total `result` it counts, if any


def quirks(vendor: str) -> ModuleType:
    """tests/vendors/test_<vendor>.py, where a vendor's test specifics live."""
    return importlib.import_module(f"tests.vendors.test_{vendor}")


def webhook_of(vendor: str) -> Webhook:
    spec = REGISTRY[vendor].webhook
    assert spec is not None, f"{vendor} sends no webhooks"
    return spec


@dataclass
class Running:
    daemon: Daemon
    sim: Simulator
    metrics_url: str
    hooks_url: str
    client: httpx.AsyncClient

    def runner(self, vendor: str) -> AccountRunner:
        return self.daemon.scheduler.runners[f"{vendor}/{self.account(vendor)}"]

    def account(self, vendor: str) -> str:
        name: str = sim_account(self.sim, vendor)["name"]
        return name

    def key(self, vendor: str) -> bytes:
        """The key `vendor` signs with, the account's `webhook_secret`."""
        return self.sim.vendors[vendor].webhook_key(SECRET).encode()

    def signed(self, vendor: str, body: bytes, key: bytes | None = None) -> dict[str, str]:
        """The headers the vendor sends with `body`, from its module's own `sign`."""
        headers = webhook_of(vendor).sign(self.key(vendor) if key is None else key, body)
        return {**headers, "Content-Type": "application/json"}

    def path(self, vendor: str) -> str:
        return f"/webhooks/{vendor}/{self.account(vendor)}"

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
        return await self.client.post(f"{self.hooks_url}{path}", content=body, headers=headers)

    async def send(
        self, vendor: str, body: bytes, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        """POST `body` to the vendor's account, signed as the vendor would unless `headers`."""
        sent = self.signed(vendor, body) if headers is None else headers
        return await self.post(self.path(vendor), body, sent)

    async def samples(self) -> Samples:
        text = (await self.client.get(self.metrics_url)).text
        out: Samples = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return out

    async def value(self, name: str, **labels: str) -> float | None:
        return (await self.samples()).get((name, tuple(sorted(labels.items()))))

    async def answers(self, vendor: str, result: str, account: str | None = None) -> float:
        """connector_exporter_webhook_requests_total for the vendor's account (vendor "": the
        label set of paths that name no configured account)."""
        if account is None:
            account = self.account(vendor) if vendor else ""
        value = await self.value(
            "connector_exporter_webhook_requests_total",
            vendor=vendor,
            account=account,
            result=result,
        )
        return value or 0.0

    async def connector_value(
        self, name: str, vendor: str, cid: str, **labels: str
    ) -> float | None:
        ids = {"vendor": vendor, "account": self.account(vendor), "connector_id": cid}
        return await self.value(name, **ids, **labels)

    async def healths(self, vendor: str) -> dict[str, str]:
        """Every connector of the vendor's account with the health /metrics shows."""
        out = {}
        for (name, labels), value in (await self.samples()).items():
            d = dict(labels)
            if name == "connector_health" and value == 1.0 and d["vendor"] == vendor:
                out[d["connector_id"]] = d["health"]
        return out

    async def health(self, vendor: str, connector_id: str) -> str:
        found = (await self.healths(vendor)).get(connector_id)
        assert found is not None, f"no health for {vendor} {connector_id}"
        return found

    async def healthy(self, vendor: str, n: int = 1) -> list[str]:
        """`n` connectors /metrics shows healthy, so that each change is an event's doing."""
        ids = sorted(cid for cid, h in (await self.healths(vendor)).items() if h == "healthy")
        assert len(ids) >= n, f"{vendor}: fewer than {n} healthy connectors: {ids}"
        return ids[:n]


@contextlib.asynccontextmanager
async def listening(
    sim: Simulator,
    vendors: Iterable[str],
    *,
    extra_accounts: Iterable[dict[str, object]] = (),
) -> AsyncIterator[Running]:
    """The daemon polling `vendors` on `sim` (once: a 1 h interval, so nothing below depends on
    a poll), every curated connector healthy, webhooks on for those that send them."""
    accounts = []
    now = time.time()
    for vendor in vendors:
        vsim = sim.vendors[vendor]
        for connector in vsim.connectors.values():
            vsim.set_health(connector, "healthy", now)
        if REGISTRY[vendor].webhook is None:
            accounts.append(sim_account(sim, vendor))
        else:
            accounts.append(sim_account(sim, vendor, webhook_secret=vsim.webhook_key(SECRET)))
    config = make_config(
        [*accounts, *extra_accounts],
        poll_interval="1h",
        listen_address="127.0.0.1:0",
        webhooks={"listen_address": "127.0.0.1:0", "max_body_bytes": MAX_BODY_BYTES},
    )
    daemon = Daemon(config)
    await daemon.start()
    try:
        deadline = time.monotonic() + 20
        while not daemon.scheduler.ready():
            assert time.monotonic() < deadline, "first polls did not finish"
            await asyncio.sleep(0.05)
        async with httpx.AsyncClient(timeout=10) as client:
            yield Running(
                daemon,
                sim,
                f"http://127.0.0.1:{daemon.port}/metrics",
                f"http://127.0.0.1:{daemon.webhook_port}",
                client,
            )
    finally:
        await daemon.stop()

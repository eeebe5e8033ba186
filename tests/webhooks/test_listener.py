"""The webhook listener in the real daemon: signed events change /metrics at once, every
verification failure is refused and counted, and nothing an attacker sends grows memory or
series without bound.

Signatures are computed here from each vendor's documented scheme, independently of the
exporter's own signing helpers.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter.config import ConfigError, parse_config
from exporter.daemon import Daemon
from exporter.simulator import Simulator
from exporter.simulator.base import iso
from exporter.webhooks import RateLimiter, SeenEvents
from tests.conftest import make_config, sim_account

FT_SECRET = b"ft-webhook-secret-4d1c"
AD_SECRET = b"sim-apideck-key"  # Apideck signs with the account's API key
BB_SECRET = b"bb-signature-key-77"
OI_SECRET = b"oi-shared-secret-19"


def ft_sign(body: bytes, secret: bytes = FT_SECRET) -> dict[str, str]:
    """Fivetran: hex HMAC-SHA256 of the raw body (upper case, as Fivetran's examples print)."""
    digest = hmac.new(secret, body, hashlib.sha256).hexdigest().upper()
    return {"X-Fivetran-Signature-256": digest, "Content-Type": "application/json"}


def ft_event(event: str, connector_id: str = "ft_orders", **fields: Any) -> bytes:
    return json.dumps(
        {
            "event": event,
            "created": fields.pop("created", "2026-12-02T01:00:00.000Z"),
            "connector_type": "postgres",
            "connector_id": connector_id,
            "connector_name": connector_id,
            "sync_id": fields.pop("sync_id", "sync-1"),
            "destination_group_id": "warehouse_prod",
            "data": fields,
        }
    ).encode()


@dataclass
class Running:
    daemon: Daemon
    metrics_url: str
    hooks_url: str
    client: httpx.AsyncClient

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
        return await self.client.post(f"{self.hooks_url}{path}", content=body, headers=headers)

    async def samples(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        text = (await self.client.get(self.metrics_url)).text
        out = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return out

    async def value(self, name: str, **labels: str) -> float | None:
        return (await self.samples()).get((name, tuple(sorted(labels.items()))))

    async def answers(self, vendor: str, account: str, result: str) -> float:
        value = await self.value(
            "connector_exporter_webhook_requests_total",
            vendor=vendor,
            account=account,
            result=result,
        )
        return value or 0.0

    async def health(self, vendor: str, connector_id: str) -> str:
        samples = await self.samples()
        for (name, labels), value in samples.items():
            d = dict(labels)
            if (
                name == "connector_health"
                and value == 1.0
                and d["vendor"] == vendor
                and d["connector_id"] == connector_id
            ):
                return d["health"]
        raise AssertionError(f"no health for {vendor} {connector_id}")


@pytest.fixture
async def running(sim: Simulator) -> AsyncIterator[Running]:
    # Every curated connector healthy, so that each change below is the event's doing.
    for name in ("fivetran", "bindbee", "openint"):
        vsim = sim.vendors[name]
        for connector in vsim.connectors.values():
            vsim.set_health(connector, "healthy", time.time())
    config = make_config(
        [
            sim_account(sim, "fivetran", webhook_secret=FT_SECRET.decode()),
            sim_account(sim, "apideck", webhook_secret=AD_SECRET.decode()),
            sim_account(sim, "bindbee", webhook_secret=BB_SECRET.decode()),
            sim_account(sim, "openint", webhook_secret=OI_SECRET.decode()),
            sim_account(sim, "versori"),
        ],
        poll_interval="1h",  # nothing below may depend on a poll
        listen_address="127.0.0.1:0",
        webhooks={"listen_address": "127.0.0.1:0", "max_body_bytes": 4096},
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
                f"http://127.0.0.1:{daemon.port}/metrics",
                f"http://127.0.0.1:{daemon.webhook_port}",
                client,
            )
    finally:
        await daemon.stop()


async def test_connection_failure_breaks_the_connector_at_once(running: Running) -> None:
    assert await running.health("fivetran", "ft_orders") == "healthy"
    polls = running.daemon.scheduler.runners["fivetran/demo"].status.polls_total
    body = ft_event("connection_failure")
    response = await running.post("/webhooks/fivetran/demo", body, ft_sign(body))
    assert response.status_code == 200, response.text
    assert await running.health("fivetran", "ft_orders") == "broken"
    assert await running.answers("fivetran", "demo", "accepted") == 1
    stamp = await running.value(
        "connector_last_event_timestamp_seconds",
        vendor="fivetran",
        account="demo",
        connector_id="ft_orders",
    )
    assert stamp is not None and abs(stamp - time.time()) < 30
    # No poll happened: the change came from the event alone.
    assert running.daemon.scheduler.runners["fivetran/demo"].status.polls_total == polls


async def test_sync_pairs_count_results_and_durations(running: Running) -> None:
    ids = {"vendor": "fivetran", "account": "demo", "connector_id": "ft_crm"}
    now = time.time()
    start = ft_event("sync_start", "ft_crm", created=iso(now - 40), sync_id="s9")
    end = ft_event("sync_end", "ft_crm", created=iso(now - 10), sync_id="s9", status="FAILURE")
    for body in (start, end):
        assert (
            await running.post("/webhooks/fivetran/demo", body, ft_sign(body))
        ).status_code == 200
    assert await running.value("connector_syncs_total", result="failure", **ids) == 1
    assert await running.value("connector_syncs_total", result="success", **ids) is None
    assert await running.value("connector_last_sync_duration_seconds", **ids) == 30.0
    # failed_at became the end time, later than succeeded_at: the poll's rule says failing.
    assert await running.health("fivetran", "ft_crm") == "failing"
    ok = ft_event("sync_end", "ft_crm", created=iso(now - 5), sync_id="s10", status="SUCCESSFUL")
    assert (await running.post("/webhooks/fivetran/demo", ok, ft_sign(ok))).status_code == 200
    assert await running.value("connector_syncs_total", result="success", **ids) == 1
    assert await running.health("fivetran", "ft_crm") == "healthy"


async def test_pause_and_resume(running: Running) -> None:
    for event, health in (("pause_connector", "paused"), ("resume_connector", "healthy")):
        body = ft_event(event, "ft_ads", created=f"2026-12-02T01:0{len(event) % 9}:00Z")
        assert (
            await running.post("/webhooks/fivetran/demo", body, ft_sign(body))
        ).status_code == 200
        assert await running.health("fivetran", "ft_ads") == health


async def test_bad_and_missing_signatures_are_refused_and_counted(running: Running) -> None:
    body = ft_event("connection_failure")
    wrong = ft_sign(body, secret=b"not-the-secret")
    tampered = ft_sign(body)
    cases = [
        wrong,
        {"Content-Type": "application/json"},  # missing
        {**ft_sign(body), "X-Fivetran-Signature-256": ""},  # empty
        {**ft_sign(body), "X-Fivetran-Signature-256": "zz" * 32},  # not hex
    ]
    for headers in cases:
        response = await running.post("/webhooks/fivetran/demo", body, headers)
        assert response.status_code == 401
    # A valid signature of another body does not vouch for this one.
    other = body.replace(b"ft_orders", b"ft_events")
    assert (await running.post("/webhooks/fivetran/demo", other, tampered)).status_code == 401
    assert await running.answers("fivetran", "demo", "bad_signature") == 5
    assert await running.answers("fivetran", "demo", "accepted") == 0
    assert await running.health("fivetran", "ft_orders") == "healthy"
    assert await running.health("fivetran", "ft_events") == "healthy"


async def test_a_replayed_request_is_applied_once(running: Running) -> None:
    ids = {"vendor": "fivetran", "account": "demo", "connector_id": "ft_orders"}
    body = ft_event("sync_end", created="2026-12-02T01:05:00Z", status="FAILURE_WITH_TASK")
    first = await running.post("/webhooks/fivetran/demo", body, ft_sign(body))
    replay = await running.post("/webhooks/fivetran/demo", body, ft_sign(body))
    assert (first.status_code, replay.status_code) == (200, 200)
    assert replay.json()["result"] == "duplicate"
    assert await running.value("connector_syncs_total", result="failure", **ids) == 1
    assert await running.answers("fivetran", "demo", "accepted") == 1
    assert await running.answers("fivetran", "demo", "duplicate") == 1


async def test_oversize_bodies_are_refused_announced_or_streamed(running: Running) -> None:
    big = ft_event("connection_failure", padding="x" * 5000)
    response = await running.post("/webhooks/fivetran/demo", big, ft_sign(big))
    assert response.status_code == 413

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"x" * 1000  # no Content-Length: the cap applies while reading

    url = f"{running.hooks_url}/webhooks/fivetran/demo"
    async with httpx.AsyncClient(timeout=10) as fresh:
        streamed = await fresh.post(url, content=chunks(), headers=ft_sign(big))
    assert streamed.status_code == 413
    assert await running.answers("fivetran", "demo", "too_large") == 2
    assert await running.health("fivetran", "ft_orders") == "healthy"


async def test_unknown_accounts_share_one_empty_label_set(running: Running) -> None:
    body = ft_event("connection_failure")
    for path in (
        "/webhooks/fivetran/nope",
        "/webhooks/nosuchvendor/demo",
        "/webhooks/fivetran/another-random-name",
    ):
        assert (await running.post(path, body, ft_sign(body))).status_code == 404
    # Versori is configured but has no webhooks: its labels are bounded, so they are kept.
    assert (await running.post("/webhooks/versori/demo", body, {})).status_code == 404
    assert await running.answers("", "", "unknown_account") == 3
    assert await running.answers("versori", "demo", "unknown_account") == 1
    series = [
        labels
        for (name, labels) in await running.samples()
        if name == "connector_exporter_webhook_requests_total"
    ]
    assert all(dict(labels)["account"] in ("", "demo") for labels in series)
    # Other paths and methods are refused and counted too, under the empty labels.
    assert (await running.client.get(f"{running.hooks_url}/metrics")).status_code == 404
    get = await running.client.get(f"{running.hooks_url}/webhooks/fivetran/demo")
    assert get.status_code == 405
    assert await running.answers("", "", "bad_request") == 1
    assert await running.answers("fivetran", "demo", "bad_request") == 1


async def test_a_flood_is_rate_limited(running: Running) -> None:
    assert running.daemon.webhooks is not None
    running.daemon.webhooks.limiter = RateLimiter(rate=1.0, burst=5.0)
    body = ft_event("edit_connector")
    codes = [
        (await running.post("/webhooks/fivetran/demo", body, ft_sign(body))).status_code
        for _ in range(30)
    ]
    assert codes.count(429) >= 20
    assert await running.answers("fivetran", "demo", "rate_limited") == codes.count(429)


async def test_signed_garbage_is_a_bad_request(running: Running) -> None:
    for body in (b"{not json", b'{"no_event": 1}', b"[" * 4000):
        response = await running.post("/webhooks/fivetran/demo", body, ft_sign(body))
        assert response.status_code == 400
    assert await running.answers("fivetran", "demo", "bad_request") == 3


async def test_an_event_for_an_unknown_connector_waits_for_the_poll(running: Running) -> None:
    body = ft_event("connection_failure", "ft_not_listed_yet")
    assert (await running.post("/webhooks/fivetran/demo", body, ft_sign(body))).status_code == 200
    samples = await running.samples()
    assert not any(dict(labels).get("connector_id") == "ft_not_listed_yet" for _, labels in samples)


async def test_the_next_poll_is_the_truth_again(running: Running) -> None:
    body = ft_event("connection_failure")
    await running.post("/webhooks/fivetran/demo", body, ft_sign(body))
    assert await running.health("fivetran", "ft_orders") == "broken"
    await running.daemon.scheduler.runners["fivetran/demo"].poll()
    assert await running.health("fivetran", "ft_orders") == "healthy"
    # The telemetry outlives the poll.
    assert (
        await running.value(
            "connector_last_event_timestamp_seconds",
            vendor="fivetran",
            account="demo",
            connector_id="ft_orders",
        )
        is not None
    )


async def test_apideck_revocation(running: Running) -> None:
    raw = running.daemon.scheduler.runners["apideck/demo"].adapter.raw
    connector_id = next(cid for cid, (_, item) in raw.items() if item.get("enabled") is not False)
    consumer_id, _, connection_id = connector_id.partition("/")
    body = json.dumps(
        {
            "payload": {
                "event_id": "evt-1",
                "event_type": "vault.connection.revoked",
                "service_id": "salesforce",
                "entity_id": connection_id,
                "entity_type": "Connection",
                "entity": {"id": connection_id, "consumer_id": consumer_id, "state": "callable"},
                "occurred_at": "2026-12-02T01:00:00.000Z",
            }
        }
    ).encode()
    canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    signature = base64.b64encode(hmac.new(AD_SECRET, canonical, hashlib.sha256).digest())
    headers = {"x-apideck-signature": signature.decode(), "x-apideck-idempotency-key": "k1"}
    assert (await running.post("/webhooks/apideck/demo", body, headers)).status_code == 200
    assert await running.health("apideck", connector_id) == "relink_needed"
    bad = {**headers, "x-apideck-signature": base64.b64encode(b"x" * 32).decode()}
    assert (await running.post("/webhooks/apideck/demo", body, bad)).status_code == 401
    assert await running.answers("apideck", "demo", "bad_signature") == 1


async def test_bindbee_sync_error(running: Running) -> None:
    connector_id = next(iter(running.daemon.scheduler.runners["bindbee/demo"].adapter.raw))
    body = json.dumps(
        {
            "webhook": {"webhook_id": "w1", "url": "https://x", "event": "connector_sync_error"},
            "connector": {"id": connector_id, "display_name": "BreatheHR"},
            "data": {},
        }
    ).encode()
    signature = base64.b64encode(hmac.new(BB_SECRET, body, hashlib.sha256).digest()).decode()
    headers = {"X-Bindbee-Webhook-Signature": signature}
    assert (await running.post("/webhooks/bindbee/demo", body, headers)).status_code == 200
    assert await running.health("bindbee", connector_id) == "failing"
    ids = {"vendor": "bindbee", "account": "demo", "connector_id": connector_id}
    assert await running.value("connector_syncs_total", result="failure", **ids) == 1
    assert (await running.post("/webhooks/bindbee/demo", body, {})).status_code == 401


async def test_openint_shared_secret(running: Running) -> None:
    connector_id = next(iter(running.daemon.scheduler.runners["openint/demo"].adapter.raw))
    body = json.dumps(
        {
            "id": "evt-9",
            "name": "connection.updated",
            "data": {"connection": {"id": connector_id, "status": "disconnected"}},
        }
    ).encode()
    ok = {"Authorization": f"Bearer {OI_SECRET.decode()}"}
    assert (await running.post("/webhooks/openint/demo", body, ok)).status_code == 200
    assert await running.health("openint", connector_id) == "relink_needed"
    for bad in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": OI_SECRET.decode()}):
        assert (await running.post("/webhooks/openint/demo", body, bad)).status_code == 401
    assert await running.answers("openint", "demo", "bad_signature") == 3


def test_rate_limiter_memory_is_bounded() -> None:
    now = [0.0]
    limiter = RateLimiter(rate=1.0, burst=2.0, max_sources=100, clock=lambda: now[0])
    for i in range(10_000):
        limiter.allow(f"10.0.{i // 256}.{i % 256}")
    assert len(limiter) == 100
    assert [limiter.allow("a") for _ in range(3)] == [True, True, False]
    now[0] += 1.0
    assert limiter.allow("a")


def test_seen_events_are_bounded_and_expire() -> None:
    now = [0.0]
    seen = SeenEvents(max_keys=50, ttl=60.0, clock=lambda: now[0])
    assert seen.add("a") and not seen.add("a")
    for i in range(1000):
        seen.add(str(i))
    assert len(seen) == 50
    now[0] += 61
    assert seen.add("999")  # expired: a redelivery a day later is applied again
    assert len(seen) == 1


def test_webhook_config() -> None:
    base = "accounts:\n  - {vendor: versori, name: p, token: t, organisation_id: o"
    with pytest.raises(ConfigError) as err:
        parse_config(base + ", webhook_secret: s}\n")
    assert [p.path for p in err.value.problems] == ["accounts[0].webhook_secret"]
    assert "s" not in err.value.problems[0].message.split()
    config = parse_config(
        "webhooks: {listen_address: '0.0.0.0:9842'}\n"
        "accounts:\n  - {vendor: fivetran, name: p, api_key: k, api_secret: s,"
        " webhook_secret: '${HOOK}'}\n",
        env={"HOOK": "from-env"},
    )
    assert config.webhooks is not None and config.webhooks.max_body_bytes == 1024 * 1024
    assert "from-env" in config.accounts[0].secret_values()
    with pytest.raises(ConfigError):
        parse_config(
            "webhooks: {listen_address: 'nope'}\naccounts:\n"
            "  - {vendor: fivetran, name: p, api_key: k, api_secret: s}\n"
        )

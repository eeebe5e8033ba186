"""The webhook listener in the real daemon: signed events change /metrics at once, every
verification failure is refused and counted, and nothing an attacker sends grows memory or
series without bound.

Every behaviour that depends on a vendor's scheme (signature, event identity, parsing) runs for
each registered vendor with webhooks, signed with the vendor module's own `sign` and with event
bodies from its quirk module (tests/webhooks/harness.py says what each provides). What a vendor's
events mean, and its documented scheme computed independently of the exporter's helpers, are
tested in tests/vendors/test_<vendor>.py. Behaviour that does not depend on the vendor (body
cap, unknown paths, rate limit) uses the registry's first vendor with webhooks as the example.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from exporter.config import ConfigError, parse_config
from exporter.simulator import SPECS, Simulator
from exporter.vendors.events import event_key
from exporter.webhooks import RateLimiter, SeenEvents
from tests.conftest import sim_account
from tests.webhooks.harness import (
    MAX_BODY_BYTES,
    NO_WEBHOOK_VENDORS,
    WEBHOOK_VENDORS,
    Running,
    WebhookSample,
    listening,
    quirks,
    webhook_of,
)

EXAMPLE = WEBHOOK_VENDORS[0]
# A second account of the example vendor, configured without a `webhook_secret`.
NO_SECRET_ACCOUNT = "no-webhook-secret"


def sample(vendor: str, connector_id: str, key: str = "1") -> WebhookSample:
    """The vendor's sample event about `connector_id`; checks that it names that connector."""
    event: WebhookSample = quirks(vendor).webhook_event(connector_id, key)
    parsed = webhook_of(vendor).parse(json.loads(event.body), {})
    assert [e.connector_id for e in parsed] == [connector_id], parsed
    return event


@pytest.fixture(params=WEBHOOK_VENDORS)
def vendor(request: pytest.FixtureRequest) -> str:
    """Each registered vendor with webhooks in turn."""
    name: str = request.param
    return name


@pytest.fixture
async def running(vendor: str, sim: Simulator) -> AsyncIterator[Running]:
    """The daemon with webhooks on for `vendor`."""
    async with listening(sim, [vendor]) as r:
        yield r


@pytest.fixture
async def example(sim: Simulator) -> AsyncIterator[Running]:
    """The example vendor, every vendor without webhooks, and an account without a secret."""
    extra = sim_account(sim, EXAMPLE, name=NO_SECRET_ACCOUNT)
    async with listening(sim, [EXAMPLE, *NO_WEBHOOK_VENDORS], extra_accounts=[extra]) as r:
        yield r


async def test_an_event_changes_the_connector_at_once(vendor: str, running: Running) -> None:
    (cid,) = await running.healthy(vendor)
    polls = running.runner(vendor).status.polls_total
    event = sample(vendor, cid)
    response = await running.send(vendor, event.body)
    assert response.status_code == 200, response.text
    assert response.json()["result"] == "accepted"
    assert await running.health(vendor, cid) == event.health != "healthy"
    assert await running.answers(vendor, "accepted") == 1
    stamp = await running.connector_value("connector_last_event_timestamp_seconds", vendor, cid)
    assert stamp is not None and abs(stamp - time.time()) < 30
    if event.sync_result is not None:
        syncs = await running.connector_value(
            "connector_syncs_total", vendor, cid, result=event.sync_result
        )
        assert syncs == 1
    # No poll happened: the change came from the event alone.
    assert running.runner(vendor).status.polls_total == polls


async def test_bad_missing_empty_and_tampered_signatures_are_refused_and_counted(
    vendor: str, running: Running
) -> None:
    cid, other_cid = await running.healthy(vendor, 2)
    body = sample(vendor, cid).body
    good = running.signed(vendor, body)
    scheme_headers = set(good) - {"Content-Type"}
    cases = [
        running.signed(vendor, body, key=b"not-the-secret"),
        {"Content-Type": "application/json"},  # missing
        {**good, **dict.fromkeys(scheme_headers, "")},  # empty
        {**good, **dict.fromkeys(scheme_headers, "zz" * 32)},  # not an encoding of anything
    ]
    for headers in cases:
        response = await running.send(vendor, body, headers)
        assert response.status_code == 401, (headers, response.text)
    refused = len(cases)
    # A valid signature of another body does not vouch for this one, where the scheme signs
    # the body at all (a shared-secret scheme does not; its quirk module says so).
    other = sample(vendor, other_cid).body
    binds = running.signed(vendor, body) != running.signed(vendor, other)
    assert binds == getattr(quirks(vendor), "WEBHOOK_SIGNATURE_BINDS_BODY", True)
    if binds:
        assert (await running.send(vendor, other, good)).status_code == 401
        refused += 1
    assert await running.answers(vendor, "bad_signature") == refused
    assert await running.answers(vendor, "accepted") == 0
    assert await running.health(vendor, cid) == "healthy"
    assert await running.health(vendor, other_cid) == "healthy"


async def test_a_replayed_request_is_applied_once(vendor: str, running: Running) -> None:
    (cid,) = await running.healthy(vendor)
    event = sample(vendor, cid)
    first = await running.send(vendor, event.body)
    replay = await running.send(vendor, event.body)
    assert (first.status_code, replay.status_code) == (200, 200)
    assert (first.json()["result"], replay.json()["result"]) == ("accepted", "duplicate")
    assert await running.health(vendor, cid) == event.health
    syncs = {
        dict(labels)["result"]: value
        for (name, labels), value in (await running.samples()).items()
        if name == "connector_syncs_total" and dict(labels)["connector_id"] == cid
    }
    assert syncs == ({event.sync_result: 1.0} if event.sync_result else {})
    assert await running.answers(vendor, "accepted") == 1
    assert await running.answers(vendor, "duplicate") == 1


async def test_signed_garbage_is_a_bad_request(vendor: str, running: Running) -> None:
    for body in (b"{not json", b'{"no_event": 1}', b"[" * 4000):
        response = await running.send(vendor, body)
        assert response.status_code == 400, (body[:20], response.text)
    assert await running.answers(vendor, "bad_request") == 3
    assert await running.answers(vendor, "accepted") == 0


async def test_an_event_for_an_unknown_connector_waits_for_the_poll(
    vendor: str, running: Running
) -> None:
    (listed,) = await running.healthy(vendor)
    unknown = f"{listed}-not-listed-yet"
    response = await running.send(vendor, sample(vendor, unknown).body)
    assert response.status_code == 200
    assert await running.answers(vendor, "accepted") == 1
    samples = await running.samples()
    assert not any(dict(labels).get("connector_id") == unknown for _, labels in samples)
    assert unknown not in running.runner(vendor).status.telemetry


async def test_the_next_poll_is_the_truth_again(vendor: str, running: Running) -> None:
    (cid,) = await running.healthy(vendor)
    event = sample(vendor, cid)
    assert (await running.send(vendor, event.body)).status_code == 200
    assert await running.health(vendor, cid) == event.health
    assert await running.runner(vendor).poll()
    assert await running.health(vendor, cid) == "healthy"
    # The telemetry outlives the poll.
    stamp = await running.connector_value("connector_last_event_timestamp_seconds", vendor, cid)
    assert stamp is not None


async def test_oversize_bodies_are_refused_announced_or_streamed(example: Running) -> None:
    (cid,) = await example.healthy(EXAMPLE)
    # Trailing whitespace keeps it a valid, signed event: only its size is wrong.
    big = sample(EXAMPLE, cid).body + b" " * MAX_BODY_BYTES
    response = await example.send(EXAMPLE, big)
    assert response.status_code == 413

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"x" * 1000  # no Content-Length: the cap applies while reading

    url = f"{example.hooks_url}{example.path(EXAMPLE)}"
    async with httpx.AsyncClient(timeout=10) as fresh:
        streamed = await fresh.post(url, content=chunks(), headers=example.signed(EXAMPLE, big))
    assert streamed.status_code == 413
    assert await example.answers(EXAMPLE, "too_large") == 2
    assert await example.health(EXAMPLE, cid) == "healthy"


async def test_unknown_accounts_share_one_empty_label_set(example: Running) -> None:
    (cid,) = await example.healthy(EXAMPLE)
    body = sample(EXAMPLE, cid).body
    signed = example.signed(EXAMPLE, body)
    for path in (
        f"/webhooks/{EXAMPLE}/nope",
        f"/webhooks/nosuchvendor/{example.account(EXAMPLE)}",
        f"/webhooks/{EXAMPLE}/another-random-name",
    ):
        assert (await example.post(path, body, signed)).status_code == 404
    assert await example.answers("", "unknown_account") == 3
    # Configured accounts that take no webhooks (no `webhook_secret`, or a vendor without
    # webhooks) answer 404 too; their labels are bounded by the config, so they are kept.
    no_secret = f"/webhooks/{EXAMPLE}/{NO_SECRET_ACCOUNT}"
    assert (await example.post(no_secret, body, signed)).status_code == 404
    assert await example.answers(EXAMPLE, "unknown_account", account=NO_SECRET_ACCOUNT) == 1
    for vendor in NO_WEBHOOK_VENDORS:
        assert (await example.post(example.path(vendor), body, {})).status_code == 404
        assert await example.answers(vendor, "unknown_account") == 1
    configured = {example.account(v) for v in [EXAMPLE, *NO_WEBHOOK_VENDORS]}
    series = [
        dict(labels)
        for (name, labels) in await example.samples()
        if name == "connector_exporter_webhook_requests_total"
    ]
    assert {s["account"] for s in series} <= {"", NO_SECRET_ACCOUNT, *configured}
    assert await example.health(EXAMPLE, cid) == "healthy"
    # Other paths and methods are refused and counted too, under the empty labels.
    assert (await example.client.get(f"{example.hooks_url}/metrics")).status_code == 404
    get = await example.client.get(f"{example.hooks_url}{example.path(EXAMPLE)}")
    assert get.status_code == 405
    assert await example.answers("", "bad_request") == 1
    assert await example.answers(EXAMPLE, "bad_request") == 1


async def test_a_flood_is_rate_limited(example: Running) -> None:
    assert example.daemon.webhooks is not None
    example.daemon.webhooks.limiter = RateLimiter(rate=1.0, burst=5.0)
    (cid,) = await example.healthy(EXAMPLE)
    body = sample(EXAMPLE, cid).body
    codes = [(await example.send(EXAMPLE, body)).status_code for _ in range(30)]
    assert codes.count(429) >= 20
    assert await example.answers(EXAMPLE, "rate_limited") == codes.count(429)
    # What got through was answered as usual: the event once, then its duplicates.
    assert codes.count(200) == 30 - codes.count(429)
    assert await example.answers(EXAMPLE, "accepted") == 1


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


def config_text(account: dict[str, object], **top: object) -> str:
    """A config file (JSON is YAML) with one account."""
    return json.dumps({**top, "accounts": [account]})


@pytest.mark.parametrize("without", NO_WEBHOOK_VENDORS)
def test_a_webhook_secret_on_a_vendor_without_webhooks_is_a_config_error(without: str) -> None:
    secret = "hook-secret-value-91ab"
    account = {**SPECS[without].account("http://127.0.0.1:1"), "webhook_secret": secret}
    with pytest.raises(ConfigError) as err:
        parse_config(config_text(account))
    assert [p.path for p in err.value.problems] == ["accounts[0].webhook_secret"]
    assert secret not in err.value.problems[0].message


def test_webhook_config() -> None:
    account = {**SPECS[EXAMPLE].account("http://127.0.0.1:1"), "webhook_secret": "${HOOK}"}
    config = parse_config(
        config_text(account, webhooks={"listen_address": "0.0.0.0:9842"}),
        env={"HOOK": "from-env"},
    )
    assert config.webhooks is not None and config.webhooks.max_body_bytes == 1024 * 1024
    assert "from-env" in config.accounts[0].secret_values()
    with pytest.raises(ConfigError):
        parse_config(config_text(account, webhooks={"listen_address": "nope"}), env={"HOOK": "x"})


def test_duplicate_keys_are_fixed_size_whatever_the_event_id() -> None:
    """20,000 remembered keys must stay small even when a vendor sends megabyte event ids."""
    huge = event_key("sync_end", "x" * 1_000_000, b"{}")
    assert len(huge) == 64
    assert event_key("sync_end", "a", b"{}") != event_key("sync_end", "b", b"{}")
    assert event_key("sync_end", "a", b"{}") != event_key("sync_start", "a", b"{}")
    assert event_key("e", "", b"one") != event_key("e", "", b"two")  # no id: the body
    assert event_key("e", "", b"one") == event_key("e", "", b"one")

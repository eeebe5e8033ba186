"""Webhooks end to end with the real programs, against polling, in one run:

simulator (`simulate --webhook-url`) -> signed webhook -> exporter (`run
--webhook-listen-address`) -> Prometheus (the shipped rules, `for` as in test_e2e.py) ->
Alertmanager (the shipped routes) -> a webhook receiver in this test.

The exporter polls the same simulated Fivetran fleet as two accounts with a long poll
interval: `demo` takes webhooks, `polled` does not. Each time a connector breaks, the test
measures how long each account's ConnectorBroken notification takes.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.alerts.procs import free_port
from tests.alerts.stack import AlertPath, alert_path, fivetran_account, query, shortened_rules
from tests.alerts.test_e2e import NOT_WATCHDOG, SHORT_FOR

POLL = "20s"  # long next to scrape (1s) and `for` (3s): polling latency is dominated by it
SECRET = "e2e-webhook-secret"
CONNECTOR = "ft_orders"
ROUNDS = 3


def broken_notified(s: AlertPath, since: float, account: str, status: str, timeout: float) -> float:
    """When `account`'s ConnectorBroken notification (`status`) reached the receiver."""
    note, _ = s.notification(
        f"the {account} account's {status} ConnectorBroken",
        since,
        "/pager",
        status,
        timeout,
        alertname="ConnectorBroken",
        account=account,
        connector_id=CONNECTOR,
    )
    return note.received


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[AlertPath]:
    hook_port = free_port()
    hooks = ["--webhook-url", f"http://127.0.0.1:{hook_port}/webhooks", "--webhook-secret", SECRET]

    def accounts(simulator: str) -> list[dict[str, Any]]:
        demo = fivetran_account(simulator, "demo")
        return [{**demo, "webhook_secret": SECRET}, fivetran_account(simulator, "polled")]

    yield from alert_path(
        AlertPath,
        tmp_path,
        accounts,
        lambda rules: shortened_rules(rules, SHORT_FOR),
        simulator_args=hooks,
        poll=POLL,
        exporter_args=["--webhook-listen-address", f"127.0.0.1:{hook_port}"],
    )


@pytest.mark.e2e
@pytest.mark.timeout(420)
def test_webhooks_page_in_seconds_where_polling_takes_a_poll(stack: AlertPath) -> None:
    s = stack
    s.wait_scraped()
    # the watchdog fires by design, always
    s.wait_quiet(f'ALERTS{{alertstate="firing",{NOT_WATCHDOG}}}')
    pushed: list[float] = []
    polled: list[float] = []
    resolved: list[float] = []
    for _ in range(ROUNDS):
        broke_at = time.time()
        s.set_health("fivetran", CONNECTOR, "broken")
        pushed.append(broken_notified(s, broke_at, "demo", "firing", 30) - broke_at)
        polled.append(broken_notified(s, broke_at, "polled", "firing", 60) - broke_at)
        recovered_at = time.time()
        s.set_health("fivetran", CONNECTOR, "healthy")
        resolved.append(broken_notified(s, recovered_at, "demo", "resolved", 30) - recovered_at)
        broken_notified(s, recovered_at, "polled", "resolved", 60)
    # The webhooks were verified and counted, none refused.
    accepted = query(
        s.prometheus,
        'connector_exporter_webhook_requests_total{account="demo",result="accepted"}',
    )
    assert accepted and float(accepted[0]["value"][1]) >= 4 * ROUNDS, accepted
    refused = query(
        s.prometheus, 'connector_exporter_webhook_requests_total{result!~"accepted|duplicate"}'
    )
    assert refused == [], refused
    syncs = query(s.prometheus, f'connector_syncs_total{{connector_id="{CONNECTOR}"}}')
    assert {r["metric"]["result"] for r in syncs} == {"success"}, syncs

    for_seconds = float(SHORT_FOR.removesuffix("s"))
    p50_push, p50_poll = statistics.median(pushed), statistics.median(polled)
    print(
        f"\nevent -> ConnectorBroken notification, scrape/eval 1s, for {SHORT_FOR}, "
        f"group_wait 1s, poll every {POLL}, {ROUNDS} rounds:\n"
        f"  webhooks: p50 {p50_push:.1f}s ({p50_push - for_seconds:.1f}s besides `for`), "
        f"all {[round(x, 1) for x in pushed]}\n"
        f"  polling:  p50 {p50_poll:.1f}s ({p50_poll - for_seconds:.1f}s besides `for`), "
        f"all {[round(x, 1) for x in polled]}\n"
        f"  webhooks, recovery -> resolved: p50 {statistics.median(resolved):.1f}s"
    )
    # Besides `for`: at most a scrape, an evaluation, Alertmanager's group_wait and delivery.
    assert p50_push - for_seconds <= 3.0, (pushed, s.logs())
    assert p50_push < p50_poll, (pushed, polled)

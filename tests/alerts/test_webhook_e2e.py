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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.alerts.procs import Processes, WebhookReceiver, free_port, wait_for
from tests.alerts.stack import (
    JOB,
    heal_fleet,
    query,
    shortened_rules,
    start_alertmanager,
    start_exporter,
    start_prometheus,
    start_simulator,
)
from tests.alerts.test_e2e import SHORT_FOR

POLL = "20s"  # long next to scrape (1s) and `for` (3s): polling latency is dominated by it
SECRET = "e2e-webhook-secret"
CONNECTOR = "ft_orders"
ROUNDS = 3


@dataclass
class Stack:
    procs: Processes
    receiver: WebhookReceiver
    simulator: str
    exporter: str
    prometheus: str

    def logs(self) -> str:
        return self.receiver.describe() + "\n" + self.procs.logs()

    def set_health(self, health: str) -> None:
        url = f"{self.simulator}/_control/fivetran/connectors/{CONNECTOR}/health"
        httpx.post(url, json={"health": health}, timeout=5).raise_for_status()

    def notified(self, since: float, account: str, status: str) -> float | None:
        found = next(
            self.receiver.find(
                since,
                "/pager",
                status,
                alertname="ConnectorBroken",
                account=account,
                connector_id=CONNECTOR,
            ),
            None,
        )
        return None if found is None else found[0].received


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    procs = Processes(tmp_path)
    receiver = WebhookReceiver()
    receiver.start()
    try:
        hook_port = free_port()
        hooks = ["--webhook-url", f"http://127.0.0.1:{hook_port}/webhooks"]
        simulator = start_simulator(procs, args=[*hooks, "--webhook-secret", SECRET])
        heal_fleet(simulator)
        account: dict[str, Any] = {
            "vendor": "fivetran",
            "api_key": "sim-key",
            "api_secret": "sim-secret",
            "base_url": f"{simulator}/fivetran",
        }
        address = start_exporter(
            procs,
            [{**account, "name": "demo", "webhook_secret": SECRET}, {**account, "name": "polled"}],
            poll=POLL,
            args=["--webhook-listen-address", f"127.0.0.1:{hook_port}"],
        )
        alertmanager = start_alertmanager(procs, receiver.url(""))
        rules = shortened_rules(tmp_path / "rules", SHORT_FOR)
        prometheus = start_prometheus(procs, address, alertmanager, rules)
        yield Stack(procs, receiver, simulator, address, prometheus)
    finally:
        procs.close()
        receiver.close()


@pytest.mark.e2e
@pytest.mark.timeout(420)
def test_webhooks_page_in_seconds_where_polling_takes_a_poll(stack: Stack) -> None:
    s = stack
    wait_for(
        "Prometheus to scrape the exporter",
        lambda: query(s.prometheus, f'up{{job="{JOB}"}} == 1'),
        timeout=30,
        on_timeout=s.logs,
    )
    wait_for(
        "no alert firing",
        lambda: query(s.prometheus, 'ALERTS{alertstate="firing"}') == [],
        timeout=30,
        on_timeout=s.logs,
    )
    pushed: list[float] = []
    polled: list[float] = []
    resolved: list[float] = []
    for _ in range(ROUNDS):
        broke_at = time.time()
        s.set_health("broken")
        at = wait_for(
            "the webhook account's ConnectorBroken",
            lambda: s.notified(broke_at, "demo", "firing"),  # noqa: B023 - used at once
            timeout=30,
            on_timeout=s.logs,
        )
        pushed.append(at - broke_at)
        at = wait_for(
            "the polled account's ConnectorBroken",
            lambda: s.notified(broke_at, "polled", "firing"),  # noqa: B023
            timeout=60,
            on_timeout=s.logs,
        )
        polled.append(at - broke_at)
        recovered_at = time.time()
        s.set_health("healthy")
        at = wait_for(
            "the webhook account's resolved ConnectorBroken",
            lambda: s.notified(recovered_at, "demo", "resolved"),  # noqa: B023
            timeout=30,
            on_timeout=s.logs,
        )
        resolved.append(at - recovered_at)
        wait_for(
            "the polled account's resolved ConnectorBroken",
            lambda: s.notified(recovered_at, "polled", "resolved"),  # noqa: B023
            timeout=60,
            on_timeout=s.logs,
        )
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

"""The whole alert path with the real programs:

simulator -> exporter -> Prometheus (the shipped rules, `for` shortened) -> Alertmanager (the
shipped routes and inhibitions) -> a webhook receiver in this test.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.alerts.procs import Notification, wait_for
from tests.alerts.stack import (
    JOB,
    AlertPath,
    alert_path,
    fivetran_account,
    get_json,
    query,
    shortened_rules,
)

# Every `for` in the shipped rules becomes this in the test (defaults are minutes to a day).
SHORT_FOR = "3s"
CONNECTOR = "ft_orders"  # a curated Fivetran connector of the simulator: schema "orders"
RUNBOOK = "https://github.com/connector-exporter/connector-exporter/blob/main/docs/runbooks.md#"
WATCHDOG = "ConnectorExporterWatchdog"
NOT_WATCHDOG = f'alertname!="{WATCHDOG}"'
# every label of the page for CONNECTOR broken: the rule's, the scrape's and connector_health's
BROKEN_LABELS = {
    "alertname": "ConnectorBroken",
    "severity": "critical",
    "job": JOB,
    "vendor": "fivetran",
    "account": "demo",
    "connector_id": CONNECTOR,
    "health": "broken",
    "name": "orders",
    "integration": "postgres",
}


def _watchdog(alert: dict[str, Any]) -> bool:
    return bool(alert["labels"].get("alertname") == WATCHDOG)


class Stack(AlertPath):
    def firing(self, alertname: str) -> list[dict[str, Any]]:
        """Alerts Prometheus itself has firing (ALERTS), independent of Alertmanager."""
        return query(self.prometheus, f'ALERTS{{alertname="{alertname}",alertstate="firing"}}')

    def am_alerts(self, alertname: str) -> list[dict[str, Any]]:
        alerts: list[dict[str, Any]] = get_json(
            f"{self.alertmanager}/api/v2/alerts", filter=f'alertname="{alertname}"'
        )
        return alerts

    def paged(
        self, what: str, since: float, labels: dict[str, str]
    ) -> tuple[Notification, dict[str, Any]]:
        """The first firing page after `since` for that alertname, its labels exactly `labels`."""
        note, alert = self.notification(
            what, since, "/pager", "firing", alertname=labels["alertname"]
        )
        assert alert["labels"] == labels
        return note, alert


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    yield from alert_path(
        Stack,
        tmp_path,
        lambda simulator: [fivetran_account(simulator, "demo")],
        lambda rules: shortened_rules(rules, SHORT_FOR),
    )


@pytest.mark.e2e
@pytest.mark.timeout(240)
def test_connector_breaks_recovers_and_exporter_goes_down(stack: Stack) -> None:
    s = stack

    # --- steady state: scraped, all rules loaded, nothing firing ---------------------------
    s.wait_scraped()
    groups = get_json(f"{s.prometheus}/api/v1/rules")["data"]["groups"]
    loaded = {r["name"] for g in groups for r in g["rules"] if r["type"] == "alerting"}
    assert "ConnectorBroken" in loaded and "ConnectorExporterDown" in loaded
    assert all(r.get("health") != "err" for g in groups for r in g["rules"]), groups
    # Before the first scrape `absent(up)` holds, so with `for` shortened to seconds a
    # ConnectorExporterDown / ConnectorExporterAbsent can blip at startup; wait until nothing
    # fires but the watchdog (always firing by design), then expect quiet.
    s.wait_quiet(f'ALERTS{{alertstate="firing",{NOT_WATCHDOG}}}')
    quiet_from = time.time()
    time.sleep(5)  # longer than SHORT_FOR: anything wrongly firing would have fired by now
    assert query(s.prometheus, f"ALERTS{{{NOT_WATCHDOG}}}") == [], query(s.prometheus, "ALERTS")
    paged = [a for _, a in s.receiver.find(quiet_from, status="firing") if not _watchdog(a)]
    assert paged == [], s.logs()
    # the watchdog reaches its heartbeat receiver, and only that one
    s.notification("a watchdog heartbeat", 0, "/heartbeat", "firing", 30, alertname=WATCHDOG)
    assert all(n.path == "/heartbeat" for n, a in s.receiver.find(0) if _watchdog(a))

    # --- a connector breaks: ConnectorBroken pages -----------------------------------------
    broke_at = time.time()
    s.set_health("fivetran", CONNECTOR, "broken")
    note, alert = s.paged("the ConnectorBroken notification", broke_at, BROKEN_LABELS)
    detection = note.received - broke_at
    assert alert["annotations"]["runbook_url"] == RUNBOOK + "connectorbroken"
    assert alert["annotations"]["description"] == (
        'fivetran connector "orders" (id ft_orders, integration postgres) in account demo is '
        'broken: connector_health{health="broken"} = 1.'
    )
    assert note.body["groupLabels"] == {
        "alertname": "ConnectorBroken",
        "vendor": "fivetran",
        "account": "demo",
    }
    # the critical route took it; nothing went to the warning route
    assert not list(s.receiver.find(broke_at, "/tickets")), s.logs()

    # --- it recovers: the resolved notification arrives ------------------------------------
    recovered_at = time.time()
    s.set_health("fivetran", CONNECTOR, "healthy")
    note, alert = s.notification(
        "the resolved ConnectorBroken notification",
        recovered_at,
        "/pager",
        "resolved",
        alertname="ConnectorBroken",
        connector_id=CONNECTOR,
    )
    resolution = note.received - recovered_at

    # --- it breaks again, then the exporter dies --------------------------------------------
    rebroke_at = time.time()
    s.set_health("fivetran", CONNECTOR, "broken")
    s.paged("the second ConnectorBroken notification", rebroke_at, BROKEN_LABELS)
    stopped_at = time.time()
    s.proc("exporter").stop()
    note, alert = s.paged(
        "the ConnectorExporterDown notification",
        stopped_at,
        {
            "alertname": "ConnectorExporterDown",
            "severity": "critical",
            "job": JOB,
            "instance": s.exporter,
        },
    )
    down_detection = note.received - stopped_at

    # ConnectorBroken is still firing in Prometheus (the rules' hold window), and Alertmanager
    # holds it back: inhibited by ConnectorExporterAbsent of the job (the only exporter is
    # gone). ConnectorExporterAbsent itself does not page: ConnectorExporterDown implies it.
    assert [a["metric"]["connector_id"] for a in s.firing("ConnectorBroken")] == [CONNECTOR]
    down = s.am_alerts("ConnectorExporterDown")
    assert [a["status"]["state"] for a in down] == ["active"]
    absent = wait_for(
        "ConnectorExporterAbsent, inhibited by ConnectorExporterDown",
        lambda: [
            a
            for a in s.am_alerts("ConnectorExporterAbsent")
            if a["status"]["inhibitedBy"] == [down[0]["fingerprint"]]
        ],
        timeout=20,
        on_timeout=s.logs,
    )
    broken = wait_for(
        "ConnectorBroken to be inhibited",
        lambda: [
            a
            for a in s.am_alerts("ConnectorBroken")
            if a["status"]["state"] == "suppressed"
            and a["status"]["inhibitedBy"] == [absent[0]["fingerprint"]]
        ],
        timeout=20,
        on_timeout=s.logs,
    )
    assert broken[0]["labels"]["connector_id"] == CONNECTOR
    # and over the next seconds no notification about it (neither a repeat nor a false
    # "resolved") reaches the receiver
    time.sleep(5)
    assert not list(s.receiver.find(stopped_at, alertname="ConnectorBroken")), s.logs()
    assert not list(s.receiver.find(stopped_at, alertname="ConnectorExporterAbsent")), s.logs()
    assert [a["metric"]["connector_id"] for a in s.firing("ConnectorBroken")] == [CONNECTOR]

    print(
        f"\nmeasured with poll 1s, scrape/eval 1s, for {SHORT_FOR}, group_wait 1s:\n"
        f"  connector broken -> ConnectorBroken notification: {detection:.1f}s\n"
        f"  connector recovered -> resolved notification:     {resolution:.1f}s\n"
        f"  exporter stopped -> ConnectorExporterDown:        {down_detection:.1f}s"
    )
    budget = 1 + 1 + 1 + 3 + 1  # poll + scrape + eval + for + group_wait, in seconds
    assert detection < budget + 10, f"detection took {detection:.1f}s\n{s.logs()}"
    assert resolution < 15, f"resolution took {resolution:.1f}s\n{s.logs()}"

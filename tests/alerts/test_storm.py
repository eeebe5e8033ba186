"""An alert storm end to end, with the real programs: 500 connectors of one account break at
once -> exactly one notification (ConnectorAccountDegraded), none per connector; they recover
-> it resolves, and no per-connector notification leaks out on the way.

simulator (a generated Fivetran fleet of 500) -> exporter (poll 1s) -> Prometheus (the shipped
rules, `for` shortened) -> Alertmanager (the shipped routes and inhibitions) -> webhook receiver.

A vendor outage reaches the exporter in one poll. The simulator's control API changes one
connector per call, so the test freezes the vendor API (a 503 fault) while it makes the 500
calls and lifts it afterwards: the next poll sees all 500 changed, as it would in an outage.
The same run without the account alert's inhibit rule measures what the inhibition saves.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from mixin import build
from tests.alerts.procs import wait_for
from tests.alerts.stack import (
    AlertPath,
    alert_path,
    fivetran_account,
    get_json,
    query,
    set_healths,
)

FLEET = 500
ACCOUNT = "storm"
DEGRADED = "ConnectorAccountDegraded"
WATCHDOG = "ConnectorExporterWatchdog"
# The rules are the mixin's, built with a test _config: per-connector alerts wait 15s, the
# account alert 3s, so it fires (and inhibits) first, as its shipped 10m against the
# per-connector 15m+ do. Poll failures during the freeze must not page, so those alerts keep
# their minutes. The hold window shrinks to 1m: at a 2s scrape interval the shipped 15m would
# make every evaluation read 450 samples per series, which a loaded test machine cannot do
# every few seconds (in production, at 30s-1m scrapes, it is 15-30).
SCRAPE = "2s"
EVALUATION = "3s"
SHORT_FOR = "15s"
FOR_OVERRIDES = {
    DEGRADED: "3s",
    "ConnectorExporterPollFailing": "5m",
    "ConnectorExporterStaleData": "5m",
}
KEEP_FIRING_FOR = "6s"


def storm_rules(directory: Path) -> list[Path]:
    defaults = build.evaluate()["config"]["for"]
    override = {
        "holdWindow": "1m",
        "for": {name: FOR_OVERRIDES.get(name, SHORT_FOR) for name in defaults},
        "keepFiringFor": {DEGRADED: KEEP_FIRING_FOR},
    }
    return build.write_rule_files(directory, override)


class StormStack(AlertPath):
    def logs(self) -> str:
        return self.receiver.describe()[-6000:] + "\n" + self.procs.logs()

    def set_all(self, health: str) -> None:
        """Every connector to `health`, landing in one poll (the vendor API is frozen)."""
        faults = f"{self.simulator}/_control/fivetran/faults"
        httpx.post(faults, json={"mode": "error", "status": 503}, timeout=5).raise_for_status()
        try:
            set_healths(self.simulator, health)
        finally:
            httpx.delete(faults, timeout=5).raise_for_status()

    def count(self, promql: str) -> int:
        result = query(self.prometheus, promql)
        return int(float(result[0]["value"][1])) if result else 0

    def summary(self, since: float = 0) -> str:
        """One line per notification: when, where, status and how many alerts of each name."""
        lines = ["--- notifications (heartbeat excluded) ---"]
        for n in self.receiver.received():
            if n.received < since or n.path == "/heartbeat":
                continue
            names: dict[str, int] = {}
            for a in n.body.get("alerts", []):
                key = f"{a['labels'].get('alertname')}/{a.get('status')}"
                names[key] = names.get(key, 0) + 1
            lines.append(f"{n.received:.2f} {n.path} {n.body.get('status')} {names}")
        return "\n".join(lines)

    def notifications(self, since: float) -> list[tuple[str, list[dict[str, str]]]]:
        """(receiver path, alert label sets) of every notification but the heartbeat's."""
        return [
            (n.path, [a["labels"] for a in n.body.get("alerts", [])])
            for n in self.receiver.received()
            if n.received >= since and n.path != "/heartbeat"
        ]


def _stack(tmp_path: Path, without_inhibition_by: str | None) -> Iterator[StormStack]:
    # The generated fleet has a share of every problem state: it is made healthy before the
    # exporter starts.
    yield from alert_path(
        StormStack,
        tmp_path,
        lambda simulator: [fivetran_account(simulator, ACCOUNT)],
        storm_rules,
        fleet_sizes={"fivetran": FLEET},
        without_inhibition_by=without_inhibition_by,
        intervals=(SCRAPE, EVALUATION),
    )


@pytest.fixture
def storm(tmp_path: Path) -> Iterator[StormStack]:
    yield from _stack(tmp_path, None)


@pytest.fixture
def storm_without_inhibition(tmp_path: Path) -> Iterator[StormStack]:
    yield from _stack(tmp_path, DEGRADED)


@dataclass
class Figures:
    """What one storm delivered to the receivers (the heartbeat excluded)."""

    firing_notifications: int
    connector_alerts_notified: int
    notifications: list[tuple[str, list[dict[str, str]]]]


def _break_and_observe(s: StormStack, settle: Callable[[], bool]) -> tuple[float, Figures]:
    """Steady state, then all 500 break; returns when `settle` holds and the alerts had time
    to reach the receiver."""
    wait_for(
        f"{FLEET} healthy connectors scraped",
        lambda: s.count(f'sum(connector_health{{account="{ACCOUNT}",health="healthy"}})') == FLEET,
        timeout=60,
        on_timeout=s.logs,
    )
    s.wait_quiet(f'ALERTS{{alertname!="{WATCHDOG}"}}', "no alert firing but the watchdog", 60)
    broke_at = time.time()
    s.set_all("broken")
    wait_for(
        f"{FLEET} ConnectorBroken firing in Prometheus",
        lambda: s.count('count(ALERTS{alertname="ConnectorBroken",alertstate="firing"})') == FLEET,
        timeout=90,
        on_timeout=s.logs,
    )
    wait_for("the storm to settle", settle, timeout=60, on_timeout=s.logs)
    # Several group_intervals (1s) more, so that anything Alertmanager would still send has
    # been sent.
    time.sleep(5)
    sent = s.notifications(broke_at)
    figures = Figures(
        firing_notifications=len(sent),
        connector_alerts_notified=sum(
            1 for _, alerts in sent for a in alerts if "connector_id" in a
        ),
        notifications=sent,
    )
    return broke_at, figures


@pytest.mark.e2e
@pytest.mark.timeout(400)
def test_storm_of_500_connectors_pages_once_and_resolves(storm: StormStack) -> None:
    s = storm

    def suppressed() -> bool:
        alerts = get_json(f"{s.alertmanager}/api/v2/alerts", filter='alertname="ConnectorBroken"')
        return sum(1 for a in alerts if a["status"]["state"] == "suppressed") == FLEET

    broke_at, figures = _break_and_observe(s, suppressed)

    # exactly one notification, to the pager, for the account
    assert len(figures.notifications) == 1, s.summary() + s.procs.logs()[-3000:]
    path, alerts = figures.notifications[0]
    assert path == "/pager"
    assert alerts == [
        {
            "alertname": DEGRADED,
            "severity": "critical",
            "job": "connector-exporter",
            "vendor": "fivetran",
            "account": ACCOUNT,
        }
    ]
    assert figures.connector_alerts_notified == 0
    # Alertmanager holds the 500 per-connector alerts back, inhibited by the account alert
    degraded = get_json(f"{s.alertmanager}/api/v2/alerts", filter=f'alertname="{DEGRADED}"')
    broken = get_json(f"{s.alertmanager}/api/v2/alerts", filter='alertname="ConnectorBroken"')
    assert len(broken) == FLEET
    assert {tuple(a["status"]["inhibitedBy"]) for a in broken} == {(degraded[0]["fingerprint"],)}

    # --- recovery: the account alert resolves, nothing per connector leaks out --------------
    recovered_at = time.time()
    s.set_all("healthy")
    note, _ = s.notification(
        "the resolved ConnectorAccountDegraded notification",
        recovered_at,
        "/pager",
        "resolved",
        alertname=DEGRADED,
    )
    s.wait_quiet(
        f'ALERTS{{alertname!="{WATCHDOG}"}}', "every alert but the watchdog resolved in Prometheus"
    )
    time.sleep(5)  # several group_intervals: a leaked per-connector notification would be here
    after = s.notifications(recovered_at)
    assert [(p, [a["alertname"] for a in alerts]) for p, alerts in after] == [
        ("/pager", [DEGRADED])
    ], s.logs()
    assert note.body["status"] == "resolved"
    first, _ = next(s.receiver.find(broke_at, "/pager", "firing", alertname=DEGRADED))
    print(
        f"\nstorm of {FLEET} broken connectors, with the account alert's inhibition:\n"
        f"  notifications while firing: {figures.firing_notifications} "
        f"(per-connector alerts in them: {figures.connector_alerts_notified})\n"
        f"  notifications on recovery: {len(after)} (resolved {DEGRADED}), "
        f"{note.received - recovered_at:.1f}s after the recovery\n"
        f"  break -> account notification: {first.received - broke_at:.1f}s"
    )


@pytest.mark.e2e
@pytest.mark.timeout(400)
def test_storm_without_the_account_inhibition_notifies_every_connector(
    storm_without_inhibition: StormStack,
) -> None:
    """The same storm with the example's ConnectorAccountDegraded inhibit rule removed: the
    figure to compare with (every per-connector alert reaches a receiver)."""
    s = storm_without_inhibition

    def all_connectors_notified() -> bool:
        sent = s.notifications(0)
        notified = {a.get("connector_id") for _, alerts in sent for a in alerts}
        return len(notified - {None}) == FLEET

    _, figures = _break_and_observe(s, all_connectors_notified)
    names = sorted({a["alertname"] for _, alerts in figures.notifications for a in alerts})
    assert names == [DEGRADED, "ConnectorBroken"], s.logs()
    assert figures.connector_alerts_notified >= FLEET
    assert figures.firing_notifications >= 2
    print(
        f"\nstorm of {FLEET} broken connectors, WITHOUT the account alert's inhibition:\n"
        f"  notifications while firing: {figures.firing_notifications} "
        f"(per-connector alerts in them: {figures.connector_alerts_notified})"
    )

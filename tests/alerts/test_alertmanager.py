"""alerts/alertmanager.example.yml: valid for amtool, routes by severity, and its inhibitions
do what docs/alerting.md says on a real Alertmanager."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.alerts.procs import ALERTMANAGER_EXAMPLE, Processes, binary, run, wait_for
from tests.alerts.stack import get_json, start_alertmanager


def test_amtool_check_config() -> None:
    result = run([binary("amtool"), "check-config", str(ALERTMANAGER_EXAMPLE)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    assert "7 inhibit rules" in result.stdout


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["alertname=ConnectorBroken", "severity=critical"], "pager"),
        (["alertname=ConnectorAccountDegraded", "severity=critical"], "pager"),
        (["alertname=ConnectorExporterAbsent", "severity=critical"], "pager"),
        (["alertname=ConnectorExporterWebhookBadSignatures", "severity=warning"], "tickets"),
        (["alertname=ConnectorExporterWatchdog", "severity=none"], "heartbeat"),
        (["alertname=ConnectorExporterDown", "severity=critical"], "pager"),
        (["alertname=ConnectorSyncFailing", "severity=warning"], "tickets"),
        (["alertname=ConnectorIncomplete", "severity=info"], "null"),
        (["alertname=SomethingElse"], "null"),
    ],
)
def test_routes_by_severity(labels: list[str], receiver: str) -> None:
    result = run(
        [
            binary("amtool"),
            "config",
            "routes",
            "test",
            f"--config.file={ALERTMANAGER_EXAMPLE}",
            *labels,
        ]
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receiver


def _alert(**labels: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "labels": labels,
        "annotations": {"summary": "test"},
        "startsAt": now.isoformat(),
        "endsAt": (now + timedelta(minutes=10)).isoformat(),
    }


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[str]:
    procs = Processes(tmp_path)
    try:
        # receivers point at a closed port: this test only reads alert states from the API
        yield start_alertmanager(procs, "http://127.0.0.1:9")
    finally:
        procs.close()


# (source alert, target alert, inhibited?) — one independent case per row, kept apart by
# distinct job / account / connector values. Per-connector alerts carry `job` but no
# `instance` (HA replicas are aggregated away in the rules).
def _account(alertname: str, severity: str, job: str, vendor: str, account: str) -> dict[str, str]:
    return {
        "alertname": alertname,
        "severity": severity,
        "job": job,
        "vendor": vendor,
        "account": account,
    }


def _c(
    alertname: str, severity: str, job: str, vendor: str, account: str, cid: str
) -> dict[str, str]:
    return {**_account(alertname, severity, job, vendor, account), "connector_id": cid}


# sources that several rows share
DEGRADED = _account("ConnectorAccountDegraded", "critical", "ce-s", "fivetran", "storm")
ABSENT = {"alertname": "ConnectorExporterAbsent", "severity": "critical", "job": "ce-a"}
POLL_FAILING = {
    **_account("ConnectorExporterPollFailing", "warning", "ce-c", "bindbee", "a4"),
    "instance": "x:1",
}
BROKEN = _c("ConnectorBroken", "critical", "ce-e", "fivetran", "a6", "c7")
CASES: list[tuple[str, dict[str, str], dict[str, str], bool]] = [
    (
        "account degraded inhibits the account's broken connectors",
        DEGRADED,
        _c("ConnectorBroken", "critical", "ce-s", "fivetran", "storm", "c1"),
        True,
    ),
    (
        "...and its failing ones",
        DEGRADED,
        _c("ConnectorSyncFailing", "warning", "ce-s", "fivetran", "storm", "c2"),
        True,
    ),
    (
        "...but not another account's",
        DEGRADED,
        _c("ConnectorBroken", "critical", "ce-s", "fivetran", "calm", "c1"),
        False,
    ),
    (
        "...nor the account's credential expiry (not part of an outage)",
        DEGRADED,
        _c("ConnectorCredentialExpiringSoon", "warning", "ce-s", "fivetran", "storm", "c3"),
        False,
    ),
    (
        "no exporter series for the job inhibits its connector alerts",
        ABSENT,
        _c("ConnectorBroken", "critical", "ce-a", "fivetran", "a1", "c1"),
        True,
    ),
    (
        "...and its account alerts",
        ABSENT,
        _account("ConnectorAccountDegraded", "critical", "ce-a", "openint", "a1"),
        True,
    ),
    (
        "...but not another job's",
        ABSENT,
        _c("ConnectorBroken", "critical", "ce-a2", "fivetran", "a8", "c1"),
        False,
    ),
    (
        "a down target pages once: the job's absence is implied",
        {
            "alertname": "ConnectorExporterDown",
            "severity": "critical",
            "job": "ce-d",
            "instance": "10.0.0.1:9841",
        },
        {"alertname": "ConnectorExporterAbsent", "severity": "critical", "job": "ce-d"},
        True,
    ),
    (
        "a down target alone does not inhibit connector alerts (an HA replica may serve them)",
        {
            "alertname": "ConnectorExporterDown",
            "severity": "critical",
            "job": "ce-h",
            "instance": "10.0.0.1:9841",
        },
        _c("ConnectorBroken", "critical", "ce-h", "fivetran", "a2", "c1"),
        False,
    ),
    (
        "a job without any target (absent up) inhibits every connector alert of that job",
        {"alertname": "ConnectorExporterDown", "severity": "critical", "job": "ce-b"},
        _c("ConnectorSyncStale", "warning", "ce-b", "bindbee", "a3", "b1"),
        True,
    ),
    (
        "a missing shard holds back the job's connector alerts",
        {"alertname": "ConnectorExporterShardsMissing", "severity": "critical", "job": "ce-m"},
        _c("ConnectorRelinkNeeded", "warning", "ce-m", "bindbee", "a7", "b9"),
        True,
    ),
    (
        "poll failing inhibits connector alerts of that vendor and account",
        POLL_FAILING,
        _c("ConnectorRelinkNeeded", "warning", "ce-c", "bindbee", "a4", "b2"),
        True,
    ),
    (
        "...not those of another account",
        POLL_FAILING,
        _c("ConnectorRelinkNeeded", "warning", "ce-c", "bindbee", "a5", "b2"),
        False,
    ),
    (
        "...and not the exporter's own alerts",
        POLL_FAILING,
        {**POLL_FAILING, "alertname": "ConnectorExporterStaleData"},
        False,
    ),
    (
        "broken inhibits sync failing of the same connector",
        BROKEN,
        _c("ConnectorSyncFailing", "warning", "ce-e", "fivetran", "a6", "c7"),
        True,
    ),
    (
        "...and sync stale of the same connector",
        BROKEN,
        _c("ConnectorSyncStale", "warning", "ce-e", "fivetran", "a6", "c7"),
        True,
    ),
    (
        "...but not of another connector",
        BROKEN,
        _c("ConnectorSyncFailing", "warning", "ce-e", "fivetran", "a6", "c8"),
        False,
    ),
    (
        "nothing inhibits the watchdog",
        {"alertname": "ConnectorExporterAbsent", "severity": "critical", "job": "ce-w"},
        {"alertname": "ConnectorExporterWatchdog", "severity": "none", "job": "ce-w"},
        False,
    ),
]


def test_inhibitions(alertmanager: str) -> None:
    sources = [_alert(**source) for _, source, _, _ in CASES]
    targets = [_alert(**target) for _, _, target, _ in CASES]
    httpx.post(
        f"{alertmanager}/api/v2/alerts", json=sources + targets, timeout=5
    ).raise_for_status()

    def states() -> dict[tuple[tuple[str, str], ...], dict[str, Any]] | None:
        alerts = get_json(f"{alertmanager}/api/v2/alerts")
        by_labels = {tuple(sorted(a["labels"].items())): a["status"] for a in alerts}
        wanted = [tuple(sorted(t["labels"].items())) for t in targets]
        return by_labels if all(w in by_labels for w in wanted) else None

    time.sleep(1)  # the inhibitor reads new alerts asynchronously
    current = wait_for("the alerts to be stored", states, timeout=20)
    wrong = []
    for (description, _, target, inhibited), alert in zip(CASES, targets, strict=True):
        status = current[tuple(sorted(alert["labels"].items()))]
        if (status["state"] == "suppressed" and bool(status["inhibitedBy"])) != inhibited:
            wrong.append(f"{description}: {target['alertname']} is {status}")
    assert not wrong, "\n".join(wrong)
    # and no source alert is inhibited by the rules (the exporter's own alerts stay visible)
    for source in sources:
        status = current[tuple(sorted(source["labels"].items()))]
        assert status["state"] == "active", (source["labels"], status)

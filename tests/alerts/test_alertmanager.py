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
    assert "4 inhibit rules" in result.stdout


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["alertname=ConnectorBroken", "severity=critical"], "pager"),
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
# distinct job / account / connector values.
EXPORTER = {"job": "connector-exporter", "instance": "10.0.0.1:9841"}
CASES: list[tuple[str, dict[str, str], dict[str, str], bool]] = [
    (
        "exporter down inhibits the connector alerts of its target",
        {"alertname": "ConnectorExporterDown", "severity": "critical", **EXPORTER},
        {
            "alertname": "ConnectorBroken",
            "severity": "critical",
            **EXPORTER,
            "vendor": "fivetran",
            "account": "a1",
            "connector_id": "c1",
        },
        True,
    ),
    (
        "...but not those of another target (shard) of the same job",
        {"alertname": "ConnectorExporterDown", "severity": "critical", **EXPORTER},
        {
            "alertname": "ConnectorBroken",
            "severity": "critical",
            "job": "connector-exporter",
            "instance": "10.0.0.2:9841",
            "vendor": "fivetran",
            "account": "a2",
            "connector_id": "c1",
        },
        False,
    ),
    (
        "a job without any target (absent) inhibits every connector alert of that job",
        {"alertname": "ConnectorExporterDown", "severity": "critical", "job": "ce-b"},
        {
            "alertname": "ConnectorSyncStale",
            "severity": "warning",
            "job": "ce-b",
            "instance": "10.0.1.1:9841",
            "vendor": "bindbee",
            "account": "a3",
            "connector_id": "b1",
        },
        True,
    ),
    (
        "poll failing inhibits connector alerts of that vendor and account",
        {
            "alertname": "ConnectorExporterPollFailing",
            "severity": "warning",
            "job": "ce-c",
            "instance": "x:1",
            "vendor": "bindbee",
            "account": "a4",
        },
        {
            "alertname": "ConnectorRelinkNeeded",
            "severity": "warning",
            "job": "ce-c",
            "instance": "x:1",
            "vendor": "bindbee",
            "account": "a4",
            "connector_id": "b2",
        },
        True,
    ),
    (
        "...not those of another account",
        {
            "alertname": "ConnectorExporterPollFailing",
            "severity": "warning",
            "job": "ce-c",
            "instance": "x:1",
            "vendor": "bindbee",
            "account": "a4",
        },
        {
            "alertname": "ConnectorRelinkNeeded",
            "severity": "warning",
            "job": "ce-c",
            "instance": "x:1",
            "vendor": "bindbee",
            "account": "a5",
            "connector_id": "b2",
        },
        False,
    ),
    (
        "...and not the exporter's own alerts",
        {
            "alertname": "ConnectorExporterPollFailing",
            "severity": "warning",
            "job": "ce-c",
            "instance": "x:1",
            "vendor": "bindbee",
            "account": "a4",
        },
        {
            "alertname": "ConnectorExporterStaleData",
            "severity": "warning",
            "job": "ce-c",
            "instance": "x:1",
            "vendor": "bindbee",
            "account": "a4",
        },
        False,
    ),
    (
        "broken inhibits sync failing of the same connector",
        {
            "alertname": "ConnectorBroken",
            "severity": "critical",
            "job": "ce-d",
            "instance": "y:1",
            "vendor": "fivetran",
            "account": "a6",
            "connector_id": "c7",
        },
        {
            "alertname": "ConnectorSyncFailing",
            "severity": "warning",
            "job": "ce-d",
            "instance": "y:1",
            "vendor": "fivetran",
            "account": "a6",
            "connector_id": "c7",
        },
        True,
    ),
    (
        "...and sync stale of the same connector",
        {
            "alertname": "ConnectorBroken",
            "severity": "critical",
            "job": "ce-d",
            "instance": "y:1",
            "vendor": "fivetran",
            "account": "a6",
            "connector_id": "c7",
        },
        {
            "alertname": "ConnectorSyncStale",
            "severity": "warning",
            "job": "ce-d",
            "instance": "y:1",
            "vendor": "fivetran",
            "account": "a6",
            "connector_id": "c7",
        },
        True,
    ),
    (
        "...but not of another connector",
        {
            "alertname": "ConnectorBroken",
            "severity": "critical",
            "job": "ce-d",
            "instance": "y:1",
            "vendor": "fivetran",
            "account": "a6",
            "connector_id": "c7",
        },
        {
            "alertname": "ConnectorSyncFailing",
            "severity": "warning",
            "job": "ce-d",
            "instance": "y:1",
            "vendor": "fivetran",
            "account": "a6",
            "connector_id": "c8",
        },
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

"""alerts/alertmanager.example.yml: valid for amtool, routes by severity, and its inhibitions
do what docs/alerting.md says on a real Alertmanager."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import pytest

from tests.alerts.procs import (
    ALERTMANAGER_EXAMPLE,
    Processes,
    binary,
    load_yaml,
    run,
    wait_for,
)
from tests.alerts.stack import get_json, start_alertmanager

# the inhibition cases, as data: (source alert, target alert, inhibited?) per entry
INHIBITIONS = Path(__file__).with_name("inhibitions.yaml")


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


class Case(NamedTuple):
    """Is `target` inhibited while `source` fires? One entry of inhibitions.yaml."""

    description: str
    source: dict[str, str]
    target: dict[str, str]
    inhibited: bool


def _labels(value: object) -> dict[str, str]:
    assert isinstance(value, dict), value
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()), value
    return dict(value)


def inhibition_cases() -> list[Case]:
    """The case table, each entry's shape checked: a typo in the YAML must not pass silently."""
    cases = []
    for entry in load_yaml(INHIBITIONS):
        assert set(entry) == set(Case._fields), entry
        assert isinstance(entry["description"], str), entry
        assert isinstance(entry["inhibited"], bool), entry
        source, target = _labels(entry["source"]), _labels(entry["target"])
        cases.append(Case(entry["description"], source, target, entry["inhibited"]))
    # the cases are posted together: each target must be its own alert
    assert len({tuple(sorted(c.target.items())) for c in cases}) == len(cases)
    return cases


def test_inhibitions(alertmanager: str) -> None:
    cases = inhibition_cases()
    sources = [_alert(**c.source) for c in cases]
    targets = [_alert(**c.target) for c in cases]
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
    for (description, _, target, inhibited), alert in zip(cases, targets, strict=True):
        status = current[tuple(sorted(alert["labels"].items()))]
        if (status["state"] == "suppressed" and bool(status["inhibitedBy"])) != inhibited:
            wrong.append(f"{description}: {target['alertname']} is {status}")
    assert not wrong, "\n".join(wrong)
    # and no source alert is inhibited by the rules (the exporter's own alerts stay visible)
    for source in sources:
        status = current[tuple(sorted(source["labels"].items()))]
        assert status["state"] == "active", (source["labels"], status)

"""The shipped rule files: promtool check and unit tests, the alert contract, and proof that the
unit tests pin every alert's `for` to the evaluation."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.alerts.procs import (
    ALERTS,
    RULE_FILES,
    RUNBOOKS,
    TEST_FILES,
    binary,
    duration_seconds,
    load_yaml,
    run,
)

RUNBOOK_BASE = (
    "https://github.com/connector-exporter/connector-exporter/blob/main/docs/runbooks.md#"
)
GRAFANA_BASE = "https://grafana.example.com/d/"
DASHBOARD_UIDS = ("connector-fleet-overview", "connector-detail", "connector-exporter-health")

# The contract of issue 4 and SPEC 6.4 (plus the webhook alert of issue 13): alert name ->
# (default `for`, severity). Names are fixed. The watchdog has no `for`: it fires at once.
CONTRACT: dict[str, tuple[str | None, str]] = {
    "ConnectorBroken": ("15m", "critical"),
    "ConnectorRelinkNeeded": ("15m", "warning"),
    "ConnectorSyncFailing": ("30m", "warning"),
    "ConnectorSyncStale": ("15m", "warning"),
    "ConnectorSyncDelayed": ("1h", "warning"),
    "ConnectorIncomplete": ("24h", "info"),
    "ConnectorCredentialExpiringSoon": ("1h", "warning"),
    "ConnectorExporterPollFailing": ("15m", "warning"),
    "ConnectorExporterStaleData": ("5m", "warning"),
    "ConnectorExporterDown": ("5m", "critical"),
    "ConnectorAccountDegraded": ("10m", "critical"),
    "ConnectorExporterAbsent": ("5m", "critical"),
    "ConnectorExporterShardsMissing": ("5m", "critical"),
    "ConnectorExporterShardingMismatch": ("15m", "critical"),
    "ConnectorExporterWebhookBadSignatures": ("15m", "warning"),
    "ConnectorExporterWatchdog": (None, "none"),
}
# Alerts about one connector; the others are about accounts, the fleet and the exporter.
CONNECTOR_ALERTS = [
    "ConnectorBroken",
    "ConnectorRelinkNeeded",
    "ConnectorSyncFailing",
    "ConnectorSyncStale",
    "ConnectorSyncDelayed",
    "ConnectorIncomplete",
    "ConnectorCredentialExpiringSoon",
]
# Always firing, so it has no silent unit test and no `for` to mutate.
ALWAYS_FIRING = {"ConnectorExporterWatchdog"}

# Keys the PrometheusRule CRD (monitoring.coreos.com/v1) accepts, so the chart can wrap the
# files unchanged.
GROUP_KEYS = {"name", "interval", "rules"}
RULE_KEYS = {"alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"}


def all_rules() -> list[dict[str, Any]]:
    return [r for f in RULE_FILES for g in load_yaml(f)["groups"] for r in g["rules"]]


def alerting_rules() -> dict[str, dict[str, Any]]:
    return {r["alert"]: r for r in all_rules() if "alert" in r}


def github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub generates for the headings of a markdown document."""
    anchors = set()
    for line in markdown.splitlines():
        if m := re.match(r"^#{1,6}\s+(.*?)\s*$", line):
            text = re.sub(r"[^\w\- ]", "", m.group(1).lower())
            anchors.add(text.replace(" ", "-"))
    return anchors


def test_rule_files_exist() -> None:
    names = {f.name for f in RULE_FILES}
    assert {"connector-alerts.rules.yml", "connector-recording.rules.yml"} <= names


@pytest.mark.parametrize("rule_file", RULE_FILES, ids=lambda p: p.name)
def test_promtool_check_rules(rule_file: Path) -> None:
    result = run([binary("promtool"), "check", "rules", str(rule_file)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize("test_file", TEST_FILES, ids=lambda p: p.name)
def test_promtool_unit_tests(test_file: Path) -> None:
    result = run([binary("promtool"), "test", "rules", str(test_file)], timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_rule_files_only_use_what_prometheusrule_accepts() -> None:
    for rule_file in RULE_FILES:
        doc = load_yaml(rule_file)
        assert set(doc) == {"groups"}, rule_file.name
        for group in doc["groups"]:
            assert set(group) <= GROUP_KEYS, (rule_file.name, group["name"])
            for rule in group["rules"]:
                assert set(rule) <= RULE_KEYS, (rule_file.name, rule)
                assert ("alert" in rule) != ("record" in rule), rule


def test_alert_names_severity_and_for_match_the_contract() -> None:
    rules = alerting_rules()
    assert set(rules) == set(CONTRACT)
    for name, (default_for, severity) in CONTRACT.items():
        assert rules[name].get("for") == default_for, name
        assert rules[name]["labels"] == {"severity": severity}, name


def test_every_alert_has_the_four_annotations() -> None:
    anchors = github_anchors(RUNBOOKS.read_text())
    for name, rule in alerting_rules().items():
        ann = rule["annotations"]
        assert set(ann) == {"summary", "description", "runbook_url", "dashboard_url"}, name
        assert "{{" not in ann["summary"], f"{name}: summary must be static"
        assert "$value" in ann["description"], f"{name}: description must show the value"
        assert ann["runbook_url"] == RUNBOOK_BASE + name.lower(), name
        assert name.lower() in anchors, f"docs/runbooks.md has no section for {name}"
        uid = ann["dashboard_url"].removeprefix(GRAFANA_BASE).split("?")[0]
        assert ann["dashboard_url"].startswith(GRAFANA_BASE) and uid in DASHBOARD_UIDS, name


def test_connector_alerts_fire_once_per_connector_whatever_the_replicas() -> None:
    # HA replicas differ in instance/pod; every per-connector selector is aggregated over them
    # (the promtool HA case in connector-alerts-fleet.test.yml proves the outcome).
    rules = alerting_rules()
    for name in CONNECTOR_ALERTS:
        assert "max without (instance, pod)" in rules[name]["expr"], name


def test_connector_alerts_name_the_connector() -> None:
    rules = alerting_rules()
    for name in CONNECTOR_ALERTS:
        rule = rules[name]
        assert "group_left (name, integration)" in rule["expr"], name
        desc = rule["annotations"]["description"]
        for label in ("vendor", "account", "name", "connector_id"):
            assert "$labels." + label in desc, (name, label)
        assert "/d/connector-detail?" in rule["annotations"]["dashboard_url"], name


def test_connector_alerts_that_ignore_health_exclude_paused_connectors() -> None:
    # The health StateSet already reports a paused connector as health="paused"; alerts on
    # fields independent of health must drop paused connectors themselves.
    rules = alerting_rules()
    for name in CONNECTOR_ALERTS:
        expr = rules[name]["expr"]
        if "connector_health{" not in expr:
            assert "connector_paused" in expr, name


def test_exporter_down_keeps_the_replaceable_job_selector() -> None:
    expr = alerting_rules()["ConnectorExporterDown"]["expr"]
    assert expr.count('job="connector-exporter"') == 2
    assert "absent(" in expr


def test_recording_rules_follow_the_naming_convention() -> None:
    records = [r for r in all_rules() if "record" in r]
    assert records
    for rule in records:
        level, metric, ops = rule["record"].split(":")
        assert level and ops, rule["record"]
        # the metric part is an exporter metric that the expression reads
        assert metric.startswith("connector_") and metric in rule["expr"], rule["record"]


def unit_test_cases() -> dict[str, tuple[int, int]]:
    """Per alert: (evaluations expecting it silent, evaluations expecting it firing)."""
    counts: dict[str, tuple[int, int]] = {}
    for test_file in TEST_FILES:
        for case in load_yaml(test_file)["tests"]:
            for check in case.get("alert_rule_test", []):
                silent, firing = counts.get(check["alertname"], (0, 0))
                if check.get("exp_alerts"):
                    counts[check["alertname"]] = (silent, firing + 1)
                else:
                    counts[check["alertname"]] = (silent + 1, firing)
    return counts


def test_every_alert_has_firing_and_silent_unit_tests() -> None:
    counts = unit_test_cases()
    for name in CONTRACT:
        silent, firing = counts.get(name, (0, 0))
        assert firing >= 1, f"{name}: no unit test expects it to fire"
        if name not in ALWAYS_FIRING:
            assert silent >= 1, f"{name}: no unit test expects it to stay silent"


def test_firing_unit_tests_pin_labels_and_all_annotations() -> None:
    for test_file in TEST_FILES:
        for case in load_yaml(test_file)["tests"]:
            for check in case.get("alert_rule_test", []):
                for alert in check.get("exp_alerts") or []:
                    assert alert["exp_labels"]["alertname"] == check["alertname"]
                    assert "severity" in alert["exp_labels"]
                    keys = set(alert["exp_annotations"])
                    assert keys == {"summary", "description", "runbook_url", "dashboard_url"}


def _files_testing(alert: str) -> list[Path]:
    return [
        f
        for f in TEST_FILES
        if any(
            check["alertname"] == alert
            for case in load_yaml(f)["tests"]
            for check in case.get("alert_rule_test", [])
        )
    ]


def _promtool_test_with(tmp_path: Path, alert: str, new_for: str) -> tuple[int, str]:
    """Run the unit tests of `alert` against a copy of the rules where its `for` is `new_for`."""
    tree = tmp_path / f"{alert}-{new_for}"
    (tree / "tests").mkdir(parents=True)
    for rule_file in RULE_FILES:
        doc = load_yaml(rule_file)
        for group in doc["groups"]:
            for rule in group["rules"]:
                if rule.get("alert") == alert:
                    rule["for"] = new_for
        (tree / rule_file.name).write_text(yaml.safe_dump(doc, sort_keys=False))
    copies = []
    for test_file in _files_testing(alert):
        # only the cases that check this alert: the others cannot notice and cost time
        doc = load_yaml(test_file)
        doc["tests"] = [
            case
            for case in doc["tests"]
            if any(c["alertname"] == alert for c in case.get("alert_rule_test", []))
        ]
        copies.append(tree / "tests" / test_file.name)
        copies[-1].write_text(yaml.safe_dump(doc, sort_keys=False))
    result = run([binary("promtool"), "test", "rules", *map(str, copies)], timeout=120)
    return result.returncode, result.stdout + result.stderr


@pytest.mark.parametrize("alert", [a for a, (f, _) in CONTRACT.items() if f is not None])
def test_unit_tests_catch_a_for_one_evaluation_off(alert: str, tmp_path: Path) -> None:
    """Mutation check: with `for` one evaluation shorter or longer, the unit tests must fail.

    This proves each alert is tested silent one evaluation before its `for` elapses and firing
    exactly when it does (and that the copied rules pass when `for` is left alone).
    """
    files = _files_testing(alert)
    assert files, f"no unit test file tests {alert}"
    interval = max(duration_seconds(load_yaml(f).get("evaluation_interval", "1m")) for f in files)
    default_for = CONTRACT[alert][0]
    assert default_for is not None
    default = int(duration_seconds(default_for))
    code, output = _promtool_test_with(tmp_path, alert, f"{default}s")
    assert code == 0, output
    for new_for in (f"{default - int(interval)}s", f"{default + int(interval)}s"):
        code, output = _promtool_test_with(tmp_path, alert, new_for)
        assert code != 0, f"{alert} with for={new_for} still passes its unit tests"
        assert alert in output


def test_alerts_dir_is_complete() -> None:
    assert (ALERTS / "alertmanager.example.yml").is_file()
    assert TEST_FILES

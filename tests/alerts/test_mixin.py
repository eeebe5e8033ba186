"""The monitoring mixin (mixin/) is the one source of alerts/*.rules.yml: the checked-in files are
its output, and it evaluates with its defaults and with a user's overridden _config into rules
that promtool accepts and tests."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from mixin import build
from tests.alerts.procs import ALERTMANAGER_EXAMPLE, REPO, binary, load_yaml, run
from tests.alerts.test_rules import CONNECTOR_ALERTS, CONTRACT

BURN_RATE_TESTS = REPO / "mixin" / "tests" / "slo-burn-rate.test.yml"

# A user's _config: another job, replica label, hold window, threshold, `for`, links, an SLO.
OVERRIDE: dict[str, Any] = {
    "exporterSelector": 'job="integrations"',
    "replicaLabels": ["instance", "pod", "replica"],
    "holdWindow": "30m",
    "for": {"ConnectorBroken": "7m", "ConnectorAccountDegraded": "3m"},
    "accountDegraded": {"unhealthyRatio": 0.5},
    "runbookURLPattern": "https://wiki.corp.test/runbooks/%s",
    "grafanaURL": "https://grafana.corp.test",
    "fleetSLO": {"objective": 0.99},
}


def alerts_of(out: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        r["alert"]: r for g in out["prometheusAlerts"]["groups"] for r in g["rules"] if "alert" in r
    }


def test_checked_in_rule_files_are_the_mixins_output() -> None:
    diffs = build.drift()
    assert not diffs, "alerts/ drifted from mixin/; run `python mixin/build.py`\n" + "".join(diffs)


def test_build_check_fails_on_drift(tmp_path: Path) -> None:
    """The --check mode the docs tell contributors to run notices a hand edit."""
    edited = tmp_path / "alerts"
    shutil.copytree(REPO / "alerts", edited)
    rules = edited / "connector-alerts.rules.yml"
    rules.write_text(rules.read_text().replace("for: 15m", "for: 14m", 1))
    assert build.drift(edited), "a changed `for` was not noticed"
    assert build.drift(REPO / "alerts") == []


def test_mixin_follows_the_monitoring_mixins_conventions() -> None:
    out = build.evaluate()
    assert set(out) == {"config", "prometheusAlerts", "prometheusRules", "grafanaDashboards"}
    config = out["config"]
    for key in ("exporterSelector", "for", "runbookURLPattern", "grafanaURL", "accountDegraded"):
        assert key in config, key
    assert set(alerts_of(out)) == set(CONTRACT)
    for name, (default_for, _) in CONTRACT.items():
        assert config["for"].get(name) == default_for, name
    records = [r for g in out["prometheusRules"]["groups"] for r in g["rules"]]
    assert records and all("record" in r for r in records)


def test_dashboards_are_the_generated_grafana_files() -> None:
    dashboards = build.evaluate()["grafanaDashboards"]
    files = sorted((REPO / "grafana").glob("*.json"))
    assert sorted(dashboards) == [f.name for f in files]
    for f in files:
        assert dashboards[f.name] == json.loads(f.read_text()), f.name


def test_overridden_config_reaches_every_rule() -> None:
    out = build.evaluate(OVERRIDE)
    alerts = alerts_of(out)
    # merged, not replaced: one `for` changed, the others keep their defaults
    assert alerts["ConnectorBroken"]["for"] == "7m"
    assert alerts["ConnectorAccountDegraded"]["for"] == "3m"
    assert alerts["ConnectorSyncFailing"]["for"] == CONTRACT["ConnectorSyncFailing"][0]
    assert "> 0.5\n" in alerts["ConnectorAccountDegraded"]["expr"]
    every = [g for key in ("prometheusAlerts", "prometheusRules") for g in out[key]["groups"]]
    exprs = [r["expr"] for g in every for r in g["rules"]]
    selectors = [s for e in exprs for s in re.findall(r"\b[a-z_]+\{[^}]*\}", e)]
    assert selectors
    for selector in selectors:
        assert 'job="integrations"' in selector, selector
    assert not [e for e in exprs if 'job="connector-exporter"' in e]
    connector_exprs = [alerts[name]["expr"] for name in CONNECTOR_ALERTS]
    assert all("[30m]" in e and "[15m]" not in e for e in connector_exprs)
    assert "max without (instance, pod, replica)" in alerts["ConnectorBroken"]["expr"]
    for name, rule in alerts.items():
        assert rule["annotations"]["runbook_url"].startswith("https://wiki.corp.test/runbooks/")
        assert rule["annotations"]["dashboard_url"].startswith("https://grafana.corp.test/d/"), name
    # an objective adds the burn-rate alerts, one per window pair
    burns = [
        r
        for g in out["prometheusAlerts"]["groups"]
        for r in g["rules"]
        if r.get("alert") == "ConnectorFleetErrorBudgetBurn"
    ]
    assert [(b["labels"]["long"], b["labels"]["short"]) for b in burns] == [
        ("1h", "5m"),
        ("6h", "30m"),
        ("1d", "2h"),
        ("3d", "6h"),
    ]
    assert "(14.4 * 0.01" in burns[0]["expr"]


def test_default_config_has_no_burn_rate_alerts() -> None:
    assert "ConnectorFleetErrorBudgetBurn" not in alerts_of(build.evaluate())


@pytest.mark.parametrize("override", [None, OVERRIDE], ids=["default", "overridden"])
def test_promtool_checks_the_evaluated_mixin(
    override: dict[str, Any] | None, tmp_path: Path
) -> None:
    for path in build.write_rule_files(tmp_path, override):
        result = run([binary("promtool"), "check", "rules", str(path)])
        assert result.returncode == 0, result.stdout + result.stderr
        assert "SUCCESS" in result.stdout


def test_overridden_for_and_selector_behave_in_promtool(tmp_path: Path) -> None:
    """ConnectorBroken with `for: 7m` and job "integrations": silent at 6m, firing at 7m; a
    broken connector of the default job is not selected at all."""
    build.write_rule_files(tmp_path, OVERRIDE)
    where = 'job="{job}",instance="e:1",vendor="fivetran",account="p",connector_id="{c}"'
    broken = "connector_health{{" + where + ',health="broken"}}'
    info = "connector_info{{" + where + ',name="{c}",integration="x",group="",end_user=""}}'
    series = [
        {"series": tpl.format(job=job, c=c), "values": "1x20"}
        for job, c in (("integrations", "mine"), ("connector-exporter", "other"))
        for tpl in (broken, info)
    ]
    expected = {
        "alertname": "ConnectorBroken",
        "severity": "critical",
        "job": "integrations",
        "vendor": "fivetran",
        "account": "p",
        "connector_id": "mine",
        "health": "broken",
        "name": "mine",
        "integration": "x",
    }
    annotations = {
        "summary": "A connector is broken and no longer syncs data.",
        "description": 'fivetran connector "mine" (id mine, integration x) in account p is '
        'broken: connector_health{health="broken"} = 1.',
        "runbook_url": "https://wiki.corp.test/runbooks/connectorbroken",
        "dashboard_url": "https://grafana.corp.test/d/connector-detail?var-vendor=fivetran"
        "&var-account=p&var-connector_id=mine",
    }
    doc = {
        "rule_files": ["connector-alerts.rules.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "alert_rule_test": [
                    {"eval_time": "6m", "alertname": "ConnectorBroken", "exp_alerts": []},
                    {
                        "eval_time": "7m",
                        "alertname": "ConnectorBroken",
                        "exp_alerts": [{"exp_labels": expected, "exp_annotations": annotations}],
                    },
                ],
            }
        ],
    }
    test_file = tmp_path / "override.test.yml"
    test_file.write_text(yaml.safe_dump(doc, sort_keys=False))
    result = run([binary("promtool"), "test", "rules", str(test_file)], timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_burn_rate_alerts_unit_tests(tmp_path: Path) -> None:
    """mixin/tests/slo-burn-rate.test.yml against the mixin built with a 95% objective."""
    build.write_rule_files(tmp_path, {"fleetSLO": {"objective": 0.95}})
    shutil.copy(BURN_RATE_TESTS, tmp_path)
    result = run([binary("promtool"), "test", "rules", str(tmp_path / BURN_RATE_TESTS.name)], 120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_burn_rate_unit_tests_notice_a_wrong_objective(tmp_path: Path) -> None:
    """The burn-rate tests fail against a mixin with another objective (they test something)."""
    build.write_rule_files(tmp_path, {"fleetSLO": {"objective": 0.7}})
    shutil.copy(BURN_RATE_TESTS, tmp_path)
    result = run([binary("promtool"), "test", "rules", str(tmp_path / BURN_RATE_TESTS.name)], 120)
    assert result.returncode != 0, result.stdout


def test_alertmanager_example_names_exactly_the_per_connector_alerts() -> None:
    """The inhibit rules list per-connector alerts by name; a new one must be added there."""
    names_in_rules = {
        name
        for rule in load_yaml(ALERTMANAGER_EXAMPLE)["inhibit_rules"]
        for matcher in rule["target_matchers"]
        if (m := re.fullmatch(r'alertname=~"(.*)"', matcher))
        for name in m.group(1).split("|")
    }
    assert set(CONNECTOR_ALERTS) <= names_in_rules
    assert names_in_rules <= set(CONTRACT), names_in_rules - set(CONTRACT)

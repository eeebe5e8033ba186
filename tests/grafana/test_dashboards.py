"""The committed dashboards: generated from grafana/generate.py, provisionable as they are, and
every query parses and reads only what the exporter and its recording rules produce."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.grafana.dashboards import (
    GENERATOR,
    GRAFANA,
    PENDING_METRICS,
    UIDS,
    allowed_metric_names,
    committed,
    exporter_metric_names,
    load_generator,
    metric_names,
    panels,
    problems,
    recording_rule_names,
    substitute,
    targets,
    used_metric_names,
)

DASHBOARDS = committed()
ALLOWED = allowed_metric_names()


def test_grafana_dir_holds_exactly_the_three_dashboards() -> None:
    # The Helm chart turns every grafana/*.json into a sidecar ConfigMap.
    assert set(DASHBOARDS) == set(UIDS)
    assert {p.name for p in GRAFANA.iterdir() if p.suffix == ".json"} == set(UIDS)


def test_committed_files_equal_a_fresh_generation() -> None:
    fresh = load_generator().generate()
    assert set(fresh) == set(UIDS)
    for name, text in fresh.items():
        assert (GRAFANA / name).read_text() == text, f"{name} is stale: python grafana/generate.py"


def test_generation_is_deterministic() -> None:
    assert load_generator().generate() == load_generator().generate()


def test_check_mode_passes_on_the_repo_and_fails_on_a_stale_file(tmp_path: Path) -> None:
    ok = subprocess.run(
        [sys.executable, str(GENERATOR), "--check"], capture_output=True, text=True, check=False
    )
    assert ok.returncode == 0, ok.stderr
    for name in UIDS:
        (tmp_path / name).write_text((GRAFANA / name).read_text())
    stale = tmp_path / "connector-detail.json"
    stale.write_text(stale.read_text().replace('"Connector detail"', '"Edited by hand"'))
    bad = subprocess.run(
        [sys.executable, str(GENERATOR), "--check", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 1
    assert "connector-detail.json" in bad.stderr and "overview" not in bad.stderr


@pytest.mark.parametrize("name", sorted(UIDS))
def test_dashboard_has_no_problems(name: str) -> None:
    dashboard = json.loads((GRAFANA / name).read_text())  # valid JSON
    assert dashboard["title"] and dashboard["schemaVersion"] >= 36
    assert problems(name, dashboard, ALLOWED) == []


def _mutated(name: str, change: Any) -> list[str]:
    dashboard = copy.deepcopy(DASHBOARDS[name])
    change(dashboard)
    return problems(name, dashboard, ALLOWED)


def _first_target(d: dict[str, Any]) -> dict[str, Any]:
    target: dict[str, Any] = next(p for p in panels(d) if p.get("targets"))["targets"][0]
    return target


def test_problems_catches_a_hard_coded_datasource_uid() -> None:
    def change(d: dict[str, Any]) -> None:
        _first_target(d)["datasource"] = {"type": "prometheus", "uid": "P1809F7CD0C75ACF3"}

    found = _mutated("connector-detail.json", change)
    assert any("hard-coded datasource" in p for p in found)
    assert any("target datasource is not $datasource" in p for p in found)


def test_problems_catches_duplicate_panel_ids_and_a_changed_uid() -> None:
    def change(d: dict[str, Any]) -> None:
        d["panels"][1]["id"] = d["panels"][0]["id"]
        d["uid"] = "abc123"

    found = _mutated("connector-fleet-overview.json", change)
    assert any("panel ids are not unique" in p for p in found)
    assert any("uid 'abc123'" in p for p in found)


def test_problems_catches_unknown_metrics_unparsable_and_unfiltered_queries() -> None:
    def unknown(d: dict[str, Any]) -> None:
        _first_target(d)["expr"] = 'connector_helth{vendor=~"$vendor", account=~"$account"}'

    def unparsable(d: dict[str, Any]) -> None:
        _first_target(d)["expr"] = "sum by (vendor (connector_info)"

    def unfiltered(d: dict[str, Any]) -> None:
        _first_target(d)["expr"] = 'connector_info{vendor=~"$vendor"}'

    name = "connector-exporter-health.json"
    assert any("unknown metric connector_helth" in p for p in _mutated(name, unknown))
    assert any("does not parse" in p for p in _mutated(name, unparsable))
    assert any("not filtered by $vendor and $account" in p for p in _mutated(name, unfiltered))


def test_problems_catches_a_single_value_vendor_variable() -> None:
    def change(d: dict[str, Any]) -> None:
        for v in d["templating"]["list"]:
            if v["name"] == "vendor":
                v["includeAll"] = False

    assert "variable vendor is not multi-value with All = .*" in _mutated(
        "connector-detail.json", change
    )


def test_every_query_parses_with_variables_set_to_all() -> None:
    all_targets = targets(DASHBOARDS)
    assert len(all_targets) >= 30
    for t in all_targets:
        assert metric_names(substitute(t.expr)) <= ALLOWED, t.name


def test_fleet_overview_answers_what_where_since_when() -> None:
    d = DASHBOARDS["connector-fleet-overview.json"]
    by_title = {p["title"]: p for p in panels(d)}
    kinds = {p["type"] for p in by_title.values()}
    assert {"stat", "timeseries", "table"} <= kinds
    names = {v["name"] for v in d["templating"]["list"]}
    assert names == {"datasource", "vendor", "account", "group"}
    unhealthy = by_title["Connectors not healthy"]
    exprs = " ".join(t["expr"] for t in unhealthy["targets"])
    assert 'health!="healthy"' in exprs and "connector_last_success_age_seconds" in exprs
    text = json.dumps(unhealthy)
    for column in ("vendor", "account", "name", "integration", "health", "unhealthy since"):
        assert f'"{column}"' in text, column
    assert "/d/connector-detail/" in text
    for var in ("var-vendor=", "var-account=", "var-connector_id="):
        assert var in text
    assert any("ALERTS{" in t["expr"] for p in panels(d) for t in p.get("targets", []))


def test_connector_detail_has_the_variables_alerts_link_to_and_state_timelines() -> None:
    d = DASHBOARDS["connector-detail.json"]
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert set(variables) == {"datasource", "vendor", "account", "connector_id"}
    assert variables["connector_id"]["includeAll"]
    timelines = [p["title"] for p in panels(d) if p["type"] == "state-timeline"]
    assert "Health" in timelines and len(timelines) >= 2
    used = set().union(*(metric_names(substitute(t.expr)) for t in targets({"d": d})))
    for metric in (
        "connector_last_success_age_seconds",
        "connector_last_failure_age_seconds",
        "connector_sync_frequency_seconds",
        "connector_warnings",
        "connector_tasks",
        "connector_credential_expiry_timestamp_seconds",
    ):
        assert metric in used, metric


def test_exporter_health_shows_429s_and_the_process() -> None:
    d = DASHBOARDS["connector-exporter-health.json"]
    exprs = [t.expr for t in targets({"d": d})]
    assert any('code="429"' in e for e in exprs)
    used = set().union(*(metric_names(substitute(e)) for e in exprs))
    for metric in (
        "connector_exporter_poll_success",
        "connector_exporter_poll_duration_seconds",
        "connector_exporter_api_requests_total",
        "connector_exporter_last_poll_success_timestamp_seconds",
        "connector_exporter_connectors",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
    ):
        assert metric in used, metric


def test_problems_catches_organize_ordering_by_new_names() -> None:
    def change(d: dict[str, Any]) -> None:
        table = next(p for p in panels(d) if p["title"] == "Connectors not healthy")
        organize = table["transformations"][1]["options"]
        organize["indexByName"]["unhealthy since"] = organize["indexByName"].pop("Value #A")

    found = _mutated("connector-fleet-overview.json", change)
    assert any("organize refers to renamed fields ['unhealthy since']" in p for p in found)


def test_every_metric_read_is_produced_or_pending() -> None:
    produced = exporter_metric_names() | recording_rule_names() | {"ALERTS"}
    assert used_metric_names(DASHBOARDS) - produced <= PENDING_METRICS


def test_pending_metrics_are_read_and_not_served_yet() -> None:
    # Every pending name is one a panel reads (no stale entries) ...
    assert used_metric_names(DASHBOARDS) >= PENDING_METRICS
    # ... and none is served yet: once the exporter serves one, take it out of PENDING_METRICS
    # so that the end-to-end test demands data from its panels.
    served = PENDING_METRICS & exporter_metric_names()
    assert not served, f"served now, remove from PENDING_METRICS: {sorted(served)}"


def test_new_signals_have_their_panels() -> None:
    detail = used_metric_names({"d": DASHBOARDS["connector-detail.json"]})
    health = used_metric_names({"d": DASHBOARDS["connector-exporter-health.json"]})
    assert {
        "connector_syncs_total",
        "connector_last_sync_duration_seconds",
        "connector_last_event_timestamp_seconds",
        "connector_schema_state",
        "connector_manual_schedule",
        "connector_historical_sync",
        "connector_issue_info",
        "connector_sync_progress_ratio",
    } <= detail
    assert {
        "connector_exporter_webhook_requests_total",
        "connector_exporter_last_poll_failure_reason",
        "connector_exporter_shard_ordinal",
        "connector_exporter_total_shards",
    } <= health
    exprs = [t.expr for t in targets({"d": DASHBOARDS["connector-exporter-health.json"]})]
    # accepted vs rejected webhooks: by result over time, and the rejected ones counted
    assert any("by (vendor, account, result)" in e for e in exprs)
    assert any('result!~"accepted|duplicate"' in e for e in exprs)


def test_problems_catches_a_metric_neither_served_nor_pending() -> None:
    def change(d: dict[str, Any]) -> None:
        _first_target(d)["expr"] = (
            'connector_syncs_total_typo{vendor=~"$vendor", account=~"$account"}'
        )

    assert "connector_syncs_total_typo" not in PENDING_METRICS
    found = _mutated("connector-detail.json", change)
    assert any("unknown metric connector_syncs_total_typo" in p for p in found)


def _readme_panel_tables() -> dict[str, list[str]]:
    """Dashboard title -> the panel column of its table in the README's Dashboards section
    (rows after the header and the separator)."""
    text = (GRAFANA.parent / "README.md").read_text()
    section = text.split("\n## Dashboards\n", 1)[1].split("\n## ", 1)[0]
    tables: dict[str, list[str]] = {}
    for part in section.split("\n### ")[1:]:
        title, _, body = part.partition("\n")
        rows = [line for line in body.splitlines() if line.startswith("| ")]
        tables[title] = [row.split(" | ")[0].removeprefix("| ") for row in rows[2:]]
    return tables


def test_readme_lists_every_panel_in_layout_order() -> None:
    expected = {
        d["title"]: [p["title"] for p in panels(d) if p["type"] != "row"]
        for d in DASHBOARDS.values()
    }
    assert _readme_panel_tables() == expected

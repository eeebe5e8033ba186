"""The dashboards as tests see them: the generator, the committed JSON, their queries."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import promql_parser
import yaml

REPO = Path(__file__).resolve().parents[2]
GRAFANA = REPO / "grafana"
GENERATOR = GRAFANA / "generate.py"
UIDS = {
    "connector-fleet-overview.json": "connector-fleet-overview",
    "connector-detail.json": "connector-detail",
    "connector-exporter-health.json": "connector-exporter-health",
}
# Grafana's own interval variables, and what the end-to-end test puts in their place: Prometheus
# scrapes every second there, so 10s holds enough samples for rate().
BUILTIN_VARIABLES = {
    "$__rate_interval": "10s",
    "$__interval": "1s",
    "$__range": "5m",
}
VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)(?::\w+)?\}")
# The metrics SPEC §6 adds that the dashboards read (tests/grafana/test_spec6_queries.py checks
# every query of them with promtool).
SPEC6_METRICS = frozenset(
    {
        # §6.1 vendor signals (connector detail)
        "connector_schema_state",
        "connector_manual_schedule",
        "connector_historical_sync",
        "connector_issue_info",
        "connector_sync_progress_ratio",
        # §6.2 webhooks (connector detail, exporter health)
        "connector_syncs_total",
        "connector_last_sync_duration_seconds",
        "connector_last_event_timestamp_seconds",
        "connector_exporter_webhook_requests_total",
        # §6.3 exporter self metrics (exporter health)
        "connector_exporter_last_poll_failure_reason",
        "connector_exporter_shard_ordinal",
        "connector_exporter_total_shards",
    }
)
# Names a panel may read that the polling-only stack of these tests does not produce: the
# webhook families appear only once a vendor's webhooks arrive (tests/webhooks/ and
# tests/alerts/test_webhook_e2e.py cover them end to end; test_spec6_queries.py checks every
# query of them with promtool).
# A test fails once one of them is served here: take it out, and the end-to-end test then
# demands data from its panels.
PENDING_METRICS = frozenset(
    {
        "connector_syncs_total",
        "connector_last_sync_duration_seconds",
        "connector_last_event_timestamp_seconds",
        "connector_exporter_webhook_requests_total",
    }
)


def load_generator() -> ModuleType:
    """grafana/generate.py as a module (grafana/ is no package: the Helm chart globs it); it
    puts grafana/ on sys.path for its sibling modules (dashlib and one per dashboard)."""
    spec = importlib.util.spec_from_file_location("grafana_generate", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # No grafana/__pycache__: the chart packages everything under grafana/.
    saved, sys.dont_write_bytecode = sys.dont_write_bytecode, True
    try:
        spec.loader.exec_module(module)
    finally:
        sys.dont_write_bytecode = saved
    return module


def grafana_module(name: str) -> ModuleType:
    """A module of grafana/ (dashlib, fleet_overview, connector_detail, exporter_health)."""
    load_generator()
    return importlib.import_module(name)


def committed() -> dict[str, dict[str, Any]]:
    """File name -> parsed JSON of every dashboard under grafana/."""
    return {p.name: json.loads(p.read_text()) for p in sorted(GRAFANA.glob("*.json"))}


@dataclass(frozen=True)
class Target:
    """One query of one panel."""

    dashboard: str
    panel_id: int
    panel_title: str
    ref_id: str
    expr: str
    instant: bool
    raw: dict[str, Any]

    @property
    def name(self) -> str:
        board = self.dashboard.removesuffix(".json")
        return f"{board}:{self.panel_id}:{self.panel_title}:{self.ref_id}"


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows' nested panels included."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def targets(dashboards: dict[str, dict[str, Any]]) -> list[Target]:
    found = []
    for name, dashboard in dashboards.items():
        for panel in panels(dashboard):
            for t in panel.get("targets", []):
                found.append(
                    Target(
                        name,
                        panel["id"],
                        panel["title"],
                        t["refId"],
                        t["expr"],
                        bool(t.get("instant")),
                        t,
                    )
                )
    return found


def substitute(expr: str, all_value: str = ".*") -> str:
    """The expression as Grafana sends it with every variable set to All."""
    for var, value in BUILTIN_VARIABLES.items():
        expr = expr.replace(var, value)
    return VARIABLE.sub(all_value, expr)


def metric_names(expr: str) -> set[str]:
    """Metric names selected by a PromQL expression (it must parse)."""
    names: set[str] = set()

    def visit(node: Any) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            if node.name:
                names.add(node.name)
            for m in node.matchers.matchers:
                if m.name == "__name__":
                    names.add(m.value)
        return True

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


def recording_rule_names() -> set[str]:
    names = set()
    for path in sorted((REPO / "alerts").glob("*.rules.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            names |= {r["record"] for r in group["rules"] if "record" in r}
    return names


def exporter_metric_names() -> set[str]:
    """Sample names the exporter serves: the golden /metrics files and the process collector."""
    from prometheus_client import ProcessCollector, generate_latest
    from prometheus_client.registry import CollectorRegistry

    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    texts = [generate_latest(registry).decode()]
    texts += [p.read_text() for p in sorted((REPO / "tests" / "golden").glob("*.metrics.txt"))]
    return {
        re.split(r"[{ ]", line, maxsplit=1)[0]
        for text in texts
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


def allowed_metric_names() -> set[str]:
    """What a dashboard may select: the exporter's series, the recording rules, ALERTS (the
    series Prometheus keeps for the shipped alerting rules), and the pending metrics."""
    return exporter_metric_names() | recording_rule_names() | {"ALERTS"} | PENDING_METRICS


def used_metric_names(dashboards: dict[str, dict[str, Any]]) -> set[str]:
    """Every metric a panel of `dashboards` selects."""
    return set().union(*(metric_names(substitute(t.expr)) for t in targets(dashboards)))


# Series without vendor/account labels: build, config reload and shard info, process metrics.
UNSCOPED = re.compile(
    r"^(process_|connector_exporter_build_info$|connector_exporter_config_|ALERTS$"
    r"|connector_exporter_(shard_ordinal|total_shards)$)"
)


def _walk(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{path}[{i}]")


def problems(name: str, dashboard: dict[str, Any], allowed: set[str]) -> list[str]:
    """Everything wrong with one dashboard JSON; empty when it is fine."""
    found: list[str] = []
    if dashboard.get("uid") != UIDS.get(name):
        found.append(f"uid {dashboard.get('uid')!r} is not the fixed {UIDS.get(name)!r}")
    if "__inputs" in dashboard or dashboard.get("id") is not None:
        found.append("exported for sharing (__inputs/id): not provisionable as is")
    variables = {v["name"]: v for v in dashboard.get("templating", {}).get("list", [])}
    ds = variables.get("datasource", {})
    if ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        found.append("no Prometheus datasource variable named datasource")
    for var in ("vendor", "account"):
        v = variables.get(var, {})
        if not (v.get("multi") and v.get("includeAll") and v.get("allValue") == ".*"):
            found.append(f"variable {var} is not multi-value with All = .*")
    for path, node in _walk(dashboard):
        is_ref = path.endswith(".datasource") and isinstance(node, dict)
        if is_ref and node.get("uid") != "${datasource}":
            found.append(f"{path}: hard-coded datasource {node}")
    ids = [p.get("id") for p in panels(dashboard)]
    if len(ids) != len(set(ids)) or not all(isinstance(i, int) and i > 0 for i in ids):
        found.append(f"panel ids are not unique positive integers: {ids}")
    for panel in panels(dashboard):
        if panel.get("type") == "row":
            continue
        where = f"panel {panel.get('id')} {panel.get('title')!r}"
        if panel.get("datasource", {}).get("uid") != "${datasource}":
            found.append(f"{where}: panel datasource is not $datasource")
        if not panel.get("targets"):
            found.append(f"{where}: no query")
        for tr in panel.get("transformations", []):
            opts = tr.get("options", {})
            renamed = set(opts.get("renameByName", {}).values())
            # organize orders and hides fields by their names before renaming
            late = renamed & (set(opts.get("indexByName", {})) | set(opts.get("excludeByName", {})))
            if tr.get("id") == "organize" and late:
                found.append(f"{where}: organize refers to renamed fields {sorted(late)}")
        for t in panel.get("targets", []):
            if t.get("datasource", {}).get("uid") != "${datasource}":
                found.append(f"{where} {t.get('refId')}: target datasource is not $datasource")
            found += _expr_problems(f"{where} {t.get('refId')}", t.get("expr", ""), allowed)
    for v in variables.values():
        query = v.get("query")
        text = query.get("query", "") if isinstance(query, dict) else ""
        if v.get("type") == "query":
            m = re.fullmatch(r"label_values\((.+), *(\w+)\)", text)
            if m is None:
                found.append(f"variable {v['name']}: not label_values(selector, label): {text}")
            else:
                found += _expr_problems(f"variable {v['name']}", m.group(1), allowed, scoped=False)
    return found


def _expr_problems(where: str, expr: str, allowed: set[str], scoped: bool = True) -> list[str]:
    for var, value in BUILTIN_VARIABLES.items():
        expr = expr.replace(var, value)  # durations; label variables stay, quoted
    try:
        names = metric_names(expr)
    except ValueError as err:
        return [f"{where}: does not parse: {err}"]
    found = [f"{where}: unknown metric {n}" for n in sorted(names - allowed)]
    if not names:
        found.append(f"{where}: selects no metric")
    for n in sorted(names if scoped else ()):
        if UNSCOPED.match(n):
            continue
        if not _filters_by_variables(expr, n):
            found.append(f"{where}: {n} is not filtered by $vendor and $account")
    return found


def _filters_by_variables(expr: str, metric: str) -> bool:
    """Every selector of `metric` carries vendor=~"$vendor" and account=~"$account"."""
    ok = True

    def visit(node: Any) -> bool:
        nonlocal ok
        if isinstance(node, promql_parser.VectorSelector) and node.name == metric:
            matchers = {(m.name, str(m.op), m.value) for m in node.matchers.matchers}
            for label in ("vendor", "account"):
                if (label, "MatchOp.Re", f"${label}") not in matchers:
                    ok = False
        return True

    promql_parser.walk(promql_parser.parse(expr), visit)
    return ok

"""Every dashboard query, with its variables set to All, returns data from a real Prometheus that
scrapes a real exporter polling the demo fleet (the vendor simulators) and evaluates the shipped
rules."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.alerts.procs import Processes, wait_for
from tests.grafana.dashboards import (
    committed,
    load_generator,
    metric_names,
    recording_rule_names,
    substitute,
    targets,
)
from tests.grafana.stack import start_exporter, start_prometheus

pytestmark = pytest.mark.e2e

TARGETS = targets(committed())
ACCOUNTS = 5  # the simulator serves one demo account per vendor
# rate() over $__rate_interval needs two scrapes in the window, and the recording rules a few
# evaluations; everything else answers after the first scrape.
DATA_TIMEOUT = 60.0


@dataclass
class Stack:
    prometheus: str
    exporter: str
    procs: Processes

    def query(self, expr: str) -> list[dict[str, Any]]:
        r = httpx.get(f"{self.prometheus}/api/v1/query", params={"query": expr}, timeout=10)
        body = r.json()
        assert r.status_code == 200 and body["status"] == "success", (expr, body)
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def targets(self) -> str:
        """Prometheus's view of its scrape targets, for failure messages."""
        try:
            return httpx.get(f"{self.prometheus}/api/v1/targets", timeout=5).text + "\n"
        except httpx.HTTPError as err:
            return f"targets: {err}\n"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("grafana-e2e")
    procs = Processes(workdir)
    try:
        _, exporter = start_exporter(procs, workdir, poll_interval="1s")
        s = Stack(start_prometheus(procs, workdir, exporter), exporter, procs)
        wait_for(
            "Prometheus to scrape every account",
            lambda: len(s.query("connector_exporter_poll_success == 1")) == ACCOUNTS,
            30,
            on_timeout=lambda: s.targets() + procs.logs(),
        )
        yield s
    finally:
        procs.close()


def test_the_demo_fleet_is_scraped(stack: Stack) -> None:
    assert len(stack.query("connector_info")) > 40
    assert stack.query('connector_health{health="broken"} == 1')


def test_every_metric_the_dashboards_name_is_served(stack: Stack) -> None:
    served = {
        line.split("{")[0].split(" ")[0]
        for line in httpx.get(f"{stack.exporter}/metrics", timeout=10).text.splitlines()
        if line and not line.startswith("#")
    }
    produced = served | recording_rule_names() | {"ALERTS"}
    used = set().union(*(metric_names(substitute(t.expr)) for t in TARGETS))
    assert used - produced == set()


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.name)
def test_every_panel_query_returns_data(stack: Stack, target: Any) -> None:
    expr = substitute(target.expr)
    result = wait_for(
        f"{target.name} to return data: {expr}",
        lambda: stack.query(expr) or None,
        DATA_TIMEOUT,
        interval=0.5,
    )
    assert result
    if not target.instant:
        # A range panel: the instant answer above is its right edge; the range has points too.
        end = time.time()
        r = httpx.get(
            f"{stack.prometheus}/api/v1/query_range",
            params={"query": expr, "start": end - 60, "end": end, "step": "1s"},
            timeout=10,
        )
        assert r.json()["data"]["result"], expr


def test_unhealthy_since_lists_exactly_the_unhealthy_connectors(stack: Stack) -> None:
    generator = load_generator()
    unhealthy = stack.query('connector_health{health!="healthy"} == 1')
    rows = stack.query(substitute(generator.UNHEALTHY_SINCE))
    key = ("vendor", "account", "connector_id")
    assert sorted(tuple(r["metric"][k] for k in key) for r in rows) == sorted(
        tuple(r["metric"][k] for k in key) for r in unhealthy
    )
    now = time.time()
    for r in rows:
        assert {"health", "name", "integration", "group"} <= set(r["metric"])
        assert r["metric"]["health"] != "healthy"
        # milliseconds for Grafana's date units; within the 5m range substituted for $__range
        assert (now - 300) * 1000 <= float(r["value"][1]) <= (now + 1) * 1000


def test_health_timeline_code_matches_the_health_series(stack: Stack) -> None:
    generator = load_generator()
    codes = {
        r["metric"]["connector_id"]: int(float(r["value"][1]))
        for r in stack.query(substitute(generator.HEALTH_AS_CODE))
    }
    current = {
        r["metric"]["connector_id"]: r["metric"]["health"]
        for r in stack.query("connector_health == 1")
    }
    assert len(codes) == len(current) > 40
    assert {cid: generator.HEALTH_CODE[h] for cid, h in current.items()} == codes

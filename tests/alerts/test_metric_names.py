"""Every metric, label and label value the rules read exists in the exporter's real output.

The output comes from the real `connector-exporter run` polling the real simulators of every
vendor the simulator offers, so a renamed metric or label fails here and not at 3 a.m.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import promql_parser
import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter.families import ALL, sample_names
from exporter.simulator import Simulator
from exporter.vendors import REGISTRY
from tests.alerts.procs import RULE_FILES, Processes, load_yaml, wait_for
from tests.alerts.stack import start_exporter, start_simulator

# Series Prometheus itself adds, not the exporter.
PROMETHEUS_SERIES = {"up"}
SCRAPE_LABELS = {"job", "instance", "pod"}  # pod: added by Kubernetes service discovery


@dataclass
class Exposition:
    """What one /metrics scrape declares: families, and per sample name its labels/values."""

    families: set[str] = field(default_factory=set)
    labels: dict[str, dict[str, set[str]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(set))
    )


@dataclass(frozen=True)
class Selector:
    rule: str
    name: str
    matchers: tuple[tuple[str, str, str], ...]


def selectors(expr: str, rule: str) -> list[Selector]:
    found: list[Selector] = []

    def visit(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            matchers = tuple(
                (m.name, str(m.op).rsplit(".", 1)[-1], m.value) for m in node.matchers.matchers
            )
            assert node.name, f"{rule}: selector without a metric name"
            found.append(Selector(rule, node.name, matchers))

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


def rules() -> Iterator[tuple[str, str]]:
    for rule_file in RULE_FILES:
        for group in load_yaml(rule_file)["groups"]:
            for rule in group["rules"]:
                yield rule.get("alert") or rule["record"], rule["expr"]


def recorded_names() -> set[str]:
    return {
        rule["record"]
        for f in RULE_FILES
        for g in load_yaml(f)["groups"]
        for rule in g["rules"]
        if "record" in rule
    }


@pytest.fixture(scope="module")
def exposition(tmp_path_factory: pytest.TempPathFactory) -> Exposition:
    procs = Processes(Path(tmp_path_factory.mktemp("metric-names")))
    try:
        simulator = start_simulator(procs)
        sim = Simulator()  # only for its account list: the real one runs in the subprocess
        sim.port = int(simulator.rsplit(":", 1)[1])
        accounts = sim.accounts()
        exporter = start_exporter(procs, accounts)
        expected = {(a["vendor"], a["name"]) for a in accounts}

        def scrape() -> str | None:
            text = httpx.get(f"http://{exporter}/metrics", timeout=5).text
            ok = re.findall(r'poll_success\{account="([^"]*)",vendor="([^"]*)"\} 1', text)
            return text if {(vendor, account) for account, vendor in ok} >= expected else None

        text = wait_for("a successful poll of every account", scrape, 30, 0.3, procs.logs)
    finally:
        procs.close()
    out = Exposition()
    for family in text_string_to_metric_families(text):
        out.families.add(family.name)
        for sample in family.samples:
            out.families.add(sample.name)
            for label, value in sample.labels.items():
                out.labels[sample.name][label].add(value)
    return out


def test_the_live_output_covers_every_simulated_vendor(exposition: Exposition) -> None:
    vendors = exposition.labels["connector_info"]["vendor"]
    assert {a["vendor"] for a in Simulator().accounts()} == vendors == set(REGISTRY)


def test_every_metric_in_the_rules_is_exported(exposition: Exposition) -> None:
    """Defined in exporter/families.py (some only appear for some vendors or events), or seen
    in the live output (the process collector's), or recorded by the rules themselves."""
    defined = {name for family in ALL for name in sample_names(family)}
    known = defined | exposition.families | recorded_names() | PROMETHEUS_SERIES
    used = {(s.rule, s.name) for rule, expr in rules() for s in selectors(expr, rule)}
    assert len({name for _, name in used}) >= 10, used
    missing = sorted((rule, name) for rule, name in used if name not in known)
    assert not missing, f"metrics used in rules but absent from the exporter's output: {missing}"


def test_every_label_matcher_in_the_rules_matches_the_output(exposition: Exposition) -> None:
    problems = []
    for rule, expr in rules():
        for s in selectors(expr, rule):
            if s.name in PROMETHEUS_SERIES or s.name not in exposition.labels:
                continue  # no samples to compare with (e.g. a vendor-specific family)
            for label, op, value in s.matchers:
                if label == "__name__" or label in SCRAPE_LABELS:
                    continue
                values = exposition.labels[s.name].get(label)
                if values is None:
                    problems.append(f"{rule}: {s.name} has no label {label}")
                elif op == "Equal" and value not in values:
                    problems.append(f"{rule}: {s.name}{{{label}={value!r}}} never exported")
    assert not problems, "\n".join(problems)


def test_every_grouping_label_in_the_rules_is_exported(exposition: Exposition) -> None:
    exported = {label for per in exposition.labels.values() for label in per} | SCRAPE_LABELS
    clause = re.compile(r"\b(?:by|on|without|ignoring|group_left|group_right)\s*\(([^)]*)\)")
    used = {
        (rule, label.strip())
        for rule, expr in rules()
        for labels in clause.findall(expr)
        for label in labels.split(",")
        if label.strip()
    }
    assert used, "no grouping labels found: the pattern is broken"
    missing = sorted((rule, label) for rule, label in used if label not in exported)
    assert not missing, f"labels used in rules that no series carries: {missing}"

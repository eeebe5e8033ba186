"""The reference test: our renderer's bytes equal prometheus-client's for the same families.

The expected side is built here from the model alone, with prometheus-client's own
GaugeMetricFamily and generate_latest, reading only names, help texts, labels and the Connector
attribute of each family from `exporter.families`. The one documented difference: `*_age_seconds`
values are whole seconds printed as integers (`7`), where prometheus-client prints `7.0`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import replace

import pytest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.registry import Collector, CollectorRegistry

from exporter.collector import AGE_FAMILIES, ExporterCollector
from exporter.families import CATALOG, CONNECTOR, HEALTH_STATES, Family, flag, number, stateset
from exporter.model import OTHER, Snapshot
from exporter.render import known_states
from exporter.status import AccountStatus
from tests.conftest import FIXED_NOW, render, status_of
from tests.test_collector import snapshot

NOW = int(FIXED_NOW)


def _connector_family(family: Family, snap: Snapshot) -> GaugeMetricFamily | CounterMetricFamily:
    ids = ["vendor", "account", "connector_id"]
    cls = CounterMetricFamily if family.type == "counter" else GaugeMetricFamily
    out = cls(family.name, family.help, labels=[*ids, *family.labels])
    known = known_states(snap.states)
    for c in snap.connectors:
        base = [snap.vendor, snap.account, c.connector_id]
        lines = family.lines
        if family.age_of:
            ts = getattr(c, family.age_of)
            if ts is not None:
                out.add_metric(base, float(max(0, NOW - math.ceil(ts))))
        elif family.name == "connector_info":
            out.add_metric([*base, c.name, c.integration, c.group, c.end_user], 1.0)
        elif family.name == "connector_issue_info":
            for kind, code in c.issues:
                out.add_metric([*base, kind, code], 1.0)
        elif family.name == "connector_syncs":
            for result, count in c.syncs:
                out.add_metric([*base, result], float(count))
        elif family.name == "connector_health":
            for state in HEALTH_STATES:
                out.add_metric([*base, state], float(state == c.health.value))
        elif isinstance(lines, stateset):
            value = getattr(c, lines.attr)
            if value is not None:
                for state in known[lines.attr]:
                    out.add_metric([*base, state], float(state == value))
        elif isinstance(lines, flag | number):  # a bool is a number: 0.0 or 1.0
            value = getattr(c, lines.attr)
            if value is not None:
                out.add_metric(base, float(value))
        else:
            raise AssertionError(f"{family.name}: no reference for this kind of family")
    return out


def _catalog_family(family: Family, snap: Snapshot) -> GaugeMetricFamily:
    out = GaugeMetricFamily(
        family.name, family.help, labels=["vendor", "account", "connector_id", *family.labels]
    )
    for e in snap.catalog:
        base = [snap.vendor, snap.account, e.connector_id]
        if family.name == "connector_catalog_info":
            out.add_metric([*base, e.name, e.auth_type], 1.0)
        elif e.status is not None:
            for status in (*snap.states.catalog, OTHER):
                out.add_metric([*base, status], float(status == e.status))
    return out


class Reference(Collector):
    """The per-connector and catalog families of `statuses`, the obvious way."""

    def __init__(self, statuses: list[AccountStatus]) -> None:
        self.snapshots = [s.snapshot for s in statuses if s.snapshot is not None]

    def collect(self) -> Iterator[Metric]:
        for family in (*CONNECTOR, *CATALOG):
            cls = CounterMetricFamily if family.type == "counter" else GaugeMetricFamily
            merged = cls(family.name, family.help)
            for snap in self.snapshots:
                build = _connector_family if family in CONNECTOR else _catalog_family
                merged.samples.extend(build(family, snap).samples)
            yield merged


def _integer_ages_as_floats(text: str) -> str:
    names = "|".join(f.name for f in AGE_FAMILIES)
    return re.sub(rf"^((?:{names})\{{.*\}}) (\d+)$", r"\1 \2.0", text, flags=re.M)


@pytest.mark.parametrize("openmetrics", [False, True], ids=["text", "openmetrics"])
def test_renderer_equals_prometheus_client(openmetrics: bool) -> None:
    statuses = [status_of(snapshot(40)), status_of(replace(snapshot(7), account="b"))]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Reference(statuses))
    registry.register(ExporterCollector(lambda: statuses))
    generate = generate_openmetrics if openmetrics else generate_latest
    expected = generate(registry).decode()
    ours = render(statuses, now=FIXED_NOW, openmetrics=openmetrics)
    assert _integer_ages_as_floats(ours) == expected

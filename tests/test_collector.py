"""The renderer: chunking, the plain-text budget, escaping, both exposition formats."""

from __future__ import annotations

import gzip
from typing import Any

from prometheus_client.openmetrics import parser as om_parser
from prometheus_client.parser import text_string_to_metric_families as parse_text
from prometheus_client.registry import CollectorRegistry

from exporter.collector import Exposition
from exporter.deflate import gzip_stream
from exporter.model import CatalogEntry, Connector, Health, Snapshot
from exporter.render import CHUNK_CONNECTORS
from exporter.vendors import fivetran
from tests.conftest import FIXED_NOW, render, status_of

WEIRD = 'quote " backslash \\ newline \n percent %d %s %% unicode ✓ 東京'


def snapshot(n: int) -> Snapshot:
    connectors = tuple(
        Connector(
            connector_id=f"c{i:06d}",
            name=WEIRD if i == 0 else f"name-{i}",
            health=list(Health)[i % len(Health)],
            setup_state=("connected", "broken", "other")[i % 3],
            last_success=FIXED_NOW - 10 * i if i % 4 else None,
            last_failure=FIXED_NOW + 50 if i == 1 else FIXED_NOW - 7,  # one in the future
            warnings=i % 5,
            syncs=(("failure", i), ("success", 2 * i + 1)) if i % 3 == 0 else (),
            last_sync_duration=12.5 if i % 3 == 0 else None,
            issues=(("task", "reconnect"), ("warning", 'odd "code"')) if i % 4 == 1 else (),
            manual_schedule=None if i % 5 == 0 else i % 2 == 0,
            schema_state=("ready", "blocked_on_customer", None)[i % 3],
        )
        for i in range(n)
    )
    catalog = (CatalogEntry("crm+" + WEIRD, WEIRD, "oauth2", "live"),)
    return Snapshot("fivetran", "acc%unt", fivetran.STATES, connectors, catalog, FIXED_NOW)


def test_chunks_and_dropped_plain_text_change_no_byte() -> None:
    snap = snapshot(CHUNK_CONNECTORS + 17)
    kept = status_of(snap)
    dropped = status_of(snap, keep_plain=0)
    assert dropped.published is not None
    rendered = dropped.published.rendered
    assert all(p._plain is None for ps in rendered.pieces.values() for p in ps)
    text = render([kept])
    assert render([dropped]) == text
    # (prometheus-client's parser needs ~10 s for this size; the small tests below use it)
    lines = text.splitlines()
    assert sum(line.startswith("connector_info{") for line in lines) == CHUNK_CONNECTORS + 17
    current = [
        line for line in lines if line.startswith("connector_health{") and line.endswith(" 1.0")
    ]
    assert len(current) == CHUNK_CONNECTORS + 17
    assert len({line.split('connector_id="')[1].split('"')[0] for line in current}) == len(current)


def test_spliced_gzip_equals_plain_body() -> None:
    status = status_of(snapshot(CHUNK_CONNECTORS + 3), keep_plain=1000)
    registry = CollectorRegistry(auto_describe=False)
    exposition = Exposition(lambda: [status], registry, clock=lambda: FIXED_NOW)
    pieces = exposition.pieces()
    assert gzip.decompress(b"".join(gzip_stream(pieces))) == b"".join(
        part for p in pieces for part in p.plain_parts()
    )


def test_label_values_round_trip_and_ages() -> None:
    text = render([status_of(snapshot(3))])
    families = {f.name: f for f in parse_text(text)}
    info = next(
        s for s in families["connector_info"].samples if s.labels["connector_id"] == "c000000"
    )
    assert info.labels["name"] == WEIRD and info.labels["account"] == "acc%unt"
    catalog = families["connector_catalog_info"].samples[0]
    assert catalog.labels["connector_id"] == "crm+" + WEIRD and catalog.labels["name"] == WEIRD
    ages = {
        s.labels["connector_id"]: s.value
        for s in families["connector_last_failure_age_seconds"].samples
    }
    assert ages == {"c000000": 7.0, "c000001": 0.0, "c000002": 7.0}  # the future one clamps to 0
    success = {
        s.labels["connector_id"]: s.value
        for s in families["connector_last_success_age_seconds"].samples
    }
    assert success == {"c000001": 10.0, "c000002": 20.0}  # c000000 has none: no series


def test_openmetrics_output_is_strictly_valid() -> None:
    text = render([status_of(snapshot(5))], openmetrics=True)
    assert text.endswith("# EOF\n") and text.count("# EOF") == 1
    families: Any = om_parser.text_string_to_metric_families(text)  # type: ignore[no-untyped-call]
    names = {f.name for f in families}
    assert {"connector_health", "connector_info", "connector_exporter_polls"} <= names

"""A snapshot's series as pre-compressed exposition pieces, rendered once per poll.

Pure CPU, run off the event loop at poll time. A scrape only splices these pieces together
(`collector.Exposition`) and fills in the `*_age_seconds` templates for its second. The text is
byte-for-byte what prometheus-client renders for the same families (tests/test_render.py).
"""

from __future__ import annotations

import math
from collections.abc import Container, Iterator
from dataclasses import dataclass

from exporter.deflate import Piece
from exporter.families import CATALOG, CONNECTOR, ONE_HOT, Family, Run, esc
from exporter.model import OTHER, Snapshot, StateSets

# Per-connector lines are rendered and compressed this many connectors at a time, so that
# rendering never holds more than a few megabytes of text however large the account.
CHUNK_CONNECTORS = 4096
# Plain text kept per account for uncompressed scrapes (Prometheus always asks for gzip).
# 16 MiB covers ~5,000 connectors; past it, the rare plain scrape inflates the pieces again
# (ISA-L inflates ~1 GB/s) instead of the exporter holding ~3 KB of text per connector, twice
# while a poll publishes: at 64 MiB that was a third of the peak RSS at 50,000 connectors.
KEEP_PLAIN_BYTES = 16 * 1024 * 1024
# StateSet attributes of Connector, and the StateSets field listing their known values.
STATESET_FIELDS = {
    "setup_state": "setup",
    "sync_state": "sync",
    "update_state": "update",
    "schema_state": "schema",
}


def header(family: Family, openmetrics: bool = False) -> Piece:
    """HELP and TYPE as prometheus-client writes them: a counter's text-format family is
    named with `_total`, its OpenMetrics family without."""
    doc = family.help.replace("\\", r"\\").replace("\n", r"\n")
    name = family.name
    if family.type == "counter" and not openmetrics:
        name += "_total"
    return Piece.frozen(f"# HELP {name} {doc}\n# TYPE {name} {family.type}\n".encode())


HEADERS = {f.name: header(f) for f in (*CONNECTOR, *CATALOG)}
OPENMETRICS_HEADERS = {f.name: header(f, openmetrics=True) for f in (*CONNECTOR, *CATALOG)}


@dataclass(frozen=True, eq=False)
class AgeTemplate:
    """The `*_age_seconds` lines of one snapshot, waiting for the scrape time."""

    template: bytes  # one `name{labels} %d\n` per timestamp, `%` in labels doubled
    negated: list[int]  # minus each timestamp in whole seconds, rounded up: never overstates
    latest: int

    def render(self, now: int) -> bytes:
        # Whole seconds: finer precision means nothing for an age, and integer %d is C-fast.
        # `map(now.__add__, …)` makes the ages in C, a third faster than a comprehension.
        if now >= self.latest:
            return self.template % tuple(map(now.__add__, self.negated))
        return self.template % tuple([max(0, now + t) for t in self.negated])


@dataclass(frozen=True, eq=False)
class RenderedSnapshot:
    """A snapshot's exposition lines, per family, ready to splice into any response."""

    pieces: dict[str, list[Piece]]
    ages: dict[str, AgeTemplate]


def _catalog_lines(family: str, snap: Snapshot, account: str, vendor: str) -> Iterator[str]:
    catalog_known = (*snap.states.catalog, OTHER)
    for entry in snap.catalog:
        cid = f'connector_id="{esc(entry.connector_id)}"'
        if family == "connector_catalog_info":
            yield (
                f'connector_catalog_info{{{account},auth_type="{esc(entry.auth_type)}",{cid},'
                f'name="{esc(entry.name)}",{vendor}}} 1.0\n'
            )
        elif entry.status is not None:
            for status in catalog_known:
                yield (
                    f'connector_catalog_status{{{account},{cid},status="{status}",{vendor}}} '
                    f"{ONE_HOT[status == entry.status]}\n"
                )


def _ages(family: Family, run: Run) -> AgeTemplate:
    lines: list[str] = []
    stamps: list[int] = []
    for c, ac in zip(run.connectors, run.prefixes, strict=True):
        ts: float | None = getattr(c, family.age_of)
        if ts is not None:
            lines.append(f"{family.name}{{{ac},{run.vendor}}}".replace("%", "%%") + " %d\n")
            stamps.append(math.ceil(ts))
    return AgeTemplate("".join(lines).encode(), [-t for t in stamps], max(stamps, default=0))


def known_states(states: StateSets) -> dict[str, tuple[str, ...]]:
    """Per StateSet attribute, the values that get a series: the vendor's known ones and `other`."""
    return {attr: (*getattr(states, f), OTHER) for attr, f in STATESET_FIELDS.items()}


def render_snapshot(
    snap: Snapshot,
    keep_plain_bytes: int = KEEP_PLAIN_BYTES,
    families: Container[str] | None = None,
) -> RenderedSnapshot:
    """Render every per-connector and catalog series of `snap`; pure CPU, run at poll time.

    `families`: the names to render (the metric allow/deny lists); None renders all. Each
    chunk is compressed as soon as it is rendered, so a whole family's text never exists at
    once (at 50,000 connectors `connector_health` alone is 40 MB of text).
    """
    vendor = f'vendor="{esc(snap.vendor)}"'
    account = f'account="{esc(snap.account)}"'
    prefixes = [f'{account},connector_id="{esc(c.connector_id)}"' for c in snap.connectors]
    everything = Run(snap.connectors, prefixes, vendor, known_states(snap.states))
    budget = keep_plain_bytes
    pieces: dict[str, list[Piece]] = {}
    ages: dict[str, AgeTemplate] = {}

    def freeze(chunk: bytes, out: list[Piece]) -> None:
        nonlocal budget
        if chunk:
            budget -= len(chunk)
            out.append(Piece.frozen(chunk, keep_plain=budget >= 0))

    for family in (*CONNECTOR, *CATALOG):
        if families is not None and family.name not in families:
            continue
        if family.age_of:
            ages[family.age_of] = _ages(family, everything)
            continue
        out = pieces[family.name] = []
        if family.lines is None:
            freeze("".join(_catalog_lines(family.name, snap, account, vendor)).encode(), out)
            continue
        for i in range(0, len(snap.connectors), CHUNK_CONNECTORS):
            run = Run(
                snap.connectors[i : i + CHUNK_CONNECTORS],
                prefixes[i : i + CHUNK_CONNECTORS],
                vendor,
                everything.states,
            )
            freeze("".join(family.lines(run)).encode(), out)
    return RenderedSnapshot(pieces=pieces, ages=ages)

"""The one place that turns snapshots and account status into exposition text.

Per-connector series are rendered once per successful poll (`render_snapshot`, run off the
event loop) into pre-compressed pieces; a scrape only splices those pieces together, renders
the `*_age_seconds` series (which depend on the scrape time) and the exporter's own small
families. That keeps a scrape's cost nearly independent of the fleet size and free of vendor
I/O. The text is byte-for-byte what prometheus-client renders for the same families: label
names sorted, values escaped the same way, floats in Go's format (see tests/golden/).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import utils as prometheus_utils
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.registry import Collector, CollectorRegistry

from exporter import __version__
from exporter.deflate import Piece, Run, Splice
from exporter.model import OTHER, Connector, Health, Snapshot

if TYPE_CHECKING:
    from exporter.scheduler import AccountStatus

HEALTH_STATES = tuple(h.value for h in Health)


@dataclass(frozen=True)
class Family:
    name: str
    help: str
    # "static": rendered at poll time; "age": rendered at scrape time from `source`
    kind: str = "static"
    source: str = ""


# Output order. Each `*_age_seconds` family follows the timestamp family it is derived from.
FAMILIES: tuple[Family, ...] = (
    Family("connector_info", "Connector identity; always 1."),
    Family(
        "connector_health",
        "Normalised connector health (one series per state, 1 for the current one).",
    ),
    Family(
        "connector_setup_state",
        "Vendor setup, link or credential state (one series per state).",
    ),
    Family("connector_sync_state", "Vendor sync state (one series per state)."),
    Family("connector_update_state", "Vendor data update state (one series per state)."),
    Family("connector_paused", "1 if the connector is paused, inactive or disabled."),
    Family("connector_relink_needed", "1 if the end user must re-authenticate the connector."),
    Family(
        "connector_last_success_timestamp_seconds",
        "Unix time of the connector's last successful sync.",
    ),
    Family(
        "connector_last_success_age_seconds",
        "Seconds since the last successful sync.",
        "age",
        "last_success",
    ),
    Family(
        "connector_last_failure_timestamp_seconds",
        "Unix time of the connector's last failed sync or credential refresh.",
    ),
    Family(
        "connector_last_failure_age_seconds",
        "Seconds since the last failed sync or refresh.",
        "age",
        "last_failure",
    ),
    Family(
        "connector_last_sync_start_timestamp_seconds",
        "Unix time the connector's last sync started.",
    ),
    Family(
        "connector_next_sync_timestamp_seconds",
        "Unix time the connector's next sync is scheduled for.",
    ),
    Family(
        "connector_relink_needed_since_timestamp_seconds",
        "Unix time since which the end user must re-authenticate the connector.",
    ),
    Family(
        "connector_credential_expiry_timestamp_seconds",
        "Unix time the connector's credentials expire.",
    ),
    Family("connector_sync_frequency_seconds", "Configured interval between syncs."),
    Family("connector_warnings", "Number of warnings the vendor reports on the connector."),
    Family("connector_tasks", "Number of tasks the vendor asks a user to act on."),
    Family(
        "connector_catalog_status",
        "Catalog release stage of a connector type (one series per stage).",
    ),
    Family("connector_catalog_info", "Catalog identity of a connector type; always 1."),
)

# (family, StateSets field, Connector attribute)
_STATESETS = (
    ("connector_setup_state", "setup", "setup_state"),
    ("connector_sync_state", "sync", "sync_state"),
    ("connector_update_state", "update", "update_state"),
)
_STATESET_ATTRS = {family: attr for family, _, attr in _STATESETS}
# family → Connector attribute, for the plain per-connector numbers
_NUMBER_ATTRS = {
    "connector_last_success_timestamp_seconds": "last_success",
    "connector_last_failure_timestamp_seconds": "last_failure",
    "connector_last_sync_start_timestamp_seconds": "last_sync_start",
    "connector_next_sync_timestamp_seconds": "next_sync",
    "connector_relink_needed_since_timestamp_seconds": "relink_needed_since",
    "connector_credential_expiry_timestamp_seconds": "credential_expiry",
    "connector_sync_frequency_seconds": "sync_frequency",
    "connector_warnings": "warnings",
    "connector_tasks": "tasks",
}
_ONE_HOT = {True: "1.0", False: "0.0"}


def _go_float(value: float) -> str:
    """Floats as prometheus-client (and Go) print them, so output matches theirs exactly."""
    text: str = prometheus_utils.floatToGoString(value)  # type: ignore[no-untyped-call]
    return text


def _esc(value: str) -> str:
    """Label value escaping of the exposition formats (backslash, newline, double quote)."""
    if "\\" in value or "\n" in value or '"' in value:
        return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
    return value


def _header(family: Family) -> Piece:
    doc = family.help.replace("\\", r"\\").replace("\n", r"\n")
    return Piece.frozen(f"# HELP {family.name} {doc}\n# TYPE {family.name} gauge\n".encode())


_HEADERS = {f.name: _header(f) for f in FAMILIES}


# Per-connector lines are rendered and compressed this many connectors at a time, so that
# rendering never holds more than a few megabytes of text however large the account.
CHUNK_CONNECTORS = 4096
# Plain text kept per account for uncompressed scrapes (Prometheus always asks for gzip).
# 64 MiB covers ~20,000 connectors; past it, the rare plain scrape inflates the pieces again
# instead of the exporter holding ~3 KB of text per connector forever.
KEEP_PLAIN_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, eq=False)
class AgeTemplate:
    """The `*_age_seconds` lines of one snapshot, waiting for the scrape time."""

    template: bytes  # one `name{labels} %d\n` per timestamp, `%` in labels doubled
    timestamps: list[int]  # whole seconds, rounded up: an age never overstates
    latest: int

    def render(self, now: int) -> bytes:
        # Whole seconds: finer precision means nothing for an age, and integer %d is C-fast.
        if now >= self.latest:
            return self.template % tuple([now - t for t in self.timestamps])
        return self.template % tuple([max(0, now - t) for t in self.timestamps])


@dataclass(frozen=True, eq=False)
class RenderedSnapshot:
    """A snapshot's exposition lines, per family, ready to splice into any response."""

    pieces: dict[str, list[Piece]]
    ages: dict[str, AgeTemplate]


def _connector_lines(
    family: str, chunk: Sequence[Connector], prefixes: Sequence[str], vendor: str, known: Any
) -> Iterator[str]:
    """One family's lines for a run of connectors (`prefixes`: their account+id labels)."""
    if family == "connector_info":
        for c, ac in zip(chunk, prefixes, strict=True):
            yield (
                f'connector_info{{{ac},end_user="{_esc(c.end_user)}",group="{_esc(c.group)}",'
                f'integration="{_esc(c.integration)}",name="{_esc(c.name)}",{vendor}}} 1.0\n'
            )
    elif family == "connector_health":
        for c, ac in zip(chunk, prefixes, strict=True):
            current = c.health.value
            for state in HEALTH_STATES:
                value = _ONE_HOT[state == current]
                yield f'connector_health{{{ac},health="{state}",{vendor}}} {value}\n'
    elif family in _STATESET_ATTRS:
        attr = _STATESET_ATTRS[family]
        states = known[attr]
        for c, ac in zip(chunk, prefixes, strict=True):
            value = getattr(c, attr)
            if value is not None:
                for state in states:
                    yield f'{family}{{{ac},state="{state}",{vendor}}} {_ONE_HOT[state == value]}\n'
    elif family in ("connector_paused", "connector_relink_needed"):
        attr = "paused" if family == "connector_paused" else "relink_needed"
        for c, ac in zip(chunk, prefixes, strict=True):
            yield f"{family}{{{ac},{vendor}}} {_ONE_HOT[getattr(c, attr)]}\n"
    else:
        attr = _NUMBER_ATTRS[family]
        for c, ac in zip(chunk, prefixes, strict=True):
            number = getattr(c, attr)
            if number is not None:
                yield f"{family}{{{ac},{vendor}}} {_go_float(number)}\n"


def _catalog_lines(family: str, snap: Snapshot, account: str, vendor: str) -> Iterator[str]:
    catalog_known = (*snap.states.catalog, OTHER)
    for entry in snap.catalog:
        cid = f'connector_id="{_esc(entry.connector_id)}"'
        if family == "connector_catalog_info":
            yield (
                f'connector_catalog_info{{{account},auth_type="{_esc(entry.auth_type)}",{cid},'
                f'name="{_esc(entry.name)}",{vendor}}} 1.0\n'
            )
        elif entry.status is not None:
            for status in catalog_known:
                yield (
                    f'connector_catalog_status{{{account},{cid},status="{status}",{vendor}}} '
                    f"{_ONE_HOT[status == entry.status]}\n"
                )


def _ages(family: Family, snap: Snapshot, prefixes: Sequence[str], vendor: str) -> AgeTemplate:
    lines: list[str] = []
    stamps: list[int] = []
    for c, ac in zip(snap.connectors, prefixes, strict=True):
        ts: float | None = getattr(c, family.source)
        if ts is not None:
            lines.append(f"{family.name}{{{ac},{vendor}}}".replace("%", "%%") + " %d\n")
            stamps.append(math.ceil(ts))
    return AgeTemplate("".join(lines).encode(), stamps, max(stamps, default=0))


def render_snapshot(snap: Snapshot, keep_plain_bytes: int = KEEP_PLAIN_BYTES) -> RenderedSnapshot:
    """Render every per-connector and catalog series of `snap`; pure CPU, run at poll time."""
    vendor = f'vendor="{_esc(snap.vendor)}"'
    account = f'account="{_esc(snap.account)}"'
    prefixes = [f'{account},connector_id="{_esc(c.connector_id)}"' for c in snap.connectors]
    known = {attr: (*getattr(snap.states, field), OTHER) for _, field, attr in _STATESETS}
    budget = keep_plain_bytes
    pieces: dict[str, list[Piece]] = {}
    ages: dict[str, AgeTemplate] = {}
    for family in FAMILIES:
        if family.kind == "age":
            ages[family.source] = _ages(family, snap, prefixes, vendor)
            continue
        chunks: list[bytes] = []
        if family.name.startswith("connector_catalog_"):
            chunks.append("".join(_catalog_lines(family.name, snap, account, vendor)).encode())
        else:
            for i in range(0, len(snap.connectors), CHUNK_CONNECTORS):
                run = snap.connectors[i : i + CHUNK_CONNECTORS]
                lines = _connector_lines(
                    family.name, run, prefixes[i : i + CHUNK_CONNECTORS], vendor, known
                )
                chunks.append("".join(lines).encode())
        out = pieces[family.name] = []
        for chunk in chunks:
            if chunk:
                budget -= len(chunk)
                out.append(Piece.frozen(chunk, keep_plain=budget >= 0))
    return RenderedSnapshot(pieces=pieces, ages=ages)


def exporter_families(
    statuses: Sequence[AccountStatus], reload_ok: bool, reload_ts: float | None
) -> Iterator[Metric]:
    """The exporter's own health: poll outcomes, API requests, config reloads, build."""
    labels = ["vendor", "account"]
    poll_success = GaugeMetricFamily(
        "connector_exporter_poll_success",
        "1 if the last poll of this account succeeded.",
        labels=labels,
    )
    last_success = GaugeMetricFamily(
        "connector_exporter_last_poll_success_timestamp_seconds",
        "Unix time the last successful poll of this account ended.",
        labels=labels,
    )
    duration = GaugeMetricFamily(
        "connector_exporter_poll_duration_seconds",
        "Duration of the last poll of this account, all pages included.",
        labels=labels,
    )
    polls = CounterMetricFamily("connector_exporter_polls", "Polls of this account.", labels=labels)
    failures = CounterMetricFamily(
        "connector_exporter_poll_failures", "Failed polls of this account.", labels=labels
    )
    requests = CounterMetricFamily(
        "connector_exporter_api_requests",
        "Vendor API requests by HTTP status code (or timeout / error).",
        labels=[*labels, "code"],
    )
    connectors = GaugeMetricFamily(
        "connector_exporter_connectors",
        "Connectors in the last good snapshot of this account.",
        labels=labels,
    )
    interval = GaugeMetricFamily(
        "connector_exporter_poll_interval_seconds",
        "Configured poll interval of this account.",
        labels=labels,
    )
    for s in statuses:
        ids = [s.vendor, s.account]
        if s.last_ok is not None:
            poll_success.add_metric(ids, 1.0 if s.last_ok else 0.0)
        if s.last_success_end is not None:
            last_success.add_metric(ids, s.last_success_end)
        if s.last_duration is not None:
            duration.add_metric(ids, s.last_duration)
        polls.add_metric(ids, float(s.polls_total))
        failures.add_metric(ids, float(s.failures_total))
        for code in sorted(s.requests):
            requests.add_metric([*ids, code], float(s.requests[code]))
        if s.snapshot is not None:
            connectors.add_metric(ids, float(len(s.snapshot.connectors)))
        interval.add_metric(ids, s.interval)
    yield from (poll_success, last_success, duration, polls, failures, requests)
    yield from (connectors, interval)

    reload_success = GaugeMetricFamily(
        "connector_exporter_config_last_reload_successful",
        "1 if the last configuration load succeeded.",
    )
    reload_success.add_metric([], 1.0 if reload_ok else 0.0)
    yield reload_success
    reload_time = GaugeMetricFamily(
        "connector_exporter_config_last_reload_success_timestamp_seconds",
        "Unix time of the last successful configuration load.",
    )
    if reload_ts is not None:
        reload_time.add_metric([], reload_ts)
    yield reload_time
    build = GaugeMetricFamily(
        "connector_exporter_build_info", "Build of the exporter; always 1.", labels=["version"]
    )
    build.add_metric([__version__], 1.0)
    yield build


class ExporterCollector(Collector):
    """The exporter's own families, from the runners' status at scrape time."""

    def __init__(self, statuses: Callable[[], Iterable[AccountStatus]]) -> None:
        self._statuses = statuses
        self.reload_ok = True
        self.reload_ts: float | None = None

    def collect(self) -> Iterator[Metric]:
        statuses = sorted(self._statuses(), key=lambda s: (s.vendor, s.account))
        yield from exporter_families(statuses, self.reload_ok, self.reload_ts)


_EOF = Piece.frozen(b"# EOF\n")


class Exposition:
    """Assembles /metrics from the rendered snapshots plus the small scrape-time families.

    Safe to call from worker threads: scrapes are assembled off the event loop.
    """

    def __init__(
        self,
        statuses: Callable[[], Iterable[AccountStatus]],
        registry: CollectorRegistry,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._statuses = statuses
        self._registry = registry  # the exporter's own and the process collectors
        self._clock = clock
        # Ages for one (second, set of snapshots): concurrent scrapers (HA Prometheus pairs)
        # share the work instead of each doing it.
        self._lock = threading.Lock()
        self._ages_key: tuple[int, tuple[int, ...]] | None = None
        self._ages: dict[str, list[Piece]] = {}
        # The static runs between the scrape-time pieces, for one set of snapshots.
        self._runs_key: tuple[int, ...] | None = None
        self._runs: list[Run] = []

    def _age_pieces(self, rendered: Sequence[RenderedSnapshot], now: int) -> dict[str, list[Piece]]:
        key = (now, tuple(id(r) for r in rendered))
        with self._lock:
            if key != self._ages_key:
                # frozen: compressed here, once, under the lock
                self._ages = {
                    f.source: [Piece.frozen(r.ages[f.source].render(now)) for r in rendered]
                    for f in FAMILIES
                    if f.kind == "age"
                }
                self._ages_key = key
            return self._ages

    def _static_runs(self, rendered: Sequence[RenderedSnapshot]) -> list[Run]:
        """Everything between (and before) the age families, spliced once per set of polls."""
        key = tuple(id(r) for r in rendered)
        with self._lock:
            if key != self._runs_key:
                runs: list[Run] = []
                current: list[Piece] = []
                for family in FAMILIES:
                    current.append(_HEADERS[family.name])
                    if family.kind == "age":
                        runs.append(Run(current))
                        current = []
                    else:
                        for r in rendered:
                            current.extend(r.pieces[family.name])
                runs.append(Run(current))
                self._runs, self._runs_key = runs, key
            return self._runs

    def pieces(self, openmetrics: bool = False) -> list[Splice]:
        """The whole response body, in order: static runs, ages, the exporter's own families."""
        statuses = sorted(self._statuses(), key=lambda s: (s.vendor, s.account))
        rendered = [r for r in (s.rendered for s in statuses) if r is not None]
        runs = self._static_runs(rendered)
        ages = self._age_pieces(rendered, int(self._clock()))
        out: list[Splice] = [runs[0]]
        age_families = [f for f in FAMILIES if f.kind == "age"]
        for family, run in zip(age_families, runs[1:], strict=True):
            out.extend(ages[family.source])
            out.append(run)
        if openmetrics:
            text: bytes = generate_openmetrics(self._registry)  # type: ignore[no-untyped-call]
            out += [Piece(text.removesuffix(b"# EOF\n")), _EOF]
        else:
            out.append(Piece(generate_latest(self._registry)))
        return out

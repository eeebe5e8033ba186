"""The one place that turns snapshots and account status into exposition text.

Per-connector series are rendered once per successful poll (`render_snapshot`, run off the
event loop) into pre-compressed pieces; a scrape only splices those pieces together, renders
the `*_age_seconds` series (which depend on the scrape time) and the exporter's own small
families. That keeps a scrape's cost nearly independent of the fleet size and free of vendor
I/O. The text is byte-for-byte what prometheus-client renders for the same families: label
names sorted, values escaped the same way, floats in Go's format (see tests/golden/).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client import utils as prometheus_utils
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.registry import Collector, CollectorRegistry

from exporter import __version__
from exporter.deflate import Piece
from exporter.model import OTHER, Health, Snapshot

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

# (family, Connector attribute) of the plain per-connector numbers
_TIMESTAMPS = (
    ("connector_last_success_timestamp_seconds", "last_success"),
    ("connector_last_failure_timestamp_seconds", "last_failure"),
    ("connector_last_sync_start_timestamp_seconds", "last_sync_start"),
    ("connector_next_sync_timestamp_seconds", "next_sync"),
    ("connector_relink_needed_since_timestamp_seconds", "relink_needed_since"),
    ("connector_credential_expiry_timestamp_seconds", "credential_expiry"),
    ("connector_sync_frequency_seconds", "sync_frequency"),
    ("connector_warnings", "warnings"),
    ("connector_tasks", "tasks"),
)
# (family, StateSets field, Connector attribute)
_STATESETS = (
    ("connector_setup_state", "setup", "setup_state"),
    ("connector_sync_state", "sync", "sync_state"),
    ("connector_update_state", "update", "update_state"),
)
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
    return Piece(f"# HELP {family.name} {doc}\n# TYPE {family.name} gauge\n".encode()).prepare()


_HEADERS = {f.name: _header(f) for f in FAMILIES}


@dataclass(frozen=True, eq=False)
class AgeTemplate:
    """The `*_age_seconds` lines of one snapshot, waiting for the scrape time."""

    template: bytes  # one `name{labels} %d\n` per timestamp, `%` in labels doubled
    timestamps: tuple[float, ...]

    def render(self, now: float) -> bytes:
        # Whole seconds: finer precision means nothing for an age, and %d is C-fast.
        return self.template % tuple(now - t if t < now else 0 for t in self.timestamps)


@dataclass(frozen=True, eq=False)
class RenderedSnapshot:
    """A snapshot's exposition lines, per family, ready to splice into any response."""

    pieces: dict[str, Piece]
    ages: dict[str, AgeTemplate]


def render_snapshot(snap: Snapshot) -> RenderedSnapshot:
    """Render every per-connector and catalog series of `snap`; pure CPU, run at poll time."""
    vendor = f'vendor="{_esc(snap.vendor)}"'
    account = f'account="{_esc(snap.account)}"'
    out: dict[str, list[str]] = {f.name: [] for f in FAMILIES if f.kind == "static"}
    age_lines: dict[str, list[str]] = {f.source: [] for f in FAMILIES if f.kind == "age"}
    age_times: dict[str, list[float]] = {f.source: [] for f in FAMILIES if f.kind == "age"}
    known = {attr: (*getattr(snap.states, field), OTHER) for _, field, attr in _STATESETS}
    info, health = out["connector_info"], out["connector_health"]
    paused, relink = out["connector_paused"], out["connector_relink_needed"]

    for c in snap.connectors:
        ac = f'{account},connector_id="{_esc(c.connector_id)}"'
        ids = f"{ac},{vendor}"
        info.append(
            f'connector_info{{{ac},end_user="{_esc(c.end_user)}",group="{_esc(c.group)}",'
            f'integration="{_esc(c.integration)}",name="{_esc(c.name)}",{vendor}}} 1.0\n'
        )
        current = c.health.value
        for state in HEALTH_STATES:
            health.append(
                f'connector_health{{{ac},health="{state}",{vendor}}} {_ONE_HOT[state == current]}\n'
            )
        for name, _, attr in _STATESETS:
            value: str | None = getattr(c, attr)
            if value is not None:
                lines = out[name]
                for state in known[attr]:
                    lines.append(
                        f'{name}{{{ac},state="{state}",{vendor}}} {_ONE_HOT[state == value]}\n'
                    )
        paused.append(f"connector_paused{{{ids}}} {_ONE_HOT[c.paused]}\n")
        relink.append(f"connector_relink_needed{{{ids}}} {_ONE_HOT[c.relink_needed]}\n")
        for name, attr in _TIMESTAMPS:
            number = getattr(c, attr)
            if number is not None:
                out[name].append(f"{name}{{{ids}}} {_go_float(number)}\n")
                if attr in age_lines:
                    prefix = f"{name.replace('_timestamp_', '_age_')}{{{ids}}}"
                    age_lines[attr].append(prefix.replace("%", "%%") + " %d\n")
                    age_times[attr].append(float(number))

    catalog_known = (*snap.states.catalog, OTHER)
    for entry in snap.catalog:
        cid = f'connector_id="{_esc(entry.connector_id)}"'
        out["connector_catalog_info"].append(
            f'connector_catalog_info{{{account},auth_type="{_esc(entry.auth_type)}",{cid},'
            f'name="{_esc(entry.name)}",{vendor}}} 1.0\n'
        )
        if entry.status is not None:
            for status in catalog_known:
                out["connector_catalog_status"].append(
                    f'connector_catalog_status{{{account},{cid},status="{status}",{vendor}}} '
                    f"{_ONE_HOT[status == entry.status]}\n"
                )

    return RenderedSnapshot(
        pieces={name: Piece("".join(lines).encode()).prepare() for name, lines in out.items()},
        ages={
            attr: AgeTemplate("".join(age_lines[attr]).encode(), tuple(age_times[attr]))
            for attr in age_lines
        },
    )


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


_EOF = Piece(b"# EOF\n").prepare()


class Exposition:
    """Assembles /metrics from the rendered snapshots plus the small scrape-time families."""

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
        # share the work.
        self._ages_key: tuple[int, tuple[int, ...]] | None = None
        self._ages: dict[str, list[Piece]] = {}

    def _age_pieces(self, rendered: Sequence[RenderedSnapshot], now: int) -> dict[str, list[Piece]]:
        key = (now, tuple(id(r) for r in rendered))
        if key != self._ages_key:
            self._ages = {
                f.source: [Piece(r.ages[f.source].render(now)) for r in rendered]
                for f in FAMILIES
                if f.kind == "age"
            }
            self._ages_key = key
        return self._ages

    def pieces(self, openmetrics: bool = False) -> list[Piece]:
        """The whole response body, in order, as pieces."""
        statuses = sorted(self._statuses(), key=lambda s: (s.vendor, s.account))
        rendered = [s.rendered for s in statuses if s.rendered is not None]
        ages = self._age_pieces(rendered, int(self._clock()))
        out: list[Piece] = []
        for family in FAMILIES:
            out.append(_HEADERS[family.name])
            if family.kind == "age":
                out.extend(ages[family.source])
            else:
                out.extend(r.pieces[family.name] for r in rendered)
        if openmetrics:
            text: bytes = generate_openmetrics(self._registry)  # type: ignore[no-untyped-call]
            own = text.removesuffix(b"# EOF\n")
            out += [Piece(own), _EOF]
        else:
            out.append(Piece(generate_latest(self._registry)))
        return out

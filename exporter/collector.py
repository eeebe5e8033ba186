"""The one place that turns snapshots and account status into Prometheus metric families."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from exporter import __version__
from exporter.model import OTHER, Connector, Health, Snapshot
from exporter.scheduler import AccountStatus

ID_LABELS = ("vendor", "account", "connector_id")
ACCOUNT_LABELS = ("vendor", "account")
HEALTH_STATES = tuple(h.value for h in Health)


@dataclass(frozen=True)
class _Timestamp:
    name: str
    doc: str
    attr: str
    age: tuple[str, str] | None = None


# kube-state-metrics style: every timestamp is `_timestamp_seconds`; the two that alerts need
# relative to now also get an `_age_seconds` twin computed at scrape time.
TIMESTAMPS = (
    _Timestamp(
        "connector_last_success_timestamp_seconds",
        "Unix time of the connector's last successful sync.",
        "last_success",
        ("connector_last_success_age_seconds", "Seconds since the last successful sync."),
    ),
    _Timestamp(
        "connector_last_failure_timestamp_seconds",
        "Unix time of the connector's last failed sync or credential refresh.",
        "last_failure",
        ("connector_last_failure_age_seconds", "Seconds since the last failed sync or refresh."),
    ),
    _Timestamp(
        "connector_last_sync_start_timestamp_seconds",
        "Unix time the connector's last sync started.",
        "last_sync_start",
    ),
    _Timestamp(
        "connector_next_sync_timestamp_seconds",
        "Unix time the connector's next sync is scheduled for.",
        "next_sync",
    ),
    _Timestamp(
        "connector_relink_needed_since_timestamp_seconds",
        "Unix time since which the end user must re-authenticate the connector.",
        "relink_needed_since",
    ),
    _Timestamp(
        "connector_credential_expiry_timestamp_seconds",
        "Unix time the connector's credentials expire.",
        "credential_expiry",
    ),
)

NUMBERS = (
    ("connector_sync_frequency_seconds", "Configured interval between syncs.", "sync_frequency"),
    ("connector_warnings", "Number of warnings the vendor reports on the connector.", "warnings"),
    ("connector_tasks", "Number of tasks the vendor asks a user to act on.", "tasks"),
)

STATESETS = (
    (
        "connector_setup_state",
        "Vendor setup, link or credential state (one series per state).",
        "setup",
        "setup_state",
    ),
    ("connector_sync_state", "Vendor sync state (one series per state).", "sync", "sync_state"),
    (
        "connector_update_state",
        "Vendor data update state (one series per state).",
        "update",
        "update_state",
    ),
)


def _stateset(
    family: GaugeMetricFamily, ids: list[str], known: Sequence[str], current: str
) -> None:
    for state in known:
        family.add_metric([*ids, state], 1.0 if state == current else 0.0)


def connector_families(snapshots: Sequence[Snapshot], now: float) -> Iterator[Metric]:
    """Per-connector and catalog families of every snapshot, in a stable order."""
    info = GaugeMetricFamily(
        "connector_info",
        "Connector identity; always 1.",
        labels=[*ID_LABELS, "name", "integration", "group", "end_user"],
    )
    health = GaugeMetricFamily(
        "connector_health",
        "Normalised connector health (one series per state, 1 for the current one).",
        labels=[*ID_LABELS, "health"],
    )
    states = {
        attr: GaugeMetricFamily(name, doc, labels=[*ID_LABELS, "state"])
        for name, doc, _, attr in STATESETS
    }
    paused = GaugeMetricFamily(
        "connector_paused", "1 if the connector is paused, inactive or disabled.", labels=ID_LABELS
    )
    relink = GaugeMetricFamily(
        "connector_relink_needed",
        "1 if the end user must re-authenticate the connector.",
        labels=ID_LABELS,
    )
    stamps = {t.attr: GaugeMetricFamily(t.name, t.doc, labels=ID_LABELS) for t in TIMESTAMPS}
    ages = {
        t.attr: GaugeMetricFamily(t.age[0], t.age[1], labels=ID_LABELS) for t in TIMESTAMPS if t.age
    }
    numbers = {attr: GaugeMetricFamily(name, doc, labels=ID_LABELS) for name, doc, attr in NUMBERS}
    catalog_status = GaugeMetricFamily(
        "connector_catalog_status",
        "Catalog release stage of a connector type (one series per stage).",
        labels=[*ID_LABELS, "status"],
    )
    catalog_info = GaugeMetricFamily(
        "connector_catalog_info",
        "Catalog identity of a connector type; always 1.",
        labels=[*ID_LABELS, "name", "auth_type"],
    )

    for snap in snapshots:
        known = {attr: (*getattr(snap.states, field), OTHER) for _, _, field, attr in STATESETS}
        for c in snap.connectors:
            ids = [snap.vendor, snap.account, c.connector_id]
            info.add_metric([*ids, c.name, c.integration, c.group, c.end_user], 1.0)
            _stateset(health, ids, HEALTH_STATES, c.health.value)
            for _, _, _, attr in STATESETS:
                value: str | None = getattr(c, attr)
                if value is not None:
                    _stateset(states[attr], ids, known[attr], value)
            paused.add_metric(ids, 1.0 if c.paused else 0.0)
            relink.add_metric(ids, 1.0 if c.relink_needed else 0.0)
            _add_times(c, ids, now, stamps, ages)
            for _, _, attr in NUMBERS:
                number = getattr(c, attr)
                if number is not None:
                    numbers[attr].add_metric(ids, float(number))
        catalog_known = (*snap.states.catalog, OTHER)
        for entry in snap.catalog:
            ids = [snap.vendor, snap.account, entry.connector_id]
            catalog_info.add_metric([*ids, entry.name, entry.auth_type], 1.0)
            if entry.status is not None:
                _stateset(catalog_status, ids, catalog_known, entry.status)

    yield info
    yield health
    yield from states.values()
    yield paused
    yield relink
    for t in TIMESTAMPS:
        yield stamps[t.attr]
        if t.attr in ages:
            yield ages[t.attr]
    yield from numbers.values()
    yield catalog_status
    yield catalog_info


def _add_times(
    c: Connector,
    ids: list[str],
    now: float,
    stamps: dict[str, GaugeMetricFamily],
    ages: dict[str, GaugeMetricFamily],
) -> None:
    for t in TIMESTAMPS:
        ts: float | None = getattr(c, t.attr)
        if ts is None:
            continue
        stamps[t.attr].add_metric(ids, ts)
        if t.attr in ages:
            ages[t.attr].add_metric(ids, max(0.0, now - ts))


def exporter_families(
    statuses: Sequence[AccountStatus], reload_ok: bool, reload_ts: float | None
) -> Iterator[Metric]:
    """The exporter's own health: poll outcomes, API requests, config reloads, build."""
    poll_success = GaugeMetricFamily(
        "connector_exporter_poll_success",
        "1 if the last poll of this account succeeded.",
        labels=ACCOUNT_LABELS,
    )
    last_success = GaugeMetricFamily(
        "connector_exporter_last_poll_success_timestamp_seconds",
        "Unix time the last successful poll of this account ended.",
        labels=ACCOUNT_LABELS,
    )
    duration = GaugeMetricFamily(
        "connector_exporter_poll_duration_seconds",
        "Duration of the last poll of this account, all pages included.",
        labels=ACCOUNT_LABELS,
    )
    polls = CounterMetricFamily(
        "connector_exporter_polls", "Polls of this account.", labels=ACCOUNT_LABELS
    )
    failures = CounterMetricFamily(
        "connector_exporter_poll_failures", "Failed polls of this account.", labels=ACCOUNT_LABELS
    )
    requests = CounterMetricFamily(
        "connector_exporter_api_requests",
        "Vendor API requests by HTTP status code (or timeout / error).",
        labels=[*ACCOUNT_LABELS, "code"],
    )
    connectors = GaugeMetricFamily(
        "connector_exporter_connectors",
        "Connectors in the last good snapshot of this account.",
        labels=ACCOUNT_LABELS,
    )
    interval = GaugeMetricFamily(
        "connector_exporter_poll_interval_seconds",
        "Configured poll interval of this account.",
        labels=ACCOUNT_LABELS,
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
    """Yields fresh families from the runners' current status on every scrape; no vendor I/O."""

    def __init__(
        self,
        statuses: Callable[[], Iterable[AccountStatus]],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._statuses = statuses
        self._clock = clock
        self.reload_ok = True
        self.reload_ts: float | None = None

    def collect(self) -> Iterator[Metric]:
        statuses = sorted(self._statuses(), key=lambda s: (s.vendor, s.account))
        snapshots = [s.snapshot for s in statuses if s.snapshot is not None]
        yield from connector_families(snapshots, self._clock())
        yield from exporter_families(statuses, self.reload_ok, self.reload_ts)

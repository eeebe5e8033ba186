"""The one place that turns the accounts' published state into a /metrics body.

Per-connector series were rendered at poll time (`render.py`) into pre-compressed pieces; a
scrape only splices those pieces together, renders the `*_age_seconds` series (which depend on
the scrape time) and the exporter's own small families. That keeps a scrape's cost nearly
independent of the fleet size and free of vendor I/O.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.registry import Collector, CollectorRegistry

from exporter import __version__
from exporter.deflate import Piece, Splice, gzip_length, gzip_stream
from exporter.deflate import Run as PieceRun
from exporter.errors import FAILURE_REASONS
from exporter.families import ACCOUNT_LABELS, BY_NAME, CATALOG, CONNECTOR, PROCESS_WIDE
from exporter.render import HEADERS, OPENMETRICS_HEADERS, RenderedSnapshot
from exporter.status import AccountStatus

AGE_FAMILIES = tuple(f for f in CONNECTOR if f.age_of)


def _family(name: str) -> GaugeMetricFamily | CounterMetricFamily:
    """An empty prometheus-client family for one of the exporter's own `families.EXPORTER`."""
    family = BY_NAME[name]
    labels = [*family.labels] if name in PROCESS_WIDE else [*ACCOUNT_LABELS, *family.labels]
    cls = CounterMetricFamily if family.type == "counter" else GaugeMetricFamily
    return cls(family.name, family.help, labels=labels)


def exporter_families(
    statuses: Sequence[AccountStatus],
    reload_ok: bool,
    reload_ts: float | None,
    shard: tuple[int, int] = (0, 1),
) -> Iterator[Metric]:
    """The exporter's own health: poll outcomes, API requests, config reloads, build."""
    poll_success = _family("connector_exporter_poll_success")
    last_success = _family("connector_exporter_last_poll_success_timestamp_seconds")
    duration = _family("connector_exporter_poll_duration_seconds")
    polls = _family("connector_exporter_polls")
    failures = _family("connector_exporter_poll_failures")
    failure_reason = _family("connector_exporter_last_poll_failure_reason")
    requests = _family("connector_exporter_api_requests")
    connectors = _family("connector_exporter_connectors")
    interval = _family("connector_exporter_poll_interval_seconds")
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
        # "none" after a success; no series before the first poll ends
        current = "none" if s.last_ok else s.last_failure_reason
        if current:
            for reason in FAILURE_REASONS:
                failure_reason.add_metric([*ids, reason], 1.0 if reason == current else 0.0)
        for code in sorted(s.requests):
            requests.add_metric([*ids, code], float(s.requests[code]))
        snapshot = s.snapshot
        if snapshot is not None:
            connectors.add_metric(ids, float(len(snapshot.connectors)))
        interval.add_metric(ids, s.interval)
    yield from (poll_success, last_success, duration, polls, failures, failure_reason, requests)
    yield from (connectors, interval)

    reload_success = _family("connector_exporter_config_last_reload_successful")
    reload_success.add_metric([], 1.0 if reload_ok else 0.0)
    yield reload_success
    reload_time = _family("connector_exporter_config_last_reload_success_timestamp_seconds")
    if reload_ts is not None:
        reload_time.add_metric([], reload_ts)
    yield reload_time
    build = _family("connector_exporter_build_info")
    build.add_metric([__version__], 1.0)
    yield build
    ordinal, total = (
        _family("connector_exporter_shard_ordinal"),
        _family("connector_exporter_total_shards"),
    )
    ordinal.add_metric([], float(shard[0]))
    total.add_metric([], float(shard[1]))
    yield from (ordinal, total)


class ExporterCollector(Collector):
    """The exporter's own families, from the accounts' status at scrape time."""

    def __init__(
        self, statuses: Callable[[], Iterable[AccountStatus]], shard: tuple[int, int] = (0, 1)
    ) -> None:
        self._statuses = statuses
        self.shard = shard  # (index, count) of --shard; (0, 1) when unsharded
        self.reload_ok = True
        self.reload_ts: float | None = None

    def collect(self) -> Iterator[Metric]:
        statuses = sorted(self._statuses(), key=lambda s: (s.vendor, s.account))
        yield from exporter_families(statuses, self.reload_ok, self.reload_ts, self.shard)


@dataclass(frozen=True)
class Body:
    """A /metrics response body: its exact length, and its bytes in order.

    `inflates`: producing the chunks decompresses pieces whose plain text was dropped, so the
    caller should produce them off the event loop.
    """

    length: int
    chunks: Iterable[bytes]
    inflates: bool = False


_EOF = Piece.frozen(b"# EOF\n")


def _same(a: Sequence[object], b: Sequence[object]) -> bool:
    return len(a) == len(b) and all(x is y for x, y in zip(a, b, strict=True))


class Exposition:
    """Assembles /metrics from the published renderings plus the small scrape-time families.

    Safe to call from worker threads: scrapes are assembled off the event loop. Its caches hold
    the renderings they were built from, so an identity check can never match a new object that
    reuses a freed one's address.
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
        # Ages for one (second, set of renderings): concurrent scrapers (HA Prometheus pairs)
        # share the work instead of each doing it.
        self._lock = threading.Lock()
        self._ages_for: tuple[int, tuple[RenderedSnapshot, ...]] = (-1, ())
        self._ages: dict[str, list[Piece]] = {}
        # The static runs between the scrape-time pieces, per format (counter headers differ),
        # for one set of renderings.
        self._runs: dict[bool, tuple[tuple[RenderedSnapshot, ...], list[PieceRun]]] = {}

    def _age_pieces(
        self, rendered: tuple[RenderedSnapshot, ...], now: int
    ) -> dict[str, list[Piece]]:
        with self._lock:
            second, held = self._ages_for
            if second != now or not _same(held, rendered):
                # frozen: compressed here, once, under the lock
                self._ages = {
                    f.age_of: [Piece.frozen(r.ages[f.age_of].render(now)) for r in rendered]
                    for f in AGE_FAMILIES
                }
                self._ages_for = (now, rendered)
            return self._ages

    def _static_runs(
        self, rendered: tuple[RenderedSnapshot, ...], openmetrics: bool
    ) -> list[PieceRun]:
        """Everything between (and before) the age families, spliced once per set of polls."""
        headers = OPENMETRICS_HEADERS if openmetrics else HEADERS
        with self._lock:
            held = self._runs.get(openmetrics)
            if held is None or not _same(held[0], rendered):
                runs: list[PieceRun] = []
                current: list[Piece] = []
                for family in (*CONNECTOR, *CATALOG):
                    current.append(headers[family.name])
                    if family.age_of:
                        runs.append(PieceRun(current))
                        current = []
                    else:
                        for r in rendered:
                            current.extend(r.pieces[family.name])
                runs.append(PieceRun(current))
                held = self._runs[openmetrics] = (rendered, runs)
            return held[1]

    def pieces(self, openmetrics: bool = False) -> list[Splice]:
        """The whole response, in order: static runs, ages, the exporter's own families."""
        statuses = sorted(self._statuses(), key=lambda s: (s.vendor, s.account))
        # Each account's published state is read once: one consistent reference per account.
        rendered = tuple(p.rendered for s in statuses if (p := s.published) is not None)
        runs = self._static_runs(rendered, openmetrics)
        ages = self._age_pieces(rendered, int(self._clock()))
        out: list[Splice] = [runs[0]]
        for family, run in zip(AGE_FAMILIES, runs[1:], strict=True):
            out.extend(ages[family.age_of])
            out.append(run)
        if openmetrics:
            text: bytes = generate_openmetrics(self._registry)  # type: ignore[no-untyped-call]
            out += [Piece(text.removesuffix(b"# EOF\n")), _EOF]
        else:
            out.append(Piece(generate_latest(self._registry)))
        return out

    def body(self, *, openmetrics: bool, gzip: bool) -> Body:
        """The /metrics body in the negotiated format and encoding."""
        pieces = self.pieces(openmetrics)
        if gzip:
            return Body(gzip_length(pieces), gzip_stream(pieces))
        # Pieces over the plain-text budget inflate one at a time as they are written.
        return Body(
            length=sum(p.size for p in pieces),
            chunks=(part for p in pieces for part in p.plain_parts()),
            inflates=any(p.inflates for p in pieces),
        )

"""The one place that turns the accounts' published state into a /metrics body.

Per-connector series were rendered at poll time (`render.py`) into pre-compressed pieces; a
scrape only splices those pieces together, renders the `*_age_seconds` series (which depend on
the scrape time) and the exporter's own small families. That keeps a scrape's cost nearly
independent of the fleet size and free of vendor I/O.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.registry import Collector, CollectorRegistry

from exporter import __version__
from exporter.deflate import Piece, Splice, gzip_length, gzip_stream
from exporter.deflate import Run as PieceRun
from exporter.families import ACCOUNT_LABELS, ALL, BY_NAME, CATALOG, CONNECTOR, PROCESS_WIDE
from exporter.render import HEADERS, RenderedSnapshot
from exporter.status import AccountStatus

AGE_FAMILIES = tuple(f for f in CONNECTOR if f.age_of)
EVERY_FAMILY = frozenset(f.name for f in ALL)
# Scrape times remembered to predict the next scrape's second (one Prometheus, or an HA pair).
RECENT_SCRAPES = 3
# A predicted scrape this close to a second boundary may land in either second: prepare both.
BOUNDARY_SECONDS = 0.05
# Seconds of prepared ages kept at most (the current one, predictions, their neighbours).
PREPARED_SECONDS = 6


def _all_families() -> frozenset[str]:
    return EVERY_FAMILY


def _family(name: str) -> GaugeMetricFamily | CounterMetricFamily:
    """An empty prometheus-client family for one of the exporter's own `families.EXPORTER`."""
    family = BY_NAME[name]
    labels = [*family.labels] if name in PROCESS_WIDE else [*ACCOUNT_LABELS, *family.labels]
    cls = CounterMetricFamily if family.type == "counter" else GaugeMetricFamily
    return cls(family.name, family.help, labels=labels)


def exporter_families(
    statuses: Sequence[AccountStatus], reload_ok: bool, reload_ts: float | None
) -> Iterator[Metric]:
    """The exporter's own health: poll outcomes, API requests, config reloads, build."""
    poll_success = _family("connector_exporter_poll_success")
    last_success = _family("connector_exporter_last_poll_success_timestamp_seconds")
    duration = _family("connector_exporter_poll_duration_seconds")
    polls = _family("connector_exporter_polls")
    failures = _family("connector_exporter_poll_failures")
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
        for code in sorted(s.requests):
            requests.add_metric([*ids, code], float(s.requests[code]))
        snapshot = s.snapshot
        if snapshot is not None:
            connectors.add_metric(ids, float(len(snapshot.connectors)))
        interval.add_metric(ids, s.interval)
    yield from (poll_success, last_success, duration, polls, failures, requests)
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


class ExporterCollector(Collector):
    """The exporter's own families, from the accounts' status at scrape time."""

    def __init__(
        self,
        statuses: Callable[[], Iterable[AccountStatus]],
        families: Callable[[], frozenset[str]] = _all_families,
    ) -> None:
        self._statuses = statuses
        self._families = families  # enabled by the metric allow/deny lists
        self.reload_ok = True
        self.reload_ts: float | None = None

    def collect(self) -> Iterator[Metric]:
        statuses = sorted(self._statuses(), key=lambda s: (s.vendor, s.account))
        enabled = self._families()
        for family in exporter_families(statuses, self.reload_ok, self.reload_ts):
            if family.name in enabled:
                yield family


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


AgePieces = dict[str, list[Piece]]


@dataclass(frozen=True, eq=False)
class _Prepared:
    """The age pieces of one second for one set of renderings, ready or being rendered."""

    rendered: tuple[RenderedSnapshot, ...]
    enabled: frozenset[str]
    pieces: Future[AgePieces]

    def serves(self, rendered: tuple[RenderedSnapshot, ...], enabled: frozenset[str]) -> bool:
        return self.enabled == enabled and _same(self.rendered, rendered)


def render_ages(
    rendered: Sequence[RenderedSnapshot], second: int, enabled: frozenset[str]
) -> AgePieces:
    """The `*_age_seconds` pieces of every account at `second`, compressed.

    Plain text is not kept: only a rare uncompressed scrape reads it, and inflates it.
    """
    return {
        f.age_of: [
            Piece.frozen(r.ages[f.age_of].render(second), keep_plain=False)
            for r in rendered
            if f.age_of in r.ages
        ]
        for f in AGE_FAMILIES
        if f.name in enabled
    }


class Exposition:
    """Assembles /metrics from the published renderings plus the small scrape-time families.

    Safe to call from worker threads: scrapes are assembled off the event loop. Its caches hold
    the renderings they were built from, so an identity check can never match a new object that
    reuses a freed one's address.

    Ages depend on the scrape's second. Prometheus scrapes each target at a fixed interval (two
    phases for an HA pair), so after each scrape the ages of the second the next one is due in
    are rendered ahead, on a worker thread, while the exporter is idle: the scrape then only
    splices. The CPU is the same as rendering on demand; a wrong guess costs one render and the
    scrape renders its own second as before.
    """

    def __init__(
        self,
        statuses: Callable[[], Iterable[AccountStatus]],
        registry: CollectorRegistry,
        *,
        clock: Callable[[], float] = time.time,
        families: Callable[[], frozenset[str]] = _all_families,
        render_ahead: bool = True,
    ) -> None:
        self._statuses = statuses
        self._registry = registry  # the exporter's own and the process collectors
        self._clock = clock
        self._families = families  # enabled by the metric allow/deny lists
        self._lock = threading.Lock()
        # Ages per second: concurrent scrapers (HA Prometheus pairs) share the work instead of
        # each doing it, and predicted seconds are prepared before their scrape arrives.
        self._prepared: dict[int, _Prepared] = {}
        self._recent: deque[float] = deque(maxlen=RECENT_SCRAPES)
        self._ahead = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="ages-ahead")
            if render_ahead
            else None
        )
        # The static runs between the scrape-time pieces, for one set of renderings.
        self._runs_for: tuple[tuple[RenderedSnapshot, ...], frozenset[str]] | None = None
        self._runs: list[PieceRun] = []

    def prepared_seconds(self) -> list[int]:
        """The seconds whose ages are rendered or being rendered (for tests and debugging)."""
        with self._lock:
            return sorted(self._prepared)

    def _age_pieces(
        self, rendered: tuple[RenderedSnapshot, ...], now: int, enabled: frozenset[str]
    ) -> AgePieces:
        with self._lock:
            prepared = self._prepared.get(now)
            mine = prepared is None or not prepared.serves(rendered, enabled)
            if mine:
                prepared = self._prepared[now] = _Prepared(rendered, enabled, Future())
            for second in [s for s in self._prepared if s < now]:
                del self._prepared[second]
        assert prepared is not None
        if mine:
            self._fill(prepared, now)
        return prepared.pieces.result()

    @staticmethod
    def _fill(prepared: _Prepared, second: int) -> None:
        try:
            prepared.pieces.set_result(render_ages(prepared.rendered, second, prepared.enabled))
        except BaseException as err:  # whoever waits on it must see it, not hang
            prepared.pieces.set_exception(err)
            raise

    def _predict(
        self, at: float, rendered: tuple[RenderedSnapshot, ...], enabled: frozenset[str]
    ) -> None:
        """Render ahead the ages of the second(s) the next scrape is likely to land in."""
        if self._ahead is None:
            return
        with self._lock:
            recent = self._recent
            recent.append(at)
            guesses: list[float] = []
            if len(recent) >= 2 and recent[-1] - recent[-2] >= 1.0:
                step = recent[-1] - recent[-2]
                guesses.append(at + step)
                # Two scrapers in alternation (an HA pair): each one's own interval is the
                # distance to the scrape before the last.
                if len(recent) >= 3 and abs(step - (recent[-2] - recent[-3])) > BOUNDARY_SECONDS:
                    guesses.append(at + (recent[-1] - recent[-3]))
            seconds: set[int] = set()
            for guess in guesses:
                second = int(guess)
                seconds.add(second)
                if guess - second < BOUNDARY_SECONDS:
                    seconds.add(second - 1)
                elif guess - second > 1 - BOUNDARY_SECONDS:
                    seconds.add(second + 1)
            todo: list[tuple[int, _Prepared]] = []
            for second in sorted(seconds):
                if second <= int(at):
                    continue
                held = self._prepared.get(second)
                if held is not None and held.serves(rendered, enabled):
                    continue
                prepared = self._prepared[second] = _Prepared(rendered, enabled, Future())
                todo.append((second, prepared))
            while len(self._prepared) > PREPARED_SECONDS:
                del self._prepared[max(self._prepared)]
        for second, prepared in todo:
            self._ahead.submit(self._fill, prepared, second)

    def _static_runs(
        self, rendered: tuple[RenderedSnapshot, ...], enabled: frozenset[str]
    ) -> list[PieceRun]:
        """Everything between (and before) the age families, spliced once per set of polls."""
        with self._lock:
            held = self._runs_for
            if held is None or held[1] != enabled or not _same(held[0], rendered):
                runs: list[PieceRun] = []
                current: list[Piece] = []
                for family in (*CONNECTOR, *CATALOG):
                    if family.name in enabled:
                        current.append(HEADERS[family.name])
                        for r in rendered:
                            current.extend(r.pieces.get(family.name, ()))
                    if family.age_of:
                        runs.append(PieceRun(current))
                        current = []
                runs.append(PieceRun(current))
                self._runs, self._runs_for = runs, (rendered, enabled)
            return self._runs

    def pieces(self, openmetrics: bool = False) -> list[Splice]:
        """The whole response, in order: static runs, ages, the exporter's own families."""
        statuses = sorted(self._statuses(), key=lambda s: (s.vendor, s.account))
        # Each account's published state is read once: one consistent reference per account.
        rendered = tuple(p.rendered for s in statuses if (p := s.published) is not None)
        enabled = self._families()
        runs = self._static_runs(rendered, enabled)
        at = self._clock()
        ages = self._age_pieces(rendered, int(at), enabled)
        self._predict(at, rendered, enabled)
        out: list[Splice] = [runs[0]]
        for family, run in zip(AGE_FAMILIES, runs[1:], strict=True):
            out.extend(ages.get(family.age_of, ()))
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

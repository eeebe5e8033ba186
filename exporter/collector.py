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
from exporter.errors import FAILURE_REASONS
from exporter.families import ACCOUNT_LABELS, ALL, BY_NAME, CATALOG, CONNECTOR, PROCESS_WIDE
from exporter.render import HEADERS, OPENMETRICS_HEADERS, RenderedSnapshot
from exporter.status import AccountStatus

AGE_FAMILIES = tuple(f for f in CONNECTOR if f.age_of)
EVERY_FAMILY = frozenset(f.name for f in ALL)
# Scrape times remembered to predict the next scrape's second (one Prometheus, or an HA pair).
RECENT_SCRAPES = 3
# A predicted scrape this close to a second boundary may land in either second: prepare both.
BOUNDARY_SECONDS = 0.05
# Seconds of prepared ages kept at most (the current one, predictions, their neighbours).
PREPARED_SECONDS = 6
# Rendering ahead starts this long after the scrape that predicted it (at most a quarter of
# the interval): that scrape's response is written by then.
AHEAD_DELAY_SECONDS = 0.3
# An account's age text from this size on is compressed on its own, ahead of its scrape.
LARGE_AGES = 64 * 1024
# Response chunks are at least this large (see `coalesce`).
COALESCE_BYTES = 256 * 1024


def _all_families() -> frozenset[str]:
    return EVERY_FAMILY


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
        self,
        statuses: Callable[[], Iterable[AccountStatus]],
        shard: tuple[int, int] = (0, 1),
        families: Callable[[], frozenset[str]] = _all_families,
    ) -> None:
        self._statuses = statuses
        self.shard = shard  # (index, count) of --shard; (0, 1) when unsharded
        self._families = families  # enabled by the metric allow/deny lists
        self.reload_ok = True
        self.reload_ts: float | None = None

    def collect(self) -> Iterator[Metric]:
        statuses = sorted(self._statuses(), key=lambda s: (s.vendor, s.account))
        enabled = self._families()
        for family in exporter_families(statuses, self.reload_ok, self.reload_ts, self.shard):
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


# One account's ages at one second, by `age_of`: compressed when large, else plain text that
# is compressed together with its neighbours' (500 small accounts: one piece, not 500).
AgeParts = dict[str, bytes | Piece]
AgePieces = dict[str, list[Piece]]  # every account's ages at one second, ready to splice


class _Prepared:
    """One account's age parts at one second, rendered (`parts`) or being rendered (`batch`).

    Holds the rendering it was made from: the cache never matches a new rendering that reuses
    a freed one's address.
    """

    __slots__ = ("batch", "enabled", "parts", "rendered")

    def __init__(
        self, rendered: RenderedSnapshot, enabled: frozenset[str], batch: Future[None]
    ) -> None:
        self.rendered = rendered
        self.enabled = enabled
        self.batch = batch  # done once every entry claimed with it has its parts
        self.parts: AgeParts | None = None

    def serves(self, rendered: RenderedSnapshot, enabled: frozenset[str]) -> bool:
        return self.rendered is rendered and self.enabled == enabled

    def result(self) -> AgeParts:
        if self.parts is None:
            self.batch.result()
        assert self.parts is not None
        return self.parts


def render_ages(rendered: RenderedSnapshot, second: int, enabled: frozenset[str]) -> AgeParts:
    """One account's `*_age_seconds` lines at `second`; compressed when large."""
    out: AgeParts = {}
    for f in AGE_FAMILIES:
        if f.name in enabled and f.age_of in rendered.ages:
            text = rendered.ages[f.age_of].render(second)
            # plain text is not kept: only a rare uncompressed scrape reads it, and inflates it
            out[f.age_of] = (
                Piece.frozen(text, keep_plain=False) if len(text) >= LARGE_AGES else text
            )
    return out


def _fill(entries: Sequence[_Prepared], second: int, batch: Future[None]) -> None:
    try:
        for entry in entries:
            entry.parts = render_ages(entry.rendered, second, entry.enabled)
    except BaseException as err:  # whoever waits on it must see it, not hang
        batch.set_exception(err)
        raise
    batch.set_result(None)


def assemble(entries: Sequence[_Prepared]) -> AgePieces:
    """Every account's age parts in order, runs of small plain ones compressed together."""
    out: AgePieces = {}
    parts = [e.result() for e in entries]
    for f in AGE_FAMILIES:
        pieces: list[Piece] = []
        pending: list[bytes] = []
        for account in parts:
            part = account.get(f.age_of)
            if isinstance(part, bytes):
                pending.append(part)
            elif part is not None:
                if pending:
                    pieces.append(Piece.frozen(b"".join(pending), keep_plain=False))
                    pending = []
                pieces.append(part)
        if pending:
            pieces.append(Piece.frozen(b"".join(pending), keep_plain=False))
        out[f.age_of] = pieces
    return out


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
        # Ages per second and account: concurrent scrapers (HA Prometheus pairs) share the
        # work instead of each doing it, predicted seconds are prepared before their scrape
        # arrives, and one account's poll leaves the others' prepared ages valid.
        self._prepared: dict[int, dict[int, _Prepared]] = {}
        self._assembled: dict[int, tuple[tuple[_Prepared, ...], AgePieces]] = {}
        self._recent: deque[float] = deque(maxlen=RECENT_SCRAPES)
        self._ahead = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="ages-ahead")
            if render_ahead
            else None
        )
        # The static runs between the scrape-time pieces, per format (counter headers differ),
        # for one set of renderings and enabled families.
        self._runs: dict[
            bool, tuple[tuple[RenderedSnapshot, ...], frozenset[str], list[PieceRun]]
        ] = {}

    def prepared_seconds(self) -> list[int]:
        """The seconds whose ages are rendered or being rendered (for tests and debugging)."""
        with self._lock:
            return sorted(self._prepared)

    def _claim(
        self, second: int, rendered: Sequence[RenderedSnapshot], enabled: frozenset[str]
    ) -> tuple[tuple[_Prepared, ...], list[_Prepared], Future[None]]:
        """Under the lock: each account's entry for `second`, and those nobody renders yet
        (theirs to render, then to mark done with the returned batch)."""
        held = self._prepared.setdefault(second, {})
        batch: Future[None] = Future()
        entries: list[_Prepared] = []
        todo: list[_Prepared] = []
        for r in rendered:
            entry = held.get(id(r))
            if entry is None or not entry.serves(r, enabled):
                entry = held[id(r)] = _Prepared(r, enabled, batch)
                todo.append(entry)
            entries.append(entry)
        if len(held) > len(rendered):  # accounts that polled or left since
            keep = {id(e.rendered) for e in entries}
            for key in [k for k in held if k not in keep]:
                del held[key]
        return tuple(entries), todo, batch

    def _assembled_for(self, second: int, entries: tuple[_Prepared, ...]) -> AgePieces:
        with self._lock:
            held = self._assembled.get(second)
        if held is not None and _same(held[0], entries):
            return held[1]
        pieces = assemble(entries)
        with self._lock:
            if second in self._prepared:  # not pruned meanwhile
                self._assembled[second] = (entries, pieces)
        return pieces

    def _age_pieces(
        self, rendered: tuple[RenderedSnapshot, ...], now: int, enabled: frozenset[str]
    ) -> AgePieces:
        with self._lock:
            entries, todo, batch = self._claim(now, rendered, enabled)
            for second in [s for s in self._prepared if s < now]:
                del self._prepared[second]
                self._assembled.pop(second, None)
        if todo:
            _fill(todo, now, batch)
        return self._assembled_for(now, entries)

    def _ahead_of(
        self,
        second: int,
        entries: tuple[_Prepared, ...],
        todo: list[_Prepared],
        batch: Future[None],
        delay: float,
    ) -> None:
        # Not while the scrape that predicted this is still being written: rendering holds the
        # GIL for milliseconds, and the event loop would wait for it (up to the interpreter's
        # 5 ms switch interval each time) to send the response.
        time.sleep(delay)
        if todo:
            _fill(todo, second, batch)
        self._assembled_for(second, entries)

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
            step = recent[-1] - recent[-2] if len(recent) >= 2 else 0.0
            if step >= 1.0:
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
            jobs = [
                (second, *self._claim(second, rendered, enabled))
                for second in sorted(s for s in seconds if s > int(at))
            ]
            while len(self._prepared) > PREPARED_SECONDS:
                dropped = max(self._prepared)
                del self._prepared[dropped]
                self._assembled.pop(dropped, None)
        for second, entries, todo, batch in jobs:
            held = self._assembled.get(second)
            if todo or held is None or not _same(held[0], entries):
                delay = min(AHEAD_DELAY_SECONDS, step / 4)
                self._ahead.submit(self._ahead_of, second, entries, todo, batch, delay)

    def _static_runs(
        self, rendered: tuple[RenderedSnapshot, ...], enabled: frozenset[str], openmetrics: bool
    ) -> list[PieceRun]:
        """Everything between (and before) the age families, spliced once per set of polls."""
        headers = OPENMETRICS_HEADERS if openmetrics else HEADERS
        with self._lock:
            held = self._runs.get(openmetrics)
            if held is None or held[1] != enabled or not _same(held[0], rendered):
                runs: list[PieceRun] = []
                current: list[Piece] = []
                for family in (*CONNECTOR, *CATALOG):
                    if family.name in enabled:
                        current.append(headers[family.name])
                        for r in rendered:
                            current.extend(r.pieces.get(family.name, ()))
                    if family.age_of:
                        runs.append(PieceRun(current))
                        current = []
                runs.append(PieceRun(current))
                held = self._runs[openmetrics] = (rendered, enabled, runs)
            return held[2]

    def pieces(self, openmetrics: bool = False) -> list[Splice]:
        """The whole response, in order: static runs, ages, the exporter's own families."""
        statuses = sorted(self._statuses(), key=lambda s: (s.vendor, s.account))
        # Each account's published state is read once: one consistent reference per account.
        rendered = tuple(p.rendered for s in statuses if (p := s.published) is not None)
        enabled = self._families()
        runs = self._static_runs(rendered, enabled, openmetrics)
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
            return Body(gzip_length(pieces), coalesce(gzip_stream(pieces)))
        # Pieces over the plain-text budget inflate one at a time as they are written.
        return Body(
            length=sum(p.size for p in pieces),
            chunks=coalesce(part for p in pieces for part in p.plain_parts()),
            inflates=any(p.inflates for p in pieces),
        )


def coalesce(parts: Iterable[bytes], size: int = COALESCE_BYTES) -> Iterator[bytes]:
    """`parts` joined into chunks of at least `size` bytes (the last may be shorter).

    Each chunk is one pass of the writer (and, for a body that inflates, one worker-thread
    hop): 500 small accounts are ~10,000 pieces, which written one by one cost more than the
    scrape.
    """
    pending: list[bytes] = []
    held = 0
    for part in parts:
        if len(part) >= size and not pending:
            yield part
            continue
        pending.append(part)
        held += len(part)
        if held >= size:
            yield b"".join(pending)
            pending, held = [], 0
    if pending:
        yield b"".join(pending)

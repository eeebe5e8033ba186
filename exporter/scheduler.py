"""Polling: one runner per account, scheduled by APScheduler; snapshots swapped in whole."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from exporter.accounts import AccountBase
from exporter.config import Config
from exporter.dropguard import DropGuardState
from exporter.errors import PollTimeout, VendorError
from exporter.model import CatalogEntry, Connector, PollResult, Snapshot, StateSets
from exporter.status import (
    AccountStatus,
    Published,
    SyncTelemetry,
    carry_health_since,
    publish,
)
from exporter.vendors import REGISTRY
from exporter.vendors.base import ApiClient, ClientSettings, PollStats
from exporter.vendors.events import Event

log = structlog.get_logger("exporter.poll")

# Events received while a poll is in flight are applied again on top of its result (its pages
# may predate them); past this many, the poll's own result stands and the next poll corrects.
MAX_REPLAY_EVENTS = 10_000

# Spread polls of many accounts so that they do not hit vendors (or our CPU) in lockstep.
JITTER_FRACTION = 0.1
JITTER_CAP_SECONDS = 30.0


def build_snapshot(
    account: AccountBase, vendor_states: StateSets, result: PollResult, taken_at: float
) -> tuple[Snapshot, int]:
    """The snapshot of a successful poll: filtered, de-duplicated, sorted so series never churn.

    Returns the snapshot and how many duplicate connector ids were dropped.
    """
    by_id: dict[str, Connector] = {}
    duplicates = 0
    seen: set[str] = set()
    for connector in result.connectors:
        if connector.connector_id in seen:
            duplicates += 1  # vendors' pages can shift under us; keep the first we saw
            continue
        seen.add(connector.connector_id)
        if account.keeps(connector.name):
            by_id[connector.connector_id] = connector
    catalog: dict[str, CatalogEntry] = {}
    for entry in result.catalog:
        catalog.setdefault(entry.connector_id, entry)
    snapshot = Snapshot(
        vendor=account.vendor,
        account=account.name,
        states=vendor_states,
        connectors=tuple(by_id[k] for k in sorted(by_id)),
        catalog=tuple(catalog[k] for k in sorted(catalog)),
        taken_at=taken_at,
    )
    return snapshot, duplicates


class AccountRunner:
    """Polls one account: I/O through its adapter, then an atomic swap of its snapshot."""

    def __init__(
        self,
        account: AccountBase,
        config: Config,
        *,
        settings: ClientSettings | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        vendor: str = account.vendor
        self.account = account
        self.poll_timeout = config.poll_timeout
        self.families = config.enabled_families  # the metric allow/deny lists, kept current
        self.clock = clock
        self.status = AccountStatus(vendor, account.name, config.interval_of(account))
        adapter_cls = REGISTRY[vendor].adapter
        self.api = ApiClient(
            base_url=account.base_url,
            headers=adapter_cls.headers(account),
            secrets=account.secret_values(),
            settings=settings
            or ClientSettings(
                request_timeout=config.request_timeout, max_retries=config.max_retries
            ),
            on_response=self._count_response,
        )
        self.adapter = adapter_cls(account, self.api)
        self.drop_guard = DropGuardState(account.drop_guard)
        self._lock = asyncio.Lock()
        # Held while a new Published is derived from the current one and swapped in, by a poll
        # or by events, so that neither overwrites the other's change.
        self._publish_lock = asyncio.Lock()
        self._queue: list[tuple[Event, float]] = []
        self._replay: list[tuple[Event, float]] | None = None  # not None while a poll runs

    def _count_response(self, code: str) -> None:
        self.status.requests[code] += 1

    async def poll(self) -> bool:
        """Run one poll; never raises except on cancellation. Returns whether it succeeded."""
        # APScheduler's max_instances=1 already prevents overlap; the lock also covers polls
        # started by hand (tests, the first poll at start-up).
        async with self._lock:
            return await self._poll()

    async def _poll(self) -> bool:
        status = self.status
        stats = self.api.stats = PollStats()
        started = time.monotonic()
        error: VendorError | None = None
        published: Published | None = None
        duplicates = 0
        self._replay = []
        self.adapter.begin_poll()
        try:
            async with asyncio.timeout(self.poll_timeout):
                result = await self.adapter.poll()
                snapshot, duplicates = build_snapshot(
                    self.account, self.adapter.states, result, taken_at=self.clock()
                )
                last_good = status.snapshot
                drop = self.drop_guard.check(
                    len(last_good.connectors) if last_good else None, len(snapshot.connectors)
                )
                if drop is not None:
                    raise drop
                async with self._publish_lock:
                    replay, self._replay = self._replay or [], None
                    # Rendering 50,000 connectors takes seconds of CPU: off the event loop, so
                    # that scrapes and other accounts' polls go on meanwhile.
                    published = await asyncio.to_thread(
                        self._publish_poll, status.published, snapshot, replay
                    )
                    status.published = published  # the swap: one reference, read once each
        except TimeoutError:
            error = PollTimeout(f"poll did not finish within {self.poll_timeout:g}s")
        except VendorError as err:
            error = err
        except Exception as err:  # a bug must fail this poll, never the daemon
            error = VendorError(self.api.redact(f"unexpected {type(err).__name__}: {err}"))
            log.error("poll_crashed", vendor=status.vendor, account=status.account, exc_info=True)
        finally:
            self._replay = None
        duration = time.monotonic() - started
        now = self.clock()
        status.polls_total += 1
        status.last_duration = duration
        status.last_poll_end = now
        if published is not None:
            status.last_ok = True
            status.last_success_end = now
            status.last_error = ""
        else:
            status.failures_total += 1
            status.last_ok = False
            status.last_error = str(error)
            status.last_failure_reason = error.failure_reason if error else "bad_response"
        fields: dict[str, Any] = {
            "vendor": status.vendor,
            "account": status.account,
            "outcome": "success" if error is None else "failure",
            "connectors": len(last.connectors) if (last := status.snapshot) else 0,
            "pages": stats.pages,
            "requests": stats.requests,
            "duration_seconds": round(duration, 3),
        }
        if duplicates:
            fields["duplicates_dropped"] = duplicates
        if error is None:
            log.info("poll", **fields)
        else:
            log.warning("poll", **fields, reason=error.reason, error=str(error))
        return error is None

    def _publish_poll(
        self, previous: Published | None, snapshot: Snapshot, replay: list[tuple[Event, float]]
    ) -> Published:
        """A poll's Published: its vendor objects kept, events since its start re-applied,
        telemetry of connectors still listed carried over (the others' dropped)."""
        self.adapter.end_poll(c.connector_id for c in snapshot.connectors)
        if replay:
            snapshot = self._apply(snapshot, replay, record=False)
        telemetry = self.status.telemetry
        listed = {c.connector_id for c in snapshot.connectors}
        for gone in [cid for cid in telemetry if cid not in listed]:
            del telemetry[gone]
        if telemetry:
            snapshot = dataclasses.replace(
                snapshot,
                connectors=tuple(
                    dataclasses.replace(c, **telemetry[c.connector_id].fields())  # type: ignore[arg-type]
                    if c.connector_id in telemetry
                    else c
                    for c in snapshot.connectors
                ),
            )
        return publish(snapshot, carry_health_since(previous, snapshot), self.families)

    def _apply(
        self, snapshot: Snapshot, batch: Sequence[tuple[Event, float]], *, record: bool
    ) -> Snapshot:
        """`snapshot` with each event's connector re-translated (and its telemetry recorded).

        An event about a connector the snapshot does not hold changes nothing: that connector
        waits for the poll that lists it.
        """
        by_id = {c.connector_id: c for c in snapshot.connectors}
        telemetry = self.status.telemetry
        for event, received_at in batch:
            current = by_id.get(event.connector_id)
            if current is None:
                continue
            updated = self.adapter.retranslate(event.connector_id, event.patch) or current
            if record:
                telemetry.setdefault(event.connector_id, SyncTelemetry()).record(
                    received_at,
                    sync_id=event.sync_id,
                    start=event.sync_start,
                    end=event.sync_end,
                    result=event.sync_result,
                )
            if (known := telemetry.get(event.connector_id)) is not None:
                updated = dataclasses.replace(updated, **known.fields())  # type: ignore[arg-type]
            by_id[event.connector_id] = updated
        taken_at = max(at for _, at in batch) if record else snapshot.taken_at
        return dataclasses.replace(
            snapshot,
            connectors=tuple(by_id[c.connector_id] for c in snapshot.connectors),
            taken_at=taken_at,
        )

    def _publish_events(self, previous: Published, batch: list[tuple[Event, float]]) -> Published:
        snapshot = self._apply(previous.snapshot, batch, record=True)
        return publish(snapshot, carry_health_since(previous, snapshot), self.families)

    async def deliver(self, events: Sequence[Event], received_at: float) -> bool:
        """Apply verified events at once: one new Published for the account, one swap.

        Events arriving while another batch is being rendered are coalesced into the next one,
        so a burst costs a few renders, not one per event. Returns False when nothing is
        published yet (the first poll is the truth; the events are not kept).
        """
        self._queue.extend((event, received_at) for event in events)
        async with self._publish_lock:
            batch, self._queue = self._queue, []
            if not batch:
                return self.status.published is not None  # a concurrent call applied ours
            if self._replay is not None and len(self._replay) + len(batch) <= MAX_REPLAY_EVENTS:
                self._replay.extend(batch)
            previous = self.status.published
            if previous is None:
                return False
            published = await asyncio.to_thread(self._publish_events, previous, batch)
            self.status.published = published
            return True

    async def aclose(self) -> None:
        await self.api.aclose()


class Scheduler:
    """Owns the account runners: one APScheduler interval job each, the first poll at once."""

    def __init__(self, config: Config, accounts: Iterable[AccountBase]) -> None:
        self.config = config
        self.runners: dict[str, AccountRunner] = {a.key: AccountRunner(a, config) for a in accounts}
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        self._tasks: dict[AccountRunner, asyncio.Task[Any]] = {}

    def statuses(self) -> list[AccountStatus]:
        return [r.status for r in self.runners.values()]

    def _add(self, runner: AccountRunner, now: datetime) -> None:
        interval = runner.status.interval
        self._scheduler.add_job(
            self._run,
            "interval",
            args=[runner],
            seconds=interval,
            jitter=min(interval * JITTER_FRACTION, JITTER_CAP_SECONDS),
            next_run_time=now,
            id=runner.status.key,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=max(1, int(interval)),
            replace_existing=True,
        )
        runner.status.next_poll = now.timestamp()

    def start(self) -> None:
        now = datetime.now(UTC)
        for runner in self.runners.values():
            self._add(runner, now)
        self._scheduler.start()

    async def reconcile(self, config: Config, accounts: Sequence[AccountBase]) -> None:
        """Poll exactly `accounts` under `config` from now on.

        Unchanged accounts keep their runner and timing; new ones poll at once; an account whose
        settings changed gets a new runner that keeps its counters and last good state, so its
        series carry on instead of vanishing until the next poll; removed ones stop.
        """
        now = datetime.now(UTC)
        old = dict(self.runners)
        runners: dict[str, AccountRunner] = {}
        replaced: list[AccountRunner] = []
        for account in accounts:
            previous = old.pop(account.key, None)
            if previous is not None and _same(previous, account, self.config, config):
                runners[account.key] = previous
                previous.families = config.enabled_families  # from its next poll on
                continue
            runner = runners[account.key] = AccountRunner(account, config)
            if previous is not None:
                runner.status = previous.status
                runner.drop_guard.held = previous.drop_guard.held
                runner.status.interval = config.interval_of(account)
                replaced.append(previous)
        # One assignment: a scrape meanwhile sees the old set of accounts or the new one.
        self.runners, self.config = runners, config
        for runner in [*replaced, *old.values()]:
            await self._remove(runner)
        for runner in runners.values():
            job = self._scheduler.get_job(runner.status.key)
            if job is None or job.args[0] is not runner:
                self._add(runner, now)

    async def _remove(self, runner: AccountRunner) -> None:
        """Stop polling `runner`: its job, any poll in flight, its HTTP client."""
        job = self._scheduler.get_job(runner.status.key)
        if job is not None and job.args[0] is runner:
            job.remove()
        task = self._tasks.pop(runner, None)
        if task is not None:
            task.cancel()
            await asyncio.wait([task], timeout=2.0)
        await runner.aclose()

    async def _run(self, runner: AccountRunner) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks[runner] = task
        try:
            await runner.poll()
        finally:
            if task is not None and self._tasks.get(runner) is task:
                del self._tasks[runner]
            job = self._scheduler.get_job(runner.status.key)
            next_run = getattr(job, "next_run_time", None) if job else None
            runner.status.next_poll = next_run.timestamp() if next_run else None

    @property
    def running(self) -> bool:
        return bool(self._scheduler.running)

    def ready(self) -> bool:
        """Every account has finished its first poll, successfully or not."""
        return all(r.status.last_ok is not None for r in self.runners.values())

    async def shutdown(self, grace: float = 3.0) -> None:
        """Stop scheduling, cancel in-flight polls, close the HTTP clients."""
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=grace)
        await asyncio.gather(*(r.aclose() for r in self.runners.values()), return_exceptions=True)


def _same(runner: AccountRunner, account: AccountBase, old: Config, new: Config) -> bool:
    """Whether a reload leaves this account's polling exactly as it was."""
    return (
        runner.account == account
        and old.interval_of(runner.account) == new.interval_of(account)
        and (old.poll_timeout, old.request_timeout, old.max_retries)
        == (new.poll_timeout, new.request_timeout, new.max_retries)
    )

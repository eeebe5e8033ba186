"""Shared by the reliability tests: the simulators on their own thread, process sampling."""

from __future__ import annotations

import asyncio
import os
import statistics
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from exporter.simulator import Simulator


@contextmanager
def threaded_simulator() -> Iterator[Simulator]:
    """The simulators serving from their own event loop on a thread.

    A fault like `huge` streams 33 MiB: on the test's own loop that would stall the exporter's
    other polls for reasons no real deployment has. Faults and fleets are changed from the
    test's thread between polls (plain attribute and dict updates).
    """
    sim = Simulator()
    with on_own_loop(sim.start, sim.stop, "simulator"):
        yield sim


@contextmanager
def on_own_loop(
    start: Callable[[], Awaitable[object]], stop: Callable[[], Awaitable[object]], name: str
) -> Iterator[None]:
    """`start()` on a new event loop on a thread named `name`, serving until the block ends;
    then `stop()` on that loop."""
    loop = asyncio.new_event_loop()
    started = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        started.set()
        loop.run_forever()
        loop.run_until_complete(stop())
        loop.close()

    thread = threading.Thread(target=serve, name=name, daemon=True)
    thread.start()
    assert started.wait(10), f"the {name} did not start"
    try:
        yield
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def proc_status_bytes(pid: int, field: str) -> int:
    """A size in /proc/<pid>/status (`VmRSS`, `VmHWM`...), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} for {pid}")


def rss_bytes(pid: int) -> int:
    """Resident set size of a process."""
    return proc_status_bytes(pid, "VmRSS")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def growth(
    samples: list[float], statistic: Callable[[list[float]], float] = statistics.median
) -> tuple[float, float]:
    """`statistic` of the first and of the last quarter of `samples` (after the caller's
    warm-up)."""
    quarter = max(1, len(samples) // 4)
    return statistic(samples[:quarter]), statistic(samples[-quarter:])

"""Scrapes at Prometheus' cadence: one gzip scrape at a time, each in a new second.

A closed-loop load generator (wrk) scrapes hundreds of times a second, so almost every scrape
reuses the ages rendered for its second. Prometheus scrapes every 15-60 s and pays for them
every time. Here each scrape is at least a second after the one before: at a regular interval
(as Prometheus, whose next scrape the exporter can predict) and at irregular ones (the cost of
rendering ages on demand). Latency is from the request to the last body byte, on one kept-alive
connection, as Prometheus measures `scrape_duration_seconds`.

`python -m bench.cadence URL [N]` prints the figures for any exporter (e.g. an older build).
"""

from __future__ import annotations

import http.client
import random
import statistics
import sys
import time
from typing import Any
from urllib.parse import urlsplit


class Scraper:
    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.path = parts.path or "/metrics"
        self.conn = http.client.HTTPConnection(
            parts.hostname or "127.0.0.1", parts.port, timeout=60
        )

    def scrape(self) -> tuple[float, bytes]:
        """One gzip scrape: seconds to the last byte, and the raw (compressed) body."""
        start = time.perf_counter()
        self.conn.request("GET", self.path, headers={"Accept-Encoding": "gzip"})
        response = self.conn.getresponse()
        body = response.read()
        elapsed = time.perf_counter() - start
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}")
        return elapsed, body

    def close(self) -> None:
        self.conn.close()


def summary(latencies: list[float]) -> dict[str, Any]:
    ms = sorted(x * 1e3 for x in latencies)
    return {
        "n": len(ms),
        "p50_ms": statistics.median(ms),
        "p90_ms": ms[min(len(ms) - 1, int(len(ms) * 0.9))],
        "max_ms": ms[-1],
    }


def at_cadence(url: str, n: int, *, regular: bool, seed: int = 1) -> dict[str, Any]:
    """`n` scrapes, 1.5 s apart (regular) or 1.0-2.6 s apart at random; the first two warm up."""
    rng = random.Random(seed)
    scraper = Scraper(url)
    latencies: list[float] = []
    try:
        scraper.scrape()
        due = time.monotonic()
        for _ in range(n + 1):
            due += 1.5 if regular else rng.uniform(1.0, 2.6)
            time.sleep(max(0.0, due - time.monotonic()))
            latencies.append(scraper.scrape()[0])
    finally:
        scraper.close()
    return summary(latencies[1:])


def back_to_back(url: str, n: int) -> dict[str, Any]:
    """`n` scrapes one after the other (the static server's floor)."""
    scraper = Scraper(url)
    try:
        scraper.scrape()
        return summary([scraper.scrape()[0] for _ in range(n)])
    finally:
        scraper.close()


if __name__ == "__main__":
    target = sys.argv[1]
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 15
    print("regular", at_cadence(target, count, regular=True))
    print("irregular", at_cadence(target, count, regular=False))

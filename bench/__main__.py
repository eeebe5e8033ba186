"""`make bench`: the exporter against the simulators at 1k, 10k and 50k connectors.

For each size: the simulators (a Fivetran fleet of that size, page size 1000, plus the other
vendors' curated fleets) and the exporter run as separate processes; `wrk` (Debian) scrapes
/metrics from a third. The same figures are taken from a baseline built the obvious way
(bench/baseline.py) and reported as ratios. Results go to bench/results/latest.json and the
table in docs/performance.md. Sizes: BENCH_SIZES=1000,10000,50000; seconds per wrk run:
BENCH_SECONDS=10.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from bench.baseline import BaselineMetrics
from exporter.config import Config
from exporter.model import PollResult
from exporter.render import render_snapshot
from exporter.scheduler import build_snapshot
from exporter.simulator.fivetran import generated
from exporter.vendors import fivetran

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DOC = ROOT / "docs" / "performance.md"
SMALL_INTERVAL = 2.0  # the other vendors' accounts poll this often during the load runs
SCENARIOS = (("plain", 1), ("gzip", 1), ("plain", 20), ("gzip", 20))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def get(url: str, timeout: float = 600) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        body: bytes = response.read()
        return body.decode()


def wait_ready(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            get(url, timeout=5)
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} not ready after {timeout}s")


@contextmanager
def process(args: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_log(log: Path, needle: str, timeout: float) -> None:
    """Wait for a process to say `needle` (the baseline: a scrape may take longer than a probe)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and needle in log.read_text():
            return
        time.sleep(0.2)
    raise RuntimeError(f"{log} did not say {needle!r} within {timeout}s")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return math.nan


def metric(text: str, series: str) -> float:
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    raise KeyError(series)


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        raise ValueError(text)
    return float(m.group(1)) * _UNITS[m.group(2)]


def wrk(url: str, *, gzip: bool, clients: int, seconds: float, timeout: float) -> dict[str, Any]:
    """One wrk run; latency percentiles in ms, request and error counts."""
    args = [
        "wrk",
        f"-t{min(clients, 2)}",
        f"-c{clients}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        f"--timeout={max(1, round(timeout))}s",
    ]
    if gzip:
        args += ["-H", "Accept-Encoding: gzip"]
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    result: dict[str, Any] = {"p50_ms": math.nan, "p99_ms": math.nan, "requests": 0, "errors": 0}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in ("50%", "99%"):
            result["p50_ms" if parts[0] == "50%" else "p99_ms"] = _ms(parts[1])
        elif "requests in" in line:
            result["requests"] = int(parts[0])
        elif line.strip().startswith("Non-2xx"):
            result["errors"] += int(parts[-1])
        elif line.strip().startswith("Socket errors"):
            result["errors"] += sum(int(n) for n in re.findall(r"\d+", line))
    return result


def poll_starts(log: Path, vendor: str, since: float, until: float) -> list[float]:
    """Start times of `vendor`'s polls, from the exporter's JSON poll lines."""
    from datetime import datetime

    starts = []
    for line in log.read_text().splitlines():
        if not line.startswith("{") or f'"vendor": "{vendor}"' not in line:
            continue
        record = json.loads(line)
        if record.get("event") != "poll":
            continue
        end = datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00")).timestamp()
        start = end - record["duration_seconds"]
        if since <= start <= until:
            starts.append(start)
    return sorted(starts)


def cpu_figures(size: int) -> dict[str, float]:
    """CPU seconds to translate one poll and rebuild what /metrics serves, ours and baseline."""
    items = generated(time.time(), size)
    config = Config.model_validate(
        {"accounts": [{"vendor": "fivetran", "name": "bench", "api_key": "k", "api_secret": "s"}]}
    )
    t0 = time.process_time()
    connectors = fivetran.translate(items)
    t1 = time.process_time()
    snapshot, _ = build_snapshot(
        config.accounts[0], fivetran.STATES, PollResult(connectors=tuple(connectors)), time.time()
    )
    render_snapshot(snapshot)
    t2 = time.process_time()
    BaselineMetrics().rebuild("bench", connectors, fivetran.STATES)
    t3 = time.process_time()
    return {"translate_s": t1 - t0, "rebuild_s": t2 - t1, "baseline_rebuild_s": t3 - t2}


def run_size(size: int, seconds: float, tmp: Path) -> dict[str, Any]:
    print(f"== {size} connectors", flush=True)
    result: dict[str, Any] = {"size": size, **cpu_figures(size)}
    sim_port, exp_port, base_port = free_port(), free_port(), free_port()
    sim_cmd = [
        sys.executable,
        "-m",
        "exporter",
        "simulate",
        "--port",
        str(sim_port),
        "--fleet-size",
        f"fivetran={size}",
        "--fleet-size",
        f"bindbee={max(9, size // 100)}",
    ]
    with process(sim_cmd, tmp / f"sim-{size}.log"):
        wait_ready(f"http://127.0.0.1:{sim_port}/_control/fivetran/connectors", 120)
        from exporter.simulator import Simulator

        accounts = Simulator().accounts()
        for account in accounts:
            account["base_url"] = account["base_url"].replace(
                "127.0.0.1:0", f"127.0.0.1:{sim_port}"
            )
            account["base_url"] = re.sub(
                r"127\.0\.0\.1:\d+", f"127.0.0.1:{sim_port}", account["base_url"]
            )
            account["poll_interval"] = "1h" if account["vendor"] == "fivetran" else SMALL_INTERVAL
        config = tmp / f"config-{size}.yml"
        config.write_text(
            yaml.safe_dump({"log_format": "json", "poll_timeout": "10m", "accounts": accounts})
        )
        exp_cmd = [
            sys.executable,
            "-m",
            "exporter",
            "run",
            "--config",
            str(config),
            "--listen-address",
            f"127.0.0.1:{exp_port}",
        ]
        with process(exp_cmd, tmp / f"exporter-{size}.log") as exporter:
            url = f"http://127.0.0.1:{exp_port}"
            started = time.monotonic()
            wait_ready(url + "/readyz", 600)
            result["ready_after_s"] = time.monotonic() - started
            text = get(url + "/metrics")
            ft = '{account="demo",vendor="fivetran"}'
            result["api_requests_per_poll"] = metric(
                text,
                'connector_exporter_api_requests_total{account="demo",code="200",vendor="fivetran"}',
            )
            result["min_pages"] = math.ceil(size / 1000)
            result["poll_wall_s"] = metric(text, f"connector_exporter_poll_duration_seconds{ft}")
            result["body_plain_mb"] = len(text.encode()) / 1e6
            runs = {}
            for encoding, clients in SCENARIOS:
                bb = '{account="demo",vendor="bindbee"}'
                before = metric(get(url + "/metrics"), f"connector_exporter_polls_total{bb}")
                t = time.monotonic()
                wall = time.time()
                run = wrk(
                    url + "/metrics",
                    gzip=encoding == "gzip",
                    clients=clients,
                    seconds=seconds,
                    timeout=60,
                )
                elapsed = time.monotonic() - t
                # How late did the 2 s account's polls start while wrk hammered /metrics? Later
                # than the interval plus APScheduler's jitter means the event loop was held.
                starts = poll_starts(tmp / f"exporter-{size}.log", "bindbee", wall, wall + elapsed)
                gaps = [b - a for a, b in itertools.pairwise(starts)]
                run["max_poll_delay_s"] = max([g - SMALL_INTERVAL * 1.1 for g in gaps] + [0.0])
                after_text = get(url + "/metrics")
                run["small_account_polls"] = (
                    metric(after_text, f"connector_exporter_polls_total{bb}") - before
                )
                run["small_account_polls_expected"] = math.floor(elapsed / SMALL_INTERVAL)
                run["small_account_poll_s"] = metric(
                    after_text, f"connector_exporter_poll_duration_seconds{bb}"
                )
                runs[f"{encoding}_c{clients}"] = run
                print(f"   ours {encoding} c{clients}: {run}", flush=True)
            result["ours"] = runs
            result["peak_rss_mb"] = peak_rss_mb(exporter.pid)
    # the baseline: same connectors, Gauge objects, generate_latest per scrape
    with process(
        [sys.executable, "-m", "bench.baseline", "--port", str(base_port), "--size", str(size)],
        tmp / f"baseline-{size}.log",
    ) as baseline:
        url = f"http://127.0.0.1:{base_port}/metrics"
        wait_log(tmp / f"baseline-{size}.log", "ready", 900)
        t = time.monotonic()
        get(url)
        single = time.monotonic() - t
        runs = {}
        for encoding, clients in SCENARIOS:
            if clients > 1 and single > 2:
                runs[f"{encoding}_c{clients}"] = {"skipped": f"one scrape takes {single:.1f}s"}
                continue
            # long enough for every client to finish a few scrapes at the baseline's pace
            duration = min(120.0, max(seconds, 3 * clients * single))
            run = wrk(
                url,
                gzip=encoding == "gzip",
                clients=clients,
                seconds=duration,
                timeout=duration + 10,
            )
            runs[f"{encoding}_c{clients}"] = run
            print(f"   baseline {encoding} c{clients}: {run}", flush=True)
        result["baseline"] = runs
        result["baseline_peak_rss_mb"] = peak_rss_mb(baseline.pid)
    return result


def machine() -> dict[str, str]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "memory_gb": f"{int(mem) / 1024 / 1024:.0f}",
        "python": platform.python_version(),
        "os": platform.platform(),
        "wrk": subprocess.run(
            ["wrk", "-v"], capture_output=True, text=True, check=False
        ).stdout.split("\n")[0],
    }


def fmt(value: float, digits: int = 1) -> str:
    return (
        "—"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else f"{value:.{digits}f}"
    )


def ratio(ours: float, base: float) -> str:
    if not base or math.isnan(base) or math.isnan(ours):
        return "—"
    return f"{ours / base:.3f}×" if ours / base < 0.1 else f"{ours / base:.2f}×"


def table(results: list[dict[str, Any]]) -> str:
    rows = [
        "| connectors | API requests per poll (min) | poll wall time | translate CPU | rebuild CPU (baseline) | peak RSS (baseline) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        rows.append(
            f"| {r['size']:,} | {r['api_requests_per_poll']:.0f} ({r['min_pages']}) | {r['poll_wall_s']:.2f} s | "
            f"{r['translate_s']:.2f} s | {r['rebuild_s']:.2f} s ({r['baseline_rebuild_s']:.2f} s, {ratio(r['rebuild_s'], r['baseline_rebuild_s'])}) | "
            f"{r['peak_rss_mb']:.0f} MB ({r['baseline_peak_rss_mb']:.0f} MB) |"
        )
    rows += [
        "",
        "`/metrics` latency, p50 / p99 in ms (baseline in brackets, ratio = ours / baseline); errors = non-2xx + socket errors:",
        "",
        "| connectors | body | clients | ours p50 / p99 | baseline p50 / p99 | p99 ratio | requests | errors | 2 s polls (expected) | worst poll delay |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        for key, run in r["ours"].items():
            base = r["baseline"].get(key, {})
            encoding, clients = key.split("_c")
            if "skipped" in base:
                base_text, rat = f"({base['skipped']})", "—"
            else:
                base_text = (
                    f"{fmt(base.get('p50_ms', math.nan))} / {fmt(base.get('p99_ms', math.nan))}"
                )
                rat = ratio(run["p99_ms"], base.get("p99_ms", math.nan))
            rows.append(
                f"| {r['size']:,} | {encoding} | {clients} | {fmt(run['p50_ms'])} / {fmt(run['p99_ms'])} | {base_text} | {rat} | "
                f"{run['requests']} | {run['errors']} | {run['small_account_polls']:.0f} ({run['small_account_polls_expected']}) | "
                f"{run.get('max_poll_delay_s', math.nan):.2f} s |"
            )
    return "\n".join(rows)


def main() -> int:
    if shutil.which("wrk") is None:
        print("wrk not found: `apt-get install wrk` (make bench installs it)", file=sys.stderr)
        return 1
    sizes = [int(s) for s in os.environ.get("BENCH_SIZES", "1000,10000,50000").split(",")]
    seconds = float(os.environ.get("BENCH_SECONDS", "10"))
    RESULTS.mkdir(parents=True, exist_ok=True)
    tmp = RESULTS / "logs"
    tmp.mkdir(exist_ok=True)
    results = []
    for size in sizes:
        results.append(run_size(size, seconds, tmp))
        # saved after every size: a crash later does not lose what was measured
        (RESULTS / "partial.json").write_text(json.dumps(results, indent=2))
    machine_info = machine()
    report = {
        "machine": machine_info,
        "seconds_per_run": seconds,
        "results": results,
        "date": time.strftime("%Y-%m-%d"),
    }
    (RESULTS / "latest.json").write_text(json.dumps(report, indent=2))
    text = table(results)
    print(text)
    if DOC.exists():
        doc = DOC.read_text()
        start, end = "<!-- bench:start -->", "<!-- bench:end -->"
        if start in doc and end in doc:
            m = machine_info
            block = (
                f"{start}\nMeasured {time.strftime('%Y-%m-%d')} on {m['cpu']}, {m['cores']} cores, "
                f"{m['memory_gb']} GB, Python {m['python']}, {m['wrk']}; {seconds:g} s per wrk run.\n\n"
                f"{text}\n{end}"
            )
            DOC.write_text(doc[: doc.index(start)] + block + doc[doc.index(end) + len(end) :])
    return 0


if __name__ == "__main__":
    sys.exit(main())

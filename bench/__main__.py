"""`make bench`: the exporter against the simulators at 1k, 10k and 50k connectors, and more.

For each size: the simulators (a Fivetran fleet of that size, page size 1000, plus the other
vendors' curated fleets) and the exporter run as separate processes; `wrk` (Debian) scrapes
/metrics from a third. The same figures are taken from a baseline built the obvious way
(bench/baseline.py) and reported as ratios. Then, per size, scrapes at Prometheus' cadence
(bench/cadence.py) against the same gzip bytes served from memory (bench/static.py), and the
peak RSS (VmHWM) after a second poll, when the old and the new snapshot coexist.

Also: memory-only sizes (100k), 500 accounts of 10 connectors, a real Prometheus scraping 10k
connectors with and without a deny list, and Apideck with 1,000 consumers at 150 ms per request.
Results go to bench/results/latest.json and the tables in docs/performance.md.

Environment: BENCH_SIZES=1000,10000,50000; BENCH_BASELINE_SIZES (default: BENCH_SIZES);
BENCH_SECONDS=10 (per wrk run); BENCH_MEMORY_SIZES=100000; BENCH_ACCOUNTS=500;
BENCH_PROMETHEUS_SIZE=10000, BENCH_PROMETHEUS_SECONDS=180; BENCH_APIDECK_CONSUMERS=1000;
BENCH_CADENCE_SCRAPES=15. A size or count of 0 skips that part.
"""

from __future__ import annotations

import contextlib
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
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from bench import cadence
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
# A deny list that keeps every shipped alert working (alerts/*.rules.yml read none of these);
# some dashboard panels go empty. Used for the Prometheus-side figures.
LEAN_DENYLIST = (
    "connector_(setup|sync)_state",
    "connector_last_failure_.*",
    "connector_last_success_timestamp_seconds",
    "connector_last_sync_start_timestamp_seconds",
    "connector_next_sync_timestamp_seconds",
    "connector_relink_needed_since_timestamp_seconds",
    "connector_warnings",
    "connector_tasks",
)
FT = '{account="demo",vendor="fivetran"}'


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


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


def status_mb(pid: int, field: str) -> float:
    """A size in /proc/<pid>/status (`VmRSS`, `VmHWM`), in MB; NaN when it is not there."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return math.nan


def peak_rss_mb(pid: int) -> float:
    return status_mb(pid, "VmHWM")


def rss_mb(pid: int) -> float:
    return status_mb(pid, "VmRSS")


def metric_sum(text: str, prefix: str, needle: str = "") -> float:
    """The sum of every sample whose line starts with `prefix` and contains `needle`."""
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(prefix) and needle in line
    )


def wait_until(what: str, check: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {timeout}s")
        time.sleep(0.5)


def exporter_args(*args: str) -> list[str]:
    """The exporter's command line with `args`, run by this interpreter."""
    return [sys.executable, "-m", "exporter", *args]


def run_args(config: Path, port: int, *extra: str) -> list[str]:
    """`connector-exporter run` with `config`, listening on 127.0.0.1:`port`."""
    return exporter_args(
        "run", "--config", str(config), "--listen-address", f"127.0.0.1:{port}", *extra
    )


def start_simulator(tmp: Path, tag: str, *sizes: str) -> tuple[Any, int]:
    port = free_port()
    args = exporter_args("simulate", "--port", str(port))
    for size in sizes:
        args += ["--fleet-size", size]
    return process(args, tmp / f"sim-{tag}.log"), port


def sim_accounts(port: int) -> list[dict[str, Any]]:
    from exporter.simulator import Simulator

    accounts = Simulator().accounts()
    for account in accounts:
        account["base_url"] = re.sub(r"127\.0\.0\.1:\d+", f"127.0.0.1:{port}", account["base_url"])
    return accounts


def start_exporter(
    tmp: Path, tag: str, config: dict[str, Any], *extra: str
) -> tuple[Any, str, Path]:
    path = tmp / f"config-{tag}.yml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    args = run_args(path, port, *extra)
    return process(args, tmp / f"exporter-{tag}.log"), f"http://127.0.0.1:{port}", path


@contextmanager
def ready_exporter(
    tmp: Path, tag: str, config: dict[str, Any], timeout: float, result: dict[str, Any]
) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    """The exporter on `config` once /readyz answers; `result["ready_after_s"]` says how soon."""
    exporter, url, path = start_exporter(tmp, tag, config)
    with exporter as proc:
        started = time.monotonic()
        wait_ready(url + "/readyz", timeout)
        result["ready_after_s"] = time.monotonic() - started
        yield proc, url, path


def second_poll(
    proc: subprocess.Popen[bytes], url: str, path: Path, config: dict[str, Any], series: str
) -> None:
    """Make the account of `series` poll again now: a reload that changes its interval.

    Its new runner keeps the last good state, so the old snapshot and its rendering live on
    while the new poll parses, translates and renders: the peak a running exporter sees at
    every poll.
    """
    before = metric(get(url + "/metrics"), series)
    for account in config["accounts"]:
        if account["vendor"] == "fivetran":
            account["poll_interval"] = "3599s"
    path.write_text(yaml.safe_dump(config))
    proc.send_signal(signal.SIGHUP)
    wait_until(
        "second poll", lambda: metric(get(url + "/metrics"), series) >= before + 1, timeout=900
    )


def cadence_figures(url: str, tmp: Path, tag: str) -> dict[str, Any]:
    """Scrapes 1+ s apart, regular and irregular, against the same bytes from memory."""
    n = env_int("BENCH_CADENCE_SCRAPES", 15)
    out: dict[str, Any] = {
        "regular": cadence.at_cadence(url + "/metrics", n, regular=True),
        "irregular": cadence.at_cadence(url + "/metrics", n, regular=False),
    }
    scraper = cadence.Scraper(url + "/metrics")
    _, body = scraper.scrape()
    scraper.close()
    out["gzip_mb"] = len(body) / 1e6
    body_file = tmp / f"body-{tag}.gz"
    body_file.write_bytes(body)
    port = free_port()
    log = tmp / f"static-{tag}.log"
    args = [sys.executable, "-m", "bench.static", "--port", str(port), "--body", str(body_file)]
    with process(args, log):
        wait_log(log, "ready", 60)
        out["static"] = cadence.back_to_back(f"http://127.0.0.1:{port}/metrics", n)
    print(f"   cadence {tag}: {out}", flush=True)
    return out


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
    sim_cmd = exporter_args(
        "simulate",
        "--port",
        str(sim_port),
        "--fleet-size",
        f"fivetran={size}",
        "--fleet-size",
        f"bindbee={max(9, size // 100)}",
    )
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
        exp_cmd = run_args(config, exp_port)
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
            result["cadence"] = cadence_figures(url, tmp, str(size))
            result["peak_rss_first_poll_mb"] = peak_rss_mb(exporter.pid)
            second_poll(
                exporter,
                url,
                config,
                yaml.safe_load(config.read_text()),
                f"connector_exporter_polls_total{ft}",
            )
            result["peak_rss_mb"] = peak_rss_mb(exporter.pid)
            result["rss_after_mb"] = rss_mb(exporter.pid)
    baseline_sizes = os.environ.get("BENCH_BASELINE_SIZES")
    if baseline_sizes is not None and str(size) not in baseline_sizes.split(","):
        result["baseline"] = {}
        result["baseline_peak_rss_mb"] = math.nan
        return result
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


def run_memory(size: int, tmp: Path) -> dict[str, Any]:
    """A size too large for the baseline: readiness, cadence, and the peak after a second poll."""
    print(f"== {size} connectors (memory)", flush=True)
    result: dict[str, Any] = {"size": size}
    sim, sim_port = start_simulator(tmp, str(size), f"fivetran={size}")
    with sim:
        wait_ready(f"http://127.0.0.1:{sim_port}/_control/fivetran/connectors", 300)
        accounts = [a for a in sim_accounts(sim_port) if a["vendor"] == "fivetran"]
        accounts[0]["poll_interval"] = "1h"
        config = {"log_format": "json", "poll_timeout": "15m", "accounts": accounts}
        with ready_exporter(tmp, str(size), config, 900, result) as (proc, url, path):
            text = get(url + "/metrics")
            result["poll_wall_s"] = metric(text, f"connector_exporter_poll_duration_seconds{FT}")
            result["cadence"] = cadence_figures(url, tmp, str(size))
            result["peak_rss_first_poll_mb"] = peak_rss_mb(proc.pid)
            second_poll(proc, url, path, config, f"connector_exporter_polls_total{FT}")
            result["peak_rss_mb"] = peak_rss_mb(proc.pid)
            result["rss_after_mb"] = rss_mb(proc.pid)
    print(f"   {result}", flush=True)
    return result


def run_accounts(count: int, per: int, tmp: Path) -> dict[str, Any]:
    """`count` accounts of `per` connectors each: the fixed cost of an account."""
    print(f"== {count} accounts of {per} connectors", flush=True)
    result: dict[str, Any] = {"accounts": count, "per_account": per}
    sim, sim_port = start_simulator(tmp, "accounts", f"fivetran={per}")
    with sim:
        wait_ready(f"http://127.0.0.1:{sim_port}/_control/fivetran/connectors", 120)
        template = next(a for a in sim_accounts(sim_port) if a["vendor"] == "fivetran")
        accounts = [
            {**template, "name": f"account-{i:04d}", "poll_interval": "30s"} for i in range(count)
        ]
        config = {"log_format": "json", "poll_timeout": "5m", "accounts": accounts}
        with ready_exporter(tmp, "accounts", config, 900, result) as (proc, url, _):

            def polled_twice() -> bool:
                text = get(url + "/metrics")
                return metric_sum(text, "connector_exporter_polls_total{") >= 2 * count

            wait_until("every account polled twice", polled_twice, 900)
            result["cadence"] = cadence_figures(url, tmp, "accounts")
            result["peak_rss_mb"] = peak_rss_mb(proc.pid)
            result["rss_after_mb"] = rss_mb(proc.pid)
    print(f"   {result}", flush=True)
    return result


def prometheus_query(base: str, query: str) -> float:
    url = base + "/api/v1/query?" + urllib.parse.urlencode({"query": query})
    data = json.loads(get(url))
    values = [float(r["value"][1]) for r in data["data"]["result"]]
    return sum(values) if values else math.nan


def run_prometheus(size: int, seconds: float, tmp: Path) -> dict[str, Any]:
    """A real Prometheus scraping `size` connectors every 15 s, with and without a deny list.

    Three Prometheus servers side by side: one per exporter, and one scraping nothing (its
    own memory floor).
    """
    print(f"== Prometheus, {size} connectors, {seconds:g} s", flush=True)
    result: dict[str, Any] = {"size": size, "seconds": seconds, "denylist": list(LEAN_DENYLIST)}
    sim, sim_port = start_simulator(tmp, "prometheus", f"fivetran={size}")
    with sim, contextlib.ExitStack() as stack:
        wait_ready(f"http://127.0.0.1:{sim_port}/_control/fivetran/connectors", 300)
        accounts = [a for a in sim_accounts(sim_port) if a["vendor"] == "fivetran"]
        accounts[0]["poll_interval"] = "5m"
        config = {"log_format": "json", "poll_timeout": "10m", "accounts": accounts}
        exporters = {
            "full": start_exporter(tmp, "prom-full", config),
            "lean": start_exporter(
                tmp, "prom-lean", config, "--metric-denylist", ",".join(LEAN_DENYLIST)
            ),
        }
        procs = {name: stack.enter_context(cm) for name, (cm, _, _) in exporters.items()}
        for _, url, _ in exporters.values():
            wait_ready(url + "/readyz", 900)
        proms: dict[str, tuple[subprocess.Popen[bytes], str]] = {}
        for name in ("full", "lean", "idle"):
            data = tmp / f"prometheus-{name}"
            shutil.rmtree(data, ignore_errors=True)
            data.mkdir()
            scrape = []
            if name != "idle":
                target = exporters[name][1].removeprefix("http://")
                scrape = [
                    {"job_name": "connector-exporter", "static_configs": [{"targets": [target]}]}
                ]
            prom_config = {
                "global": {"scrape_interval": "15s", "scrape_timeout": "10s"},
                "scrape_configs": scrape,
            }
            (data / "prometheus.yml").write_text(yaml.safe_dump(prom_config))
            port = free_port()
            args = [
                "prometheus",
                f"--config.file={data / 'prometheus.yml'}",
                f"--storage.tsdb.path={data / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--storage.tsdb.retention.time=1h",
            ]
            proc = stack.enter_context(process(args, tmp / f"prometheus-{name}.log"))
            proms[name] = (proc, f"http://127.0.0.1:{port}")
        for _, base in proms.values():
            wait_ready(base + "/-/ready", 120)
        time.sleep(seconds)  # a benchmark's run length, not a wait for a condition
        for name, (proc, base) in proms.items():
            own = get(base + "/metrics")
            figures: dict[str, Any] = {
                "head_series": metric(own, "prometheus_tsdb_head_series"),
                "rss_mb": rss_mb(proc.pid),
                "peak_rss_mb": peak_rss_mb(proc.pid),
            }
            if name != "idle":
                job = '{job="connector-exporter"}'
                figures["samples_per_scrape"] = prometheus_query(
                    base, f"scrape_samples_scraped{job}"
                )
                figures["connector_series"] = prometheus_query(
                    base, 'count({__name__=~"connector_.+",__name__!~"connector_exporter_.+"})'
                )
                figures["series_per_connector"] = figures["connector_series"] / size
                figures["scrape_duration_avg_ms"] = 1e3 * prometheus_query(
                    base, f"avg_over_time(scrape_duration_seconds{job}[1h])"
                )
                figures["scrape_duration_max_ms"] = 1e3 * prometheus_query(
                    base, f"max_over_time(scrape_duration_seconds{job}[1h])"
                )
                figures["scrapes"] = prometheus_query(base, f"count_over_time(up{job}[1h])")
                figures["exporter_peak_rss_mb"] = peak_rss_mb(procs[name].pid)
            result[name] = figures
    print(f"   {result}", flush=True)
    return result


def run_apideck(consumers: int, latency: float, tmp: Path) -> dict[str, Any]:
    """Apideck with `consumers` Vault consumers of 10 connections, `latency` s per request.

    The latency comes from the simulator's `slow` fault on every request (until cleared).
    """
    print(f"== Apideck, {consumers} consumers at {latency * 1e3:.0f} ms per request", flush=True)
    result: dict[str, Any] = {"consumers": consumers, "latency_s": latency}
    sim, sim_port = start_simulator(tmp, "apideck", f"apideck={consumers * 10}")
    with sim:
        base = f"http://127.0.0.1:{sim_port}"
        wait_ready(base + "/_control/apideck/connectors", 300)
        request = urllib.request.Request(
            base + "/_control/apideck/faults",
            data=json.dumps({"mode": "slow", "delay": latency}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        urllib.request.urlopen(request, timeout=30).read()
        accounts = [a for a in sim_accounts(sim_port) if a["vendor"] == "apideck"]
        accounts[0]["poll_interval"] = "1h"
        config = {"log_format": "json", "poll_timeout": "30m", "accounts": accounts}
        with ready_exporter(tmp, "apideck", config, 1900, result) as (proc, url, _):
            text = get(url + "/metrics")
            ad = '{account="demo",vendor="apideck"}'
            result["poll_wall_s"] = metric(text, f"connector_exporter_poll_duration_seconds{ad}")
            result["poll_success"] = metric(text, f"connector_exporter_poll_success{ad}")
            result["connectors"] = metric(text, f"connector_exporter_connectors{ad}")
            result["api_requests"] = metric_sum(
                text, "connector_exporter_api_requests_total{", 'vendor="apideck"'
            )
            result["peak_rss_mb"] = peak_rss_mb(proc.pid)
    print(f"   {result}", flush=True)
    return result


def machine() -> dict[str, str]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
    return {
        "load": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
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
            f"{fmt(r['peak_rss_mb'], 0)} MB ({fmt(r['baseline_peak_rss_mb'], 0)} MB) |"
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


def cadence_row(label: str, c: dict[str, Any]) -> str:
    static = c["static"]["p50_ms"]
    reg, irr = c["regular"], c["irregular"]
    return (
        f"| {label} | {c['gzip_mb']:.2f} MB | {fmt(static, 2)} | "
        f"{fmt(reg['p50_ms'], 2)} / {fmt(reg['max_ms'], 1)} | {reg['p50_ms'] / static:.1f}× | "
        f"{fmt(irr['p50_ms'], 2)} / {fmt(irr['max_ms'], 1)} | {irr['p50_ms'] / static:.1f}× |"
    )


def extra_tables(report: dict[str, Any]) -> str:
    """Cadence, memory, the Prometheus side and Apideck, from one run's report."""
    results, memory = report["results"], report.get("memory", [])
    accounts, prom, apideck = (
        report.get("accounts"),
        report.get("prometheus"),
        report.get("apideck"),
    )
    rows = [
        "",
        "Scrapes at Prometheus' cadence (gzip, one at a time, each in a new second; latency to"
        " the last byte in ms). *From memory*: the same gzip bytes served by a bare aiohttp"
        " handler, back to back. *Regular*: every 1.5 s, as Prometheus (the exporter predicts"
        " the second and renders its ages ahead). *Irregular*: 1.0–2.6 s apart at random, so"
        " the ages are rendered on demand:",
        "",
        "| fleet | gzip body | from memory p50 | regular p50 / max | ratio | irregular p50 / max | ratio |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in [*results, *memory]:
        if "cadence" in r:
            rows.append(cadence_row(f"{r['size']:,} connectors", r["cadence"]))
    if accounts:
        label = f"{accounts['accounts']} accounts × {accounts['per_account']}"
        rows.append(cadence_row(label, accounts["cadence"]))
    rows += [
        "",
        "Exporter memory: peak RSS (VmHWM) after the first poll, and after a second one (the old"
        " snapshot and its rendering live on while the new poll is parsed, translated and"
        " rendered); RSS at the end:",
        "",
        "| fleet | peak after first poll | peak after second poll | RSS at the end |",
        "| --- | --- | --- | --- |",
    ]
    for r in [*results, *memory]:
        rows.append(
            f"| {r['size']:,} connectors | {fmt(r.get('peak_rss_first_poll_mb', math.nan), 0)} MB"
            f" | {fmt(r['peak_rss_mb'], 0)} MB | {fmt(r.get('rss_after_mb', math.nan), 0)} MB |"
        )
    if accounts:
        rows.append(
            f"| {accounts['accounts']} accounts × {accounts['per_account']} connectors"
            f" (every account polled twice) | — | {fmt(accounts['peak_rss_mb'], 0)} MB |"
            f" {fmt(accounts['rss_after_mb'], 0)} MB |"
        )
    if prom:
        idle = prom["idle"]
        rows += [
            "",
            f"The Prometheus side: Prometheus {prometheus_version()} scraping"
            f" {prom['size']:,} connectors every 15 s for {prom['seconds']:g} s, next to one"
            f" scraping nothing ({fmt(idle['rss_mb'], 0)} MB RSS). *Lean* denies"
            f" `{'`, `'.join(prom['denylist'])}` (every shipped alert still works). *Scrape"
            " duration* is Prometheus' `scrape_duration_seconds`, which includes parsing and"
            " appending every sample (the exporter's side is in the cadence table):",
            "",
            "| exporter | series per connector | samples per scrape | head series | Prometheus RSS (peak) | above idle | per head series | scrape duration avg / max | exporter peak RSS |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for name in ("full", "lean"):
            f = prom[name]
            above = f["rss_mb"] - idle["rss_mb"]
            per_series = above * 1024 / max(1.0, f["head_series"] - idle["head_series"])
            rows.append(
                f"| {name} | {f['series_per_connector']:.1f} | {f['samples_per_scrape']:,.0f} |"
                f" {f['head_series']:,.0f} | {f['rss_mb']:.0f} MB ({f['peak_rss_mb']:.0f} MB) |"
                f" {above:.0f} MB | {per_series:.1f} KiB | {f['scrape_duration_avg_ms']:.1f} /"
                f" {f['scrape_duration_max_ms']:.1f} ms | {f['exporter_peak_rss_mb']:.0f} MB |"
            )
        rows += [
            "",
            "Sizing (series = series per connector × connectors; Prometheus memory = the idle"
            " server + the measured memory per head series × series, extrapolated linearly from"
            f" the {prom['size']:,}-connector run, after {prom['seconds']:g} s of samples):",
            "",
            "| connectors | series (full) | Prometheus memory (full) | series (lean) | Prometheus memory (lean) |",
            "| --- | --- | --- | --- | --- |",
        ]
        for n in (1_000, 10_000, 50_000, 100_000):
            cells = []
            for name in ("full", "lean"):
                f = prom[name]
                per_series_mb = (f["rss_mb"] - idle["rss_mb"]) / max(
                    1.0, f["head_series"] - idle["head_series"]
                )
                series = f["series_per_connector"] * n
                cells.append(f"{series:,.0f} | {idle['rss_mb'] + per_series_mb * series:,.0f} MB")
            rows.append(f"| {n:,} | {' | '.join(cells)} |")
    if apideck:
        rows += [
            "",
            f"Apideck, {apideck['consumers']:,} Vault consumers of 10 connections, every request"
            f" delayed {apideck['latency_s'] * 1e3:.0f} ms by the simulator:",
            "",
            "| consumers | connections | API requests | poll wall time | peak RSS |",
            "| --- | --- | --- | --- | --- |",
            f"| {apideck['consumers']:,} | {apideck['connectors']:,.0f} |"
            f" {apideck['api_requests']:,.0f} | {apideck['poll_wall_s']:.1f} s |"
            f" {apideck['peak_rss_mb']:.0f} MB |",
        ]
    return "\n".join(rows)


def prometheus_version() -> str:
    out = (
        subprocess.run(
            ["prometheus", "--version"], capture_output=True, text=True, check=False
        ).stdout
        or ""
    )
    parts = out.split()
    return parts[2] if len(parts) > 2 else "?"


def main() -> int:
    if shutil.which("wrk") is None:
        print("wrk not found: `apt-get install wrk` (make bench installs it)", file=sys.stderr)
        return 1
    sizes = [int(s) for s in os.environ.get("BENCH_SIZES", "1000,10000,50000").split(",") if s]
    sizes = [s for s in sizes if s]
    seconds = float(os.environ.get("BENCH_SECONDS", "10"))
    memory_sizes = [
        int(s) for s in os.environ.get("BENCH_MEMORY_SIZES", "100000").split(",") if int(s or 0)
    ]
    RESULTS.mkdir(parents=True, exist_ok=True)
    tmp = RESULTS / "logs"
    tmp.mkdir(exist_ok=True)
    report: dict[str, Any] = {"machine": machine(), "seconds_per_run": seconds, "results": []}

    def save() -> None:
        # saved after every part: a crash later does not lose what was measured
        (RESULTS / "partial.json").write_text(json.dumps(report, indent=2))

    for size in sizes:
        report["results"].append(run_size(size, seconds, tmp))
        save()
    report["memory"] = [run_memory(size, tmp) for size in memory_sizes]
    save()
    if (count := env_int("BENCH_ACCOUNTS", 500)) > 0:
        report["accounts"] = run_accounts(count, 10, tmp)
        save()
    # Apideck mostly waits on the simulator's latency: it runs beside the Prometheus minutes.
    apideck: dict[str, Any] = {}
    thread = None
    if (consumers := env_int("BENCH_APIDECK_CONSUMERS", 1000)) > 0:
        thread = threading.Thread(
            target=lambda: apideck.update(run_apideck(consumers, 0.15, tmp)), daemon=True
        )
        thread.start()
    if (prom_size := env_int("BENCH_PROMETHEUS_SIZE", 10_000)) > 0:
        if shutil.which("prometheus") is None:
            print("prometheus not found: `apt-get install prometheus`", file=sys.stderr)
        else:
            prom_seconds = float(os.environ.get("BENCH_PROMETHEUS_SECONDS", "180"))
            report["prometheus"] = run_prometheus(prom_size, prom_seconds, tmp)
            save()
    if thread is not None:
        thread.join(timeout=1900)
        report["apideck"] = apideck or None
    report["date"] = time.strftime("%Y-%m-%d")
    (RESULTS / "latest.json").write_text(json.dumps(report, indent=2))
    write_doc(report)
    return 0


def write_doc(report: dict[str, Any]) -> None:
    """The tables of `report` into docs/performance.md, between the bench markers."""
    text = table(report["results"]) + "\n" + extra_tables(report)
    print(text)
    if not DOC.exists():
        return
    doc = DOC.read_text()
    start, end = "<!-- bench:start -->", "<!-- bench:end -->"
    if start in doc and end in doc:
        m = report["machine"]
        block = (
            f"{start}\nMeasured {report['date']} on {m['cpu']}, {m['cores']} cores, "
            f"{m['memory_gb']} GB, Python {m['python']}, {m['wrk']};"
            f" {report['seconds_per_run']:g} s per wrk run; load average at the start"
            f" {m.get('load', '?')} (the machine is shared with other work).\n\n{text}\n{end}"
        )
        DOC.write_text(doc[: doc.index(start)] + block + doc[doc.index(end) + len(end) :])


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--tables-from":
        # rewrite the doc's tables from a saved report (e.g. after merging a rerun into it)
        write_doc(json.loads(Path(sys.argv[2]).read_text()))
        sys.exit(0)
    sys.exit(main())

"""Never freeze (issue 12, item 4): catastrophic regexes, stuck threads at SIGTERM, half-open
and slowloris connections past the fd limit, /healthz under landing-page load at 100k
connectors. Every test runs the real daemon; the figures are printed for docs/reliability.md.
"""

from __future__ import annotations

import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import bcrypt
import httpx
import yaml

from tests.conftest import cli, free_port
from tests.reliability.hostile import (
    fivetran_account,
    fivetran_item,
    get,
    hostile_vendor,
    listing,
    metrics_when,
    sample,
    start,
    wait_until,
    write_config,
)


def check_config(config: Path) -> subprocess.CompletedProcess[str]:
    return cli("check-config", "--config", str(config), timeout=30)


def test_a_catastrophic_filter_cannot_freeze_the_daemon(tmp_path: Path) -> None:
    lookahead = write_config(
        tmp_path / "bad.yaml",
        [fivetran_account("a", "http://127.0.0.1:9/x", include=["(?=x)a"])],
    )
    done = check_config(lookahead)
    assert done.returncode == 2 and "accounts[0].include: item 0" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr

    with hostile_vendor() as vendor:
        # `(a+)+$` against 40 a's and a `!` is 2^40 steps for a backtracking engine.
        vendor.serve_json("v", listing([fivetran_item("c1", "a" * 40 + "!"), fivetran_item("c2")]))
        config = write_config(
            tmp_path / "config.yaml",
            [fivetran_account("a", vendor.url("v"), include=["(a+)+$", "^c2$"])],
        )
        assert check_config(config).returncode == 0
        daemon = start(config, tmp_path / "daemon.log")
        try:
            text = metrics_when(
                daemon,
                lambda t: sample(t, "connector_exporter_polls_total", account="a"),
                what="a poll",
            )
            assert sample(text, "connector_exporter_connectors", account="a") == 1
            for _ in range(10):  # polls go on every second; /healthz answers meanwhile
                started = time.monotonic()
                assert get(daemon, "/healthz", timeout=2).status_code == 200
                assert time.monotonic() - started < 1.0
        finally:
            assert daemon.stop() < 5.0


def test_sigterm_exits_within_5s_with_a_stuck_worker_thread(tmp_path: Path) -> None:
    """A check against a cost-20 hash runs for minutes on its thread; SIGTERM must not wait."""
    # A real cost-4 hash relabelled cost 20: same salt and digest, 2^16 times the work to check.
    stuck = bcrypt.hashpw(b"x", bcrypt.gensalt(4)).decode().replace("$04$", "$20$", 1)
    web = tmp_path / "web.yaml"
    web.write_text(yaml.safe_dump({"basic_auth_users": {"prom": stuck}}))
    config = write_config(
        tmp_path / "config.yaml",
        [fivetran_account("a", "http://127.0.0.1:9/x")],
        poll_interval="1h",
    )
    daemon = start(config, tmp_path / "daemon.log", "--web-config", str(web))
    try:
        wait_until(lambda: get(daemon, "/healthz").status_code == 200, what="up")
        with socket.create_connection(("127.0.0.1", daemon.port), timeout=5) as s:
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Basic cHJvbTp5\r\n\r\n")
            threads = Path(f"/proc/{daemon.proc.pid}/task")
            wait_until(lambda: len(list(threads.iterdir())) >= 2, what="the check's thread")
            took = daemon.stop(timeout=15)
    finally:
        daemon.stop()
    print(f"\nSIGTERM to exit with a stuck worker thread: {took:.2f} s")
    assert took < 5.0, f"exit took {took:.1f}s"


def test_connections_are_capped_and_stalled_ones_closed(tmp_path: Path) -> None:
    """Under a 256-fd limit: 400 idle sockets and a slowloris; /healthz must still answer."""
    config = write_config(
        tmp_path / "config.yaml",
        [fivetran_account("a", "http://127.0.0.1:9/x")],
        poll_interval="1h",
    )
    daemon = start(config, tmp_path / "daemon.log", limits={resource.RLIMIT_NOFILE: (256, 256)})
    idle: list[socket.socket] = []
    try:
        wait_until(lambda: get(daemon, "/healthz").status_code == 200, what="up")
        slow = socket.create_connection(("127.0.0.1", daemon.port), timeout=5)
        slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        slow_opened = time.monotonic()
        for _ in range(400):
            idle.append(socket.create_connection(("127.0.0.1", daemon.port), timeout=5))
        latencies = []
        for _ in range(20):
            started = time.monotonic()
            assert get(daemon, "/healthz", timeout=5).status_code == 200
            latencies.append(time.monotonic() - started)

        # the slowloris keeps sending a header byte a second; it is closed within ~10s
        def slowloris_closed() -> bool:
            try:
                slow.sendall(b"X")
                slow.settimeout(1.0)
                return slow.recv(1) == b""
            except TimeoutError:
                return False
            except OSError:
                return True

        wait_until(slowloris_closed, timeout=30, step=0.5, what="the slowloris closed")
        slow_lasted = time.monotonic() - slow_opened
        log = daemon.log_text()
    finally:
        for s in idle:
            s.close()
        daemon.stop()
    print(
        f"\nwith 400 idle sockets under a 256-fd limit: /healthz worst "
        f"{max(latencies) * 1000:.0f} ms; slowloris closed after {slow_lasted:.1f} s; "
        f"log {len(log)} bytes"
    )
    # the first probe waits behind the 400 queued connections being accepted (and evicted)
    assert max(latencies) < 5.0 and sorted(latencies)[len(latencies) // 2] < 0.2, latencies
    assert slow_lasted < 20
    assert len(log) < 50_000, "the log grew with accept errors"


PROBE_INTERVAL = 0.02


def test_healthz_stays_fast_while_clients_reload_the_page_at_100k(tmp_path: Path) -> None:
    """20 clients reloading / (wrk) over a 100k-connector fleet; /healthz p99 under 50 ms."""
    sim_port = free_port()
    sim_config = tmp_path / "sim.yaml"
    simulator = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "exporter",
            "simulate",
            "--fleet-size",
            "fivetran=100000",
            "--port",
            str(sim_port),
            "--write-config",
            str(sim_config),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    daemon = None
    try:
        wait_until(sim_config.exists, timeout=60, what="the simulator's config")
        raw = yaml.safe_load(wait_until(sim_config.read_text, what="config text"))
        accounts = [a for a in raw["accounts"] if a["vendor"] == "fivetran"]
        config = write_config(
            tmp_path / "config.yaml",
            accounts,
            poll_interval="5m",
            poll_timeout="5m",
            request_timeout="60s",
            log_level="info",
        )
        daemon = start(config, tmp_path / "daemon.log")
        metrics_when(
            daemon,
            lambda t: sample(t, "connector_exporter_connectors") == 100_000,
            timeout=300,
            what="100k connectors polled",
        )
        assert len(get(daemon, "/").text) > 10_000
        wrk = subprocess.Popen(
            ["wrk", "-t", "1", "-c", "20", "-d", "12s", daemon.url + "/"],
            stdout=subprocess.PIPE,
            text=True,
        )
        latencies: list[float] = []
        with httpx.Client(timeout=10) as client:
            deadline = time.monotonic() + 10
            time.sleep(1)  # wrk's connections are up
            while time.monotonic() < deadline:
                started = time.monotonic()
                assert client.get(daemon.url + "/healthz").status_code == 200
                latencies.append(time.monotonic() - started)
                time.sleep(PROBE_INTERVAL)
        out, _ = wrk.communicate(timeout=30)
    finally:
        if daemon is not None:
            daemon.stop()
        simulator.send_signal(signal.SIGTERM)
        simulator.wait(10)
    latencies.sort()
    p99 = latencies[max(0, int(len(latencies) * 0.99) - 1)]
    pages = next((line for line in out.splitlines() if "Requests/sec" in line), out[-200:])
    print(
        f"\n/healthz under / load at 100k connectors: p50 "
        f"{latencies[len(latencies) // 2] * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms over "
        f"{len(latencies)} probes; wrk on /: {pages.strip()}"
    )
    assert p99 < 0.050, f"/healthz p99 {p99 * 1000:.0f} ms"

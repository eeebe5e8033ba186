"""The demo fleet behind real processes: `connector-exporter simulate`, `connector-exporter run`
against it, and a Prometheus scraping it with the shipped rules. Every program binds port 0 and
the test reads the port it got from its log, so parallel test runs never race for a port."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.alerts.procs import EXPORTER, RULE_FILES, Proc, Processes, binary, wait_for


def listening(proc: Proc, pattern: str, procs: Processes, timeout: float = 30) -> int:
    """The port `proc` logged (first group of `pattern`); fail at once if it exits."""

    def probe() -> int | None:
        if not proc.alive():
            pytest.fail(f"{proc.name} exited before listening\n{procs.logs()}")
        m = re.search(pattern, proc.log.read_text(errors="replace"))
        return int(m.group(1)) if m else None

    return wait_for(f"{proc.name} to listen", probe, timeout, on_timeout=procs.logs)


def start_exporter(procs: Processes, workdir: Path, poll_interval: str) -> tuple[str, str]:
    """The simulators and the exporter polling them; (simulator URL, exporter URL)."""
    sim_config = workdir / "simulated.yml"
    sim = procs.start(
        "simulate",
        [str(EXPORTER), "simulate", "--port", "0", "--write-config", str(sim_config)],
    )
    sim_port = listening(sim, r"listening on http://127\.0\.0\.1:(\d+)", procs)
    wait_for(
        "the simulator's config", lambda: sim_config.exists() and sim_config.stat().st_size, 10
    )
    config = yaml.safe_load(sim_config.read_text())
    config.update(poll_interval=poll_interval, max_retries=0, request_timeout="5s")
    exporter_config = workdir / "exporter.yml"
    exporter_config.write_text(yaml.safe_dump(config))
    exporter = procs.start(
        "exporter",
        [str(EXPORTER), "run", "--config", str(exporter_config), "--listen-address", "127.0.0.1:0"],
    )
    port = listening(exporter, r'"listen": "127\.0\.0\.1:(\d+)"', procs)
    url = f"http://127.0.0.1:{port}"
    wait_for(
        "the exporter's first poll of every account",
        lambda: httpx.get(f"{url}/readyz", timeout=2).status_code == 200,
        30,
        on_timeout=procs.logs,
    )
    return f"http://127.0.0.1:{sim_port}", url


def start_prometheus(procs: Processes, workdir: Path, exporter_url: str, replicas: int = 1) -> str:
    """Prometheus scraping the exporter every second with the shipped rules; its URL.

    With `replicas` > 1 the one exporter is scraped that many times under the same job, each
    target with its own `instance` and `pod` as Kubernetes would label HA replicas: the series
    of two replicas that poll the same fleet, without a second fleet of polls."""
    config = workdir / "prometheus.yml"
    target = exporter_url.removeprefix("http://")
    targets: list[dict[str, Any]] = [{"targets": [target]}]
    if replicas > 1:
        targets = [
            {
                "targets": [target],
                "labels": {"instance": f"replica-{i}", "pod": f"connector-exporter-{i}"},
            }
            for i in range(replicas)
        ]
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(p) for p in RULE_FILES],
                "scrape_configs": [{"job_name": "connector-exporter", "static_configs": targets}],
            }
        )
    )
    prometheus = procs.start(
        "prometheus",
        [
            binary("prometheus"),
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'tsdb'}",
            "--web.listen-address=127.0.0.1:0",
        ],
    )
    port = listening(prometheus, r'msg="Listening on" address=127\.0\.0\.1:(\d+)', procs)
    return f"http://127.0.0.1:{port}"

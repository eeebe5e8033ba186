"""The real daemon as a subprocess: endpoints, negotiation, readiness, secrets, clean shutdown."""

from __future__ import annotations

import asyncio
import gzip
import json
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from exporter.simulator import Simulator
from tests.conftest import cli, sim_account, start_daemon

SENTINELS = {
    "fivetran_key": "SENTINEL-ft-key-8c1d2e",
    "fivetran_secret": "SENTINEL-ft-secret-77aa",
    "bindbee_token": "SENTINEL-bb-token-90ff",
    "connector_token": "SENTINEL-connector-token-31",
}


class Daemon:
    def __init__(self, proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
        self.proc, self.url, self.log = proc, url, log

    def logs(self) -> str:
        return self.log.read_text()


async def wait_for(
    client: httpx.AsyncClient, url: str, status: int = 200, timeout: float = 15
) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        try:
            response = await client.get(url)
            if response.status_code == status:
                return response
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} did not answer {status} within {timeout}s")
        await asyncio.sleep(0.1)


@pytest.fixture
async def secret_sim(sim: Simulator) -> Simulator:
    """The simulator, accepting sentinel credentials and serving sentinel connector tokens."""
    ft, bb = sim.vendors["fivetran"], sim.vendors["bindbee"]
    ft.api_key, ft.api_secret = SENTINELS["fivetran_key"], SENTINELS["fivetran_secret"]  # type: ignore[attr-defined]
    bb.token = SENTINELS["bindbee_token"]  # type: ignore[attr-defined]
    for connector in bb.connectors.values():
        connector["connector_token"] = SENTINELS["connector_token"]
    return sim


@pytest.fixture
async def daemon(secret_sim: Simulator, tmp_path: Path) -> AsyncIterator[Daemon]:
    config: dict[str, Any] = {
        "poll_interval": "1s",
        "max_retries": 0,
        "log_format": "json",
        "accounts": [
            {
                **{
                    k: v
                    for k, v in sim_account(secret_sim, "fivetran").items()
                    if k != "api_secret"
                },
                "api_key": "${FT_KEY}",
                "api_secret_file": str(tmp_path / "ft-secret"),
            },
            sim_account(secret_sim, "bindbee", token="${BB_TOKEN}"),
        ],
    }
    (tmp_path / "ft-secret").write_text(SENTINELS["fivetran_secret"] + "\n")
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(config))
    log = tmp_path / "daemon.log"
    env = {"FT_KEY": SENTINELS["fivetran_key"], "BB_TOKEN": SENTINELS["bindbee_token"], "PATH": ""}
    # A slow first page keeps the daemon un-ready long enough to observe /readyz say 503.
    secret_sim.vendors["fivetran"].fault = _slow_once()
    proc, port = start_daemon(path, log, "--log-level", "debug", env=env)
    try:
        yield Daemon(proc, f"http://127.0.0.1:{port}", log)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def _slow_once() -> Any:
    from exporter.simulator.base import Fault

    return Fault(mode="slow", count=1, delay=1.5)


async def test_daemon_end_to_end(daemon: Daemon, secret_sim: Simulator) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        try:
            await wait_for(client, daemon.url + "/healthz")
        except AssertionError as err:
            raise AssertionError(f"{err}; daemon output:\n{daemon.logs()}") from None
        not_ready = await client.get(daemon.url + "/readyz")
        assert not_ready.status_code == 503
        await wait_for(client, daemon.url + "/readyz")

        plain = await client.get(daemon.url + "/metrics")
        assert plain.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
        text = plain.text
        assert 'connector_info{account="demo",connector_id="ft_orders"' in text
        assert 'vendor="bindbee"' in text
        assert 'connector_exporter_poll_success{account="demo",vendor="fivetran"} 1.0' in text
        assert "connector_exporter_build_info{" in text and "process_resident_memory_bytes" in text

        om = await client.get(
            daemon.url + "/metrics",
            headers={"Accept": "application/openmetrics-text; version=1.0.0"},
        )
        assert om.headers["content-type"].startswith("application/openmetrics-text")
        assert om.text.endswith("# EOF\n")
        assert "# TYPE connector_health gauge" in om.text

        async with client.stream(
            "GET", daemon.url + "/metrics", headers={"Accept-Encoding": "gzip"}
        ) as raw:
            assert raw.headers["content-encoding"] == "gzip"
            body = b"".join([chunk async for chunk in raw.aiter_raw()])
        assert b"connector_health{" in gzip.decompress(body)

        page = await client.get(daemon.url + "/")
        assert page.headers["content-type"].startswith("text/html")
        assert "<td>fivetran</td><td>demo</td>" in page.text and ">ok<" in page.text

        # Break the credentials: the next polls fail with 401, the last good series stay.
        secret_sim.vendors["bindbee"].token = "rotated"  # type: ignore[attr-defined]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            text = (await client.get(daemon.url + "/metrics")).text
            if 'connector_exporter_poll_success{account="demo",vendor="bindbee"} 0.0' in text:
                break
            await asyncio.sleep(0.2)
        assert 'connector_exporter_poll_success{account="demo",vendor="bindbee"} 0.0' in text
        assert 'connector_info{account="demo",connector_id=' in text
        page = await client.get(daemon.url + "/")
        assert "failed" in page.text

    started = time.monotonic()
    daemon.proc.send_signal(signal.SIGTERM)
    assert daemon.proc.wait(timeout=10) == 0
    assert time.monotonic() - started < 5

    logs = daemon.logs()
    records = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    assert logs.count("\n") == len(records), "every log line is one JSON object"
    polls = [r for r in records if r.get("event") == "poll"]
    assert {r["vendor"] for r in polls} == {"fivetran", "bindbee"}
    ok = next(r for r in polls if r["outcome"] == "success")
    assert set(ok) >= {"vendor", "account", "connectors", "pages", "requests", "duration_seconds"}
    failed = next(r for r in polls if r["outcome"] == "failure")
    assert failed["reason"] == "auth_failed"
    assert failed["error"] == "GET /api/hris/v1/connectors: HTTP 401: Invalid or expired token"
    assert records[-1]["event"] == "stopped"

    everything = logs + text + page.text
    for name, sentinel in SENTINELS.items():
        assert sentinel not in everything, f"{name} leaked"


async def test_sigint_stops_a_daemon_with_a_poll_in_flight(sim: Simulator, tmp_path: Path) -> None:
    from exporter.simulator.base import Fault

    sim.vendors["fivetran"].fault = Fault(mode="slow", delay=60)
    path = tmp_path / "config.yml"
    path.write_text(
        yaml.safe_dump(
            {
                "request_timeout": "2m",
                "poll_timeout": "5m",
                "accounts": [sim_account(sim, "fivetran")],
            }
        )
    )
    proc, _ = start_daemon(path, None)
    try:
        deadline = time.monotonic() + 15
        while sim.vendors["fivetran"].in_flight == 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert sim.vendors["fivetran"].in_flight == 1
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
        assert time.monotonic() - started < 5
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


async def test_port_in_use_is_a_clean_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        path = tmp_path / "config.yml"
        path.write_text(
            "accounts: [{vendor: bindbee, name: a, token: t, base_url: 'http://127.0.0.1:9'}]\n"
        )
        result = cli(
            "run", "--config", str(path), "--listen-address", f"127.0.0.1:{port}", timeout=30
        )
    assert result.returncode == 2
    assert "error:" in result.stderr and "Traceback" not in result.stderr

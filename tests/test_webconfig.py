"""--web-config (TLS, client certificates, basic auth) and SIGHUP reload, on the real daemon."""

from __future__ import annotations

import asyncio
import signal
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bcrypt
import httpx
import pytest
import trustme
import yaml

from exporter.simulator import Simulator
from tests.conftest import cli, sim_account, start_daemon
from tests.test_daemon import wait_for

PASSWORD = "correct horse battery staple"


def start(config: Path, tmp: Path, *extra: str) -> tuple[subprocess.Popen[bytes], int, Path]:
    log = tmp / f"daemon-{len(list(tmp.glob('daemon-*.log')))}.log"
    proc, port = start_daemon(config, log, *extra)
    return proc, port, log


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def write_config(path: Path, sim: Simulator, **top: Any) -> Path:
    accounts = top.pop("accounts", None) or [sim_account(sim, "fivetran")]
    path.write_text(yaml.safe_dump({"poll_interval": "1s", "accounts": accounts, **top}))
    return path


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


def tls_files(ca: trustme.CA, tmp: Path, name: str = "server") -> tuple[Path, Path]:
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_path, key_path = tmp / f"{name}.crt", tmp / f"{name}.key"
    cert.private_key_pem.write_to_path(key_path)
    cert.cert_chain_pems[0].write_to_path(cert_path)
    return cert_path, key_path


async def test_tls_and_client_certificates(
    sim: Simulator, tmp_path: Path, ca: trustme.CA, procs: list[subprocess.Popen[bytes]]
) -> None:
    cert, key = tls_files(ca, tmp_path)
    ca.cert_pem.write_to_path(tmp_path / "ca.crt")
    web = tmp_path / "web.yml"
    web.write_text(
        yaml.safe_dump(
            {
                "tls_server_config": {
                    "cert_file": cert.name,  # relative to the web config file
                    "key_file": str(key),
                    "client_ca_file": "ca.crt",
                    "client_auth_type": "RequireAndVerifyClientCert",
                }
            }
        )
    )
    proc, port, log = start(
        write_config(tmp_path / "c.yml", sim), tmp_path, "--web-config", str(web)
    )
    procs.append(proc)
    client_cert = ca.issue_cert("scraper@example.com")
    trusted = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
    client_cert.configure_cert(trusted)
    async with httpx.AsyncClient(verify=trusted, timeout=5) as client:
        response = await wait_for(client, f"https://127.0.0.1:{port}/metrics")
        assert "connector_exporter_build_info" in response.text
    # No client certificate: the handshake is refused.
    anonymous = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
    async with httpx.AsyncClient(verify=anonymous, timeout=5) as client:
        with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
            await client.get(f"https://127.0.0.1:{port}/metrics")
    # Plain HTTP to a TLS port gets nothing useful.
    async with httpx.AsyncClient(timeout=5) as client:
        with pytest.raises(httpx.HTTPError):
            await client.get(f"http://127.0.0.1:{port}/metrics")
    assert '"tls": true' in log.read_text()


async def test_basic_auth_everywhere_but_healthz(
    sim: Simulator, tmp_path: Path, procs: list[subprocess.Popen[bytes]]
) -> None:
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    web = tmp_path / "web.yml"
    web.write_text(
        yaml.safe_dump(
            {
                "basic_auth_users": {"prometheus": hashed},
                "http_server_config": {"headers": {"X-Frame-Options": "deny"}},
            }
        )
    )
    proc, port, _ = start(write_config(tmp_path / "c.yml", sim), tmp_path, "--web-config", str(web))
    procs.append(proc)
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(timeout=5) as client:
        health = await wait_for(client, base + "/healthz")
        assert health.headers["x-frame-options"] == "deny"
        for path in ("/metrics", "/readyz", "/"):
            denied = await client.get(base + path)
            assert denied.status_code == 401, path
            assert denied.headers["www-authenticate"] == 'Basic realm="connector-exporter"'
            wrong = await client.get(base + path, auth=("prometheus", "wrong"))
            assert wrong.status_code == 401
            nobody = await client.get(base + path, auth=("nobody", PASSWORD))
            assert nobody.status_code == 401
        ok = await wait_for(
            client.__class__(auth=("prometheus", PASSWORD), timeout=5), base + "/readyz"
        )
        assert ok.text == "ready\n"
        metrics = await client.get(base + "/metrics", auth=("prometheus", PASSWORD))
        assert metrics.status_code == 200 and "connector_info{" in metrics.text


@pytest.mark.parametrize(
    ("web", "message"),
    [
        ({"basic_auth_users": {"a": "plaintext"}}, "expected a bcrypt hash"),
        (
            {"tls_server_config": {"cert_file": "x.crt", "key_file": "x.key"}},
            "cannot load certificates",
        ),
        (
            {"tls_server_config": {"cert_file": "a", "key_file": "b", "cipher_suites": []}},
            "not supported",
        ),
        (
            {"tls_server_config": {"cert_file": "a", "key_file": "b", "client_ca_file": "c"}},
            "client_auth_type is NoClientCert",
        ),
        ({"surprise": 1}, "Extra inputs are not permitted"),
    ],
)
def test_invalid_web_config_exits_2(tmp_path: Path, web: dict[str, Any], message: str) -> None:
    config = tmp_path / "c.yml"
    config.write_text("accounts: [{vendor: bindbee, name: a, token: t}]\n")
    path = tmp_path / "web.yml"
    path.write_text(yaml.safe_dump(web))
    result = cli("run", "--config", str(config), "--web-config", str(path), timeout=30)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


async def metrics_text(client: httpx.AsyncClient, base: str) -> str:
    return (await client.get(base + "/metrics")).text


async def wait_text(client: httpx.AsyncClient, base: str, needle: str, present: bool = True) -> str:
    deadline = time.monotonic() + 15
    while True:
        text = await metrics_text(client, base)
        if (needle in text) == present or time.monotonic() > deadline:
            return text
        await asyncio.sleep(0.2)


async def test_sighup_reloads_config_and_rejects_a_bad_one(
    sim: Simulator, tmp_path: Path, procs: list[subprocess.Popen[bytes]]
) -> None:
    config = write_config(tmp_path / "c.yml", sim)
    proc, port, log = start(config, tmp_path)
    procs.append(proc)
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(timeout=5) as client:
        await wait_for(client, base + "/readyz")
        text = await metrics_text(client, base)
        assert "connector_exporter_config_last_reload_successful 1.0" in text
        first_ts = _value(text, "connector_exporter_config_last_reload_success_timestamp_seconds")

        # A bad config: rejected, the old one keeps polling.
        config.write_text("accounts: [{vendor: nope}]\n")
        proc.send_signal(signal.SIGHUP)
        text = await wait_text(client, base, "connector_exporter_config_last_reload_successful 0.0")
        assert "connector_exporter_config_last_reload_successful 0.0" in text
        polls = _value(text, 'connector_exporter_polls_total{account="demo",vendor="fivetran"}')
        text = await wait_text(
            client, base, f'polls_total{{account="demo",vendor="fivetran"}} {polls}', False
        )
        assert (
            _value(text, 'connector_exporter_polls_total{account="demo",vendor="fivetran"}') > polls
        )

        # A good one: bindbee added, fivetran's interval changed; both visible.
        write_config(
            config,
            sim,
            accounts=[
                sim_account(sim, "fivetran", poll_interval="2s"),
                sim_account(sim, "bindbee"),
            ],
        )
        proc.send_signal(signal.SIGHUP)
        text = await wait_text(client, base, 'connector_info{account="demo",connector_id=', True)
        text = await wait_text(client, base, 'vendor="bindbee"')
        assert "connector_exporter_config_last_reload_successful 1.0" in text
        assert (
            _value(text, "connector_exporter_config_last_reload_success_timestamp_seconds")
            > first_ts
        )
        assert (
            'connector_exporter_poll_interval_seconds{account="demo",vendor="fivetran"} 2.0' in text
        )
        assert (
            _value(text, 'connector_exporter_polls_total{account="demo",vendor="fivetran"}') > polls
        )

        # Removing an account removes its series.
        write_config(config, sim, accounts=[sim_account(sim, "bindbee")])
        proc.send_signal(signal.SIGHUP)
        text = await wait_text(client, base, 'vendor="fivetran"', present=False)
        assert 'vendor="fivetran"' not in text and 'vendor="bindbee"' in text
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    logs = log.read_text()
    assert '"event": "reload_failed"' in logs and "accounts[0]: unknown vendor" in logs
    assert logs.count('"event": "reloaded"') == 2


async def test_sighup_rotates_basic_auth_password(
    sim: Simulator, tmp_path: Path, procs: list[subprocess.Popen[bytes]]
) -> None:
    web = tmp_path / "web.yml"

    def users(password: str) -> None:
        hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
        web.write_text(yaml.safe_dump({"basic_auth_users": {"prom": hashed}}))

    users("old-password")
    proc, port, _ = start(write_config(tmp_path / "c.yml", sim), tmp_path, "--web-config", str(web))
    procs.append(proc)
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(timeout=5) as client:
        await wait_for(client, base + "/healthz")
        assert (
            await client.get(base + "/metrics", auth=("prom", "old-password"))
        ).status_code == 200
        users("new-password")
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if (
                await client.get(base + "/metrics", auth=("prom", "new-password"))
            ).status_code == 200:
                break
            await asyncio.sleep(0.2)
        assert (
            await client.get(base + "/metrics", auth=("prom", "new-password"))
        ).status_code == 200
        assert (
            await client.get(base + "/metrics", auth=("prom", "old-password"))
        ).status_code == 401


def _value(text: str, series: str) -> float:
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{series} not in output")

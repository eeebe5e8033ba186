"""Secrets: sentinel values in every credential of all five vendors never come out anywhere.

tests/test_daemon.py checks Fivetran and Bindbee on the happy path; this sweep covers every
vendor's secrets (API keys and tokens in the config, Bindbee's `connector_token`, Versori's
credential `data`, OpenInt's connection `settings`, Apideck's connection `settings` in served
data), through polls that succeed and polls that fail in every way the simulators can fail,
including a vendor that echoes the request's token in its 401 body. It looks at the daemon's
logs at debug level, /metrics in both formats, the landing page, /healthz and /readyz, the
VendorError messages raised in-process, and `check-config` on a broken file holding them.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from aiohttp import web

from exporter.errors import VendorError
from exporter.scheduler import AccountRunner
from exporter.simulator import Simulator
from exporter.simulator.base import FAULT_MODES, Fault
from tests.conftest import free_port, make_config, render
from tests.reliability.helpers import threaded_simulator
from tests.test_daemon import wait_for

SENTINELS = {
    "fivetran_api_key": "SENTINEL-ft-key-5a1e",
    "fivetran_api_secret": "SENTINEL-ft-secret-9b2f",
    "bindbee_token": "SENTINEL-bb-token-77c3",
    "bindbee_connector_token": "SENTINEL-bb-connector-token-1d4a",
    "apideck_api_key": "SENTINEL-apideck-key-e6f0",
    "apideck_connection_settings": "SENTINEL-apideck-settings-08b5",
    "openint_token": "SENTINEL-openint-token-c3d9",
    "openint_connection_settings": "SENTINEL-openint-settings-2e7b",
    "versori_token": "SENTINEL-versori-token-44aa",
    "versori_credential_data": "SENTINEL-versori-credential-data-f01c",
}


def plant(sim: Simulator) -> None:
    """Sentinel credentials the simulators accept, and sentinels in the data they serve."""
    v = sim.vendors
    v["fivetran"].api_key = SENTINELS["fivetran_api_key"]  # type: ignore[attr-defined]
    v["fivetran"].api_secret = SENTINELS["fivetran_api_secret"]  # type: ignore[attr-defined]
    v["bindbee"].token = SENTINELS["bindbee_token"]  # type: ignore[attr-defined]
    v["apideck"].api_key = SENTINELS["apideck_api_key"]  # type: ignore[attr-defined]
    v["openint"].token = SENTINELS["openint_token"]  # type: ignore[attr-defined]
    v["versori"].token = SENTINELS["versori_token"]  # type: ignore[attr-defined]
    for c in v["bindbee"].connectors.values():
        c["connector_token"] = SENTINELS["bindbee_connector_token"]
    for c in v["apideck"].connectors.values():
        c["settings"] = {"api_key": SENTINELS["apideck_connection_settings"]}
    for c in v["openint"].connectors.values():
        c["settings"] = {
            "oauth": {"credentials": {"access_token": SENTINELS["openint_connection_settings"]}}
        }
    for c in v["versori"].connectors.values():
        for group in ("action", "trigger"):
            for use in c["credentials"].get(group, []):
                use["credential"]["data"] = {"accessToken": SENTINELS["versori_credential_data"]}


def accounts(sim: Simulator) -> list[dict[str, Any]]:
    """Config accounts with the sentinel credentials (the simulators' own are replaced)."""
    keys = {
        "fivetran": {
            "api_key": SENTINELS["fivetran_api_key"],
            "api_secret": SENTINELS["fivetran_api_secret"],
        },
        "bindbee": {"token": SENTINELS["bindbee_token"]},
        "apideck": {"api_key": SENTINELS["apideck_api_key"]},
        "openint": {"token": SENTINELS["openint_token"]},
        "versori": {"token": SENTINELS["versori_token"]},
    }
    return [{**a, **keys[a["vendor"]]} for a in sim.accounts()]


def echo_tokens_in_401(sim: Simulator) -> None:
    """Every vendor's 401 body repeats the token it was sent (some real APIs do)."""
    for fake in sim.vendors.values():
        secret = next(v for k, v in SENTINELS.items() if k.startswith(fake.name))

        def answer(secret: str = secret) -> web.Response:
            return web.json_response({"message": f"invalid token {secret}"}, status=401)

        fake.unauthorized = answer  # type: ignore[method-assign]


def assert_clean(where: str, text: str) -> None:
    for name, sentinel in SENTINELS.items():
        assert sentinel not in text, f"{name} leaked into {where}"


# Every fault once per vendor, then rotated credentials (401 with the token echoed back).
SWEEP = [m for m in FAULT_MODES if m not in ("hang", "slow", "endless")]


async def test_no_secret_in_errors_of_any_fault() -> None:
    """The VendorError of every fault, for every vendor, holds no credential."""
    with threaded_simulator() as sim:
        plant(sim)
        echo_tokens_in_401(sim)
        config = make_config(accounts(sim), max_retries=0, request_timeout="1s")
        runners = [AccountRunner(a, config) for a in config.accounts]
        errors: list[str] = []
        try:
            for runner in runners:
                assert await runner.poll(), runner.status.last_error
                fake = sim.vendors[runner.status.vendor]
                for mode in SWEEP:
                    fake.fault = Fault(mode=mode, retry_after=None)
                    try:
                        await runner.adapter.poll()
                    except VendorError as err:
                        errors += [str(err), repr(err), str(err.__cause__)]
                    await runner.poll()
                    errors.append(runner.status.last_error)
                    fake.fault = None
            text = render([r.status for r in runners], now=time.time())
        finally:
            for runner in runners:
                await runner.aclose()
    assert any("invalid token [REDACTED]" in e for e in errors), "the echo reached an error"
    assert sum("HTTP" in e for e in errors) > len(runners) * 3
    assert_clean("VendorError messages", "\n".join(errors))
    assert_clean("/metrics", text)


async def test_daemon_never_shows_a_secret(tmp_path: Path) -> None:
    with threaded_simulator() as sim:
        plant(sim)
        config = {
            "poll_interval": "200ms",
            "request_timeout": "1s",
            "max_retries": 0,
            "log_format": "json",
            "accounts": accounts(sim),
        }
        path = tmp_path / "config.yml"
        path.write_text(yaml.safe_dump(config))
        port = free_port()
        log = tmp_path / "daemon.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "exporter",
                    "run",
                    "--config",
                    str(path),
                    "--listen-address",
                    f"127.0.0.1:{port}",
                    "--log-level",
                    "debug",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        url = f"http://127.0.0.1:{port}"
        seen: list[str] = []
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                await wait_for(client, url + "/readyz")
                for mode in [None, *SWEEP]:
                    for fake in sim.vendors.values():
                        fake.fault = None if mode is None else Fault(mode=mode, retry_after=None)
                    await asyncio.sleep(0.6)  # a few polls of every account
                    seen += await scrape(client, url)
                for fake in sim.vendors.values():
                    fake.fault = None
                echo_tokens_in_401(sim)
                for fake in sim.vendors.values():
                    fake.fault = Fault(mode="unauthorized")
                await asyncio.sleep(0.6)
                seen += await scrape(client, url)
                metrics = seen[-4]
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    logs = log.read_text()
    assert '"level": "debug"' in logs or '"level": "info"' in logs
    assert "invalid token [REDACTED]" in logs, "the echoed token reached the log, redacted"
    assert 'connector_exporter_poll_success{account="demo",vendor="versori"} 0.0' in metrics
    assert_clean("the daemon's logs", logs)
    assert_clean("HTTP answers", "\n".join(seen))


async def scrape(client: httpx.AsyncClient, url: str) -> list[str]:
    om = {"Accept": "application/openmetrics-text; version=1.0.0"}
    answers = [
        await client.get(url + "/metrics"),
        await client.get(url + "/metrics", headers=om),
        await client.get(url + "/"),
        await client.get(url + "/healthz"),
        await client.get(url + "/readyz"),
    ]
    assert all(a.status_code == 200 for a in answers)
    return [answers[0].text, answers[1].text, answers[2].text, answers[3].text + answers[4].text]


@pytest.mark.parametrize(
    "problem",
    [
        "extra_key: 1",  # unknown key
        "poll_interval: soon",  # bad duration
        "accounts_extra: [",  # not YAML at all
    ],
)
def test_check_config_never_prints_a_secret(problem: str, tmp_path: Path) -> None:
    accounts_yaml = yaml.safe_dump(
        {
            "accounts": [
                {
                    "vendor": "fivetran",
                    "name": "p",
                    "api_key": SENTINELS["fivetran_api_key"],
                    "api_secret": SENTINELS["fivetran_api_secret"],
                    "base_url": "ftp://x",
                },
                {
                    "vendor": "bindbee",
                    "name": "b",
                    "token": SENTINELS["bindbee_token"],
                    "categories": ["nope"],
                },
                {"vendor": "apideck", "name": "a", "api_key": SENTINELS["apideck_api_key"]},
                {"vendor": "openint", "name": "o", "token": [SENTINELS["openint_token"]]},
                {
                    "vendor": "versori",
                    "name": "v",
                    "token": SENTINELS["versori_token"],
                    "organisation_id": {"x": SENTINELS["versori_credential_data"]},
                },
            ]
        }
    )
    path = tmp_path / "config.yml"
    path.write_text(accounts_yaml + problem + "\n")
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "check-config", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "invalid configuration" in result.stderr and "Traceback" not in result.stderr
    assert_clean("check-config output", result.stdout + result.stderr)

"""Secrets: sentinel values in every credential of every vendor never come out anywhere.

tests/test_daemon.py checks the happy path; this sweep covers every registered vendor's secrets
(API keys and tokens in the config, and the secret data a vendor serves, planted by its quirk
test module's `plant_served_secret`), through polls that succeed and polls that fail in every
way the simulators can fail, including a vendor that echoes the request's token in its 401
body. It looks at the daemon's logs at debug level, /metrics in both formats, the landing page,
/healthz and /readyz, the VendorError messages raised in-process, and `check-config` on a
broken file holding them.
"""

from __future__ import annotations

import asyncio
import importlib
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
import yaml
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from exporter.errors import VendorError
from exporter.scheduler import AccountRunner
from exporter.simulator import SPECS, Simulator
from exporter.simulator.base import FAULT_MODES, Fault
from exporter.vendors import REGISTRY
from tests.conftest import cli, make_config, render, start_daemon
from tests.reliability.helpers import threaded_simulator
from tests.test_daemon import wait_for


def vendor_tests(vendor: str) -> ModuleType:
    return importlib.import_module(f"tests.vendors.test_{vendor}")


# A sentinel in every credential of every vendor, and in the secret data each vendor serves
# (its quirk test module's `plant_served_secret`, where the vendor serves any).
CREDENTIALS: dict[str, dict[str, str]] = {
    vendor: {field: f"SENTINEL-{vendor}-{field}-5a1e" for field in spec.account.SECRET_FIELDS}
    for vendor, spec in REGISTRY.items()
}
SERVED = {
    vendor: f"SENTINEL-{vendor}-served-08b5"
    for vendor in REGISTRY
    if hasattr(vendor_tests(vendor), "plant_served_secret")
}
SENTINELS = {
    **{
        f"{v} {field}": value
        for v, fields in CREDENTIALS.items()
        for field, value in fields.items()
    },
    **{f"{v} served data": value for v, value in SERVED.items()},
}


def plant(sim: Simulator) -> None:
    """Sentinel credentials the simulators accept, and sentinels in the data they serve."""
    for vendor, fields in CREDENTIALS.items():
        for field, value in fields.items():
            # Simulators keep each credential in the attribute named like the account's key.
            setattr(sim.vendors[vendor], field, value)
    for vendor, value in SERVED.items():
        vendor_tests(vendor).plant_served_secret(sim.vendors[vendor], value)


def accounts(sim: Simulator) -> list[dict[str, Any]]:
    """Config accounts with the sentinel credentials (the simulators' own are replaced)."""
    return [{**a, **CREDENTIALS[a["vendor"]]} for a in sim.accounts()]


def echo_tokens_in_401(sim: Simulator) -> None:
    """Every vendor's 401 body repeats the credential it was sent (some real APIs do)."""
    for fake in sim.vendors.values():
        secret = next(iter(CREDENTIALS[fake.name].values()))

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
        log = tmp_path / "daemon.log"
        proc, port = start_daemon(path, log, "--log-level", "debug")
        url = f"http://127.0.0.1:{port}"
        seen: list[str] = []
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                await wait_for(client, url + "/readyz")
                for mode in [None, *SWEEP]:
                    for fake in sim.vendors.values():
                        fake.fault = None if mode is None else Fault(mode=mode, retry_after=None)
                    await polls_after(client, url, 2)  # every account, under this fault
                    seen += await scrape(client, url)
                for fake in sim.vendors.values():
                    fake.fault = None
                echo_tokens_in_401(sim)
                for fake in sim.vendors.values():
                    fake.fault = Fault(mode="unauthorized")
                await polls_after(client, url, 2)
                seen += await scrape(client, url)
                metrics = seen[-4]
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    logs = log.read_text()
    assert '"level": "debug"' in logs or '"level": "info"' in logs
    assert "invalid token [REDACTED]" in logs, "the echoed token reached the log, redacted"
    assert all(
        f'connector_exporter_poll_success{{account="demo",vendor="{v}"}} 0.0' in metrics
        for v in REGISTRY
    )
    assert_clean("the daemon's logs", logs)
    assert_clean("HTTP answers", "\n".join(seen))


async def polls_after(client: httpx.AsyncClient, url: str, more: int) -> None:
    """Wait until every account has finished `more` further polls (bounded: 30 s)."""

    async def polls() -> dict[str, float]:
        text = (await client.get(url + "/metrics")).text
        return {
            s.labels["vendor"]: s.value
            for f in text_string_to_metric_families(text)
            if f.name == "connector_exporter_polls"
            for s in f.samples
        }

    start = await polls()
    deadline = time.monotonic() + 30
    while True:
        now = await polls()
        if len(now) == len(start) and all(now[v] >= start[v] + more for v in start):
            return
        assert time.monotonic() < deadline, f"polls did not advance: {start} -> {now}"
        await asyncio.sleep(0.05)


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
    broken: list[dict[str, Any]] = []
    for i, (vendor, spec) in enumerate(SPECS.items()):
        account = {**spec.account("http://127.0.0.1:1"), **CREDENTIALS[vendor]}
        if i % 2:
            first = next(iter(CREDENTIALS[vendor]))
            account[first] = [account[first]]  # a secret of the wrong type
        else:
            account["base_url"] = "ftp://x"
        broken.append(account)
    accounts_yaml = yaml.safe_dump({"accounts": broken})
    path = tmp_path / "config.yml"
    path.write_text(accounts_yaml + problem + "\n")
    result = cli("check-config", "--config", str(path))
    assert result.returncode == 2
    assert "invalid configuration" in result.stderr and "Traceback" not in result.stderr
    assert_clean("check-config output", result.stdout + result.stderr)

"""Shared fixtures: the real simulators on 127.0.0.1 and helpers to poll and render."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.registry import CollectorRegistry

from exporter.accounts import AccountBase
from exporter.collector import ExporterCollector, Exposition
from exporter.config import Config
from exporter.model import PollResult, Snapshot, StateSets
from exporter.render import render_snapshot
from exporter.scheduler import AccountRunner, build_snapshot
from exporter.simulator import Simulator
from exporter.status import AccountStatus, carry_health_since, publish

REPO = Path(__file__).resolve().parents[1]
# The exporter's command line, run by the interpreter the tests run under.
EXPORTER = (sys.executable, "-m", "exporter")
FIXTURES = Path(__file__).parent / "fixtures"
GOLDEN = Path(__file__).parent / "golden"
# A fixed "now" for golden output: 2024-12-02T00:00:00Z.
FIXED_NOW = 1733097600.0


def fixture_json(vendor: str, name: str) -> Any:
    return json.loads((FIXTURES / vendor / name).read_text())


def make_config(accounts: list[dict[str, Any]], **top: Any) -> Config:
    """A validated Config; tests default to fast failure (no retries, short timeouts)."""
    raw = {"max_retries": 0, "request_timeout": "5s", "poll_timeout": "20s", **top}
    return Config.model_validate({**raw, "accounts": accounts})


def runner_for(config: Config, index: int = 0) -> AccountRunner:
    return AccountRunner(config.accounts[index], config)


def render(
    statuses: Iterable[AccountStatus], now: float = FIXED_NOW, openmetrics: bool = False
) -> str:
    """The exposition text /metrics would serve for these accounts at `now`."""
    statuses = list(statuses)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ExporterCollector(lambda: statuses))
    exposition = Exposition(lambda: statuses, registry, clock=lambda: now)
    return b"".join(
        part for p in exposition.pieces(openmetrics) for part in p.plain_parts()
    ).decode()


@asynccontextmanager
async def serving(simulator: Simulator) -> AsyncIterator[Simulator]:
    """`simulator` started on an ephemeral 127.0.0.1 port for the block, stopped after."""
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.stop()


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    """Every vendor simulator, serving its curated fleet on an ephemeral 127.0.0.1 port."""
    async with serving(Simulator()) as simulator:
        yield simulator


async def poll_once(
    sim: Simulator, vendor: str, *, clock: float | None = None, retries: int = 0, **overrides: Any
) -> tuple[bool, AccountRunner]:
    """One poll of `vendor`'s simulator account (with overrides); the runner is closed after.

    `clock` fixes the time the poll's snapshot is taken at; `retries` is max_retries.
    """
    config = make_config([sim_account(sim, vendor, **overrides)], max_retries=retries)
    now = time.time if clock is None else (lambda: clock)
    runner = AccountRunner(config.accounts[0], config, clock=now)
    try:
        ok = await runner.poll()
    finally:
        await runner.aclose()
    return ok, runner


def sim_account(sim: Simulator, vendor: str, **overrides: Any) -> dict[str, Any]:
    """The config account that polls `vendor` on the simulator, with overrides."""
    account = next(a for a in sim.accounts() if a["vendor"] == vendor)
    return {**account, **overrides}


def account_runner(account: dict[str, Any], **top: Any) -> AccountRunner:
    """A runner (not yet polled) for a config of this one account (`make_config`'s defaults)."""
    return runner_for(make_config([account], **top))


def status_of(
    snap: Snapshot,
    *,
    interval: float = 60.0,
    keep_plain: int | None = None,
    since: dict[str, float] | None = None,
) -> AccountStatus:
    """An account whose last poll succeeded and published `snap`.

    `keep_plain` renders with that plain-text budget; `since` replaces the "since" times.
    """
    status = AccountStatus(snap.vendor, snap.account, interval)
    published = publish(snap, carry_health_since(None, snap) if since is None else since)
    if keep_plain is not None:
        published = replace(published, rendered=render_snapshot(snap, keep_plain))
    status.published = published
    status.last_ok = True
    return status


def golden_status(account: AccountBase, states: StateSets, result: PollResult) -> AccountStatus:
    """An account after one successful poll at FIXED_NOW, with fixed self-metric values."""
    snapshot, _ = build_snapshot(account, states, result, taken_at=FIXED_NOW)
    status = status_of(snapshot, interval=300.0)
    status.polls_total = 1
    status.last_ok = True
    status.last_poll_end = status.last_success_end = FIXED_NOW
    status.last_duration = 0.25
    status.requests.update({"200": 3})
    return status


def assert_golden(name: str, text: str) -> None:
    """Compare exposition text with tests/golden/<name>; UPDATE_GOLDEN=1 rewrites the file."""
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert text == path.read_text(), f"{name} differs; review, then rerun with UPDATE_GOLDEN=1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_daemon(
    config: Path,
    log: Path | None,
    *extra: str,
    env: dict[str, str] | None = None,
    preexec_fn: Callable[[], None] | None = None,
) -> tuple[subprocess.Popen[bytes], int]:
    """`connector-exporter run` as a subprocess on a free 127.0.0.1 port; output into `log`.

    `preexec_fn` runs in the child before the exporter starts (resource limits, say).
    """
    port = free_port()
    args = [*EXPORTER, "run", "--config", str(config), "--listen-address", f"127.0.0.1:{port}"]
    args.extend(extra)
    if log is None:
        proc = subprocess.Popen(
            args,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            preexec_fn=preexec_fn,
        )
    else:
        with log.open("wb") as out:
            proc = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, env=env, preexec_fn=preexec_fn
            )
    return proc, port


def cli(
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 60,
    preexec_fn: Callable[[], None] | None = None,
) -> subprocess.CompletedProcess[str]:
    """`connector-exporter <args>` run to its end from the repository root, output captured."""
    return subprocess.run(
        [*EXPORTER, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
        cwd=REPO,
        preexec_fn=preexec_fn,
    )


# --- the `slow` marker ---------------------------------------------------------------------
# What `make test-fast` (the edit loop) leaves to `make test`: tests that start servers or other
# programs (Prometheus, Alertmanager, promtool, amtool, helm, Chromium, the demo, the exporter as
# a process), replay an image build with pip, or run long on purpose (soak, chaos, property and
# secrets sweeps). By node id prefix, in one place, so that a new test in these folders or files
# is slow without a marker to remember; `e2e` tests are slow too. A prefix naming a test that
# its file no longer has is an error, so that a rename cannot quietly make a slow test fast.
SLOW = (
    # promtool, amtool, Alertmanager on every rule; Prometheus and the webhook end to end
    "tests/alerts/",
    "tests/docker/test_dockerfile.py::test_build_replay_installs_a_working_exporter",
    "tests/grafana/test_e2e.py",
    "tests/helm/",
    "tests/reliability/",
    "tests/test_demo.py",
    "tests/test_statuspage.py::test_browser_",
    # the exporter as a process: the daemon (signals, TLS, auth, reloads) and one-shot commands
    "tests/test_daemon.py",
    "tests/test_webconfig.py",
    "tests/test_cli.py::test_every_bad_input_is_one_clear_line_and_exit_2",
    "tests/test_cli.py::test_check_config_lists_field_and_cross_account_problems_in_one_pass",
    "tests/test_cli.py::test_example_config_covers_every_vendor_and_passes_check_config",
    "tests/test_config.py::test_non_finite_interval_is_a_config_error_not_a_crash",
    "tests/test_config.py::test_check_config_cli_exit_codes_and_no_secret_echo",
    "tests/test_config.py::test_check_config_from_environment_and_missing",
    "tests/test_config.py::test_run_rejects_invalid_config_with_exit_2",
    "tests/test_config.py::test_version",
    # timing: a wall-clock second to cross, a Retry-After to wait out
    "tests/test_ages.py::test_rendering_ahead_prepares_the_next_scrapes_second_and_changes_no_byte",
    "tests/vendors/test_apideck.py::test_one_429_pauses_every_detail_request_until_its_retry_after",
)


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by the marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    modules: dict[str, object] = {}
    for item in items:
        if item.nodeid.startswith(SLOW) or item.get_closest_marker("e2e") is not None:
            item.add_marker(pytest.mark.slow)
        if isinstance(item, pytest.Function):
            modules[item.nodeid.split("::")[0]] = item.module
    for prefix in SLOW:
        path, _, name = prefix.partition("::")
        module = modules.get(path)
        if name and module is not None and not any(a.startswith(name) for a in dir(module)):
            raise pytest.UsageError(f"tests/conftest.py SLOW names no test: {prefix}")


EXAMPLE_CONFIG = REPO / "docs" / "config.example.yml"


def deployed_example(where: Path) -> tuple[Path, dict[str, str]]:
    """docs/config.example.yml as a deployment would have it: every `${VAR}` it references in
    the returned environment, every `*_file` secret a file under `where` (same text otherwise)."""
    text = EXAMPLE_CONFIG.read_text()
    env = {name: f"value-of-{name}" for name in re.findall(r"\$\{(\w+)\}", text)}
    for secret_path in re.findall(r"_file: (\S+)", text):
        local = where / Path(secret_path).name
        local.write_text("secret-from-file\n")
        text = text.replace(secret_path, str(local))
    config = where / "config.yml"
    config.write_text(text)
    return config, env

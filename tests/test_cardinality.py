"""Metric allow and deny lists (kube-state-metrics' --metric-allowlist / --metric-denylist)."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.registry import CollectorRegistry

from exporter.collector import ExporterCollector, Exposition
from exporter.config import ConfigError, parse_config
from exporter.families import ALL, EXPORTER
from exporter.simulator import Simulator
from tests.conftest import (
    FIXED_NOW,
    cli,
    fixture_json,
    golden_status,
    make_config,
    sim_account,
    start_daemon,
)

ACCOUNT = "accounts: [{vendor: bindbee, name: a, token: t}]\n"
NAMES = frozenset(f.name for f in ALL)


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, env={})
    return [str(p) for p in info.value.problems]


def test_lists_select_families_by_exact_name_or_whole_name_regex() -> None:
    deny = parse_config(ACCOUNT + "metric_denylist: [connector_info, 'connector_.*_age_seconds']")
    assert NAMES - deny.enabled_families == {
        "connector_info",
        "connector_last_success_age_seconds",
        "connector_last_failure_age_seconds",
    }
    # a regex matches whole names only: "connector_health" is not "connector_health_x"
    allow = parse_config(ACCOUNT + "metric_allowlist: [connector_health, 'connector_exporter_.*']")
    assert allow.enabled_families == {"connector_health"} | {f.name for f in EXPORTER}
    assert parse_config(ACCOUNT).enabled_families == NAMES


def test_bad_lists_are_config_errors_with_their_path() -> None:
    assert problems(ACCOUNT + "metric_allowlist: [connector_info]\nmetric_denylist: [x]") == [
        "metric_denylist: give either metric_allowlist or metric_denylist"
    ]
    assert problems(ACCOUNT + "metric_denylist: [connector_info, connector_helth]") == [
        "metric_denylist[1]: 'connector_helth' matches no metric family"
        " (names: see the README's metrics)"
    ]
    [bad_regex] = problems(ACCOUNT + "metric_allowlist: ['connector_(']")
    assert bad_regex.startswith("metric_allowlist[0]: invalid regular expression")


def body(config_lists: str) -> str:
    config = parse_config(ACCOUNT + config_lists)
    from exporter.model import PollResult
    from exporter.vendors import bindbee

    items, _ = bindbee.parse_page(fixture_json("bindbee", "hris.json"))
    account = make_config([{"vendor": "bindbee", "name": "hr", "token": "t"}]).accounts[0]
    status = golden_status(
        account, bindbee.STATES, PollResult(tuple(bindbee.translate(items, "hris")))
    )
    from exporter.render import render_snapshot

    assert status.published is not None
    # rendered as a poll under this config would render it
    status.published = type(status.published)(
        snapshot=status.published.snapshot,
        rendered=render_snapshot(status.published.snapshot, families=config.enabled_families),
        since=status.published.since,
        counts=status.published.counts,
        unhealthy=status.published.unhealthy,
    )
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ExporterCollector(lambda: [status], families=lambda: config.enabled_families))
    exposition = Exposition(
        lambda: [status],
        registry,
        clock=lambda: FIXED_NOW,
        families=lambda: config.enabled_families,
    )
    return b"".join(part for p in exposition.pieces() for part in p.plain_parts()).decode()


def served(text: str) -> set[str]:
    return {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}


def sample_name(line: str) -> str:
    """The metric name a line is about (a sample, or a HELP/TYPE comment)."""
    if line.startswith("# "):
        return line.split()[2]
    return line.split("{")[0].split(" ")[0]


def test_a_denied_family_is_neither_rendered_nor_served() -> None:
    full = body("")
    denied = body(
        "metric_denylist: [connector_health, 'connector_last_.*', connector_exporter_polls]"
    )
    gone = {
        "connector_health",
        "connector_last_success_timestamp_seconds",
        "connector_last_success_age_seconds",
        "connector_last_failure_timestamp_seconds",
        "connector_last_failure_age_seconds",
        "connector_last_sync_start_timestamp_seconds",
        "connector_last_sync_duration_seconds",
        "connector_last_event_timestamp_seconds",
        "connector_exporter_polls",
        "connector_exporter_polls_total",
    }
    assert served(full) - served(denied) == gone & served(full)
    assert "connector_health{" not in denied and "_age_seconds{" not in denied
    # what is left is exactly the full body less the denied families' lines
    assert denied.splitlines() == [x for x in full.splitlines() if sample_name(x) not in gone]


def test_allowlist_serves_only_the_allowed() -> None:
    text = body("metric_allowlist: [connector_info, connector_exporter_build_info]")
    assert served(text) & NAMES == {"connector_info", "connector_exporter_build_info"}
    assert sum(line.startswith("connector_info{") for line in text.splitlines()) > 0


def test_check_config_flags(tmp_path: Path) -> None:
    path = tmp_path / "c.yml"
    path.write_text(ACCOUNT)
    ok = cli(
        "check-config",
        "--config",
        str(path),
        "--metric-denylist",
        "connector_info, connector_tasks",
    )
    assert ok.returncode == 0, ok.stderr
    assert f"metric families served: {len(ALL) - 2} of {len(ALL)}" in ok.stdout
    assert "not served: connector_info, connector_tasks" in ok.stdout
    typo = cli("check-config", "--config", str(path), "--metric-allowlist", "connector_infos")
    assert typo.returncode == 2
    assert "metric_allowlist[0]: 'connector_infos' matches no metric family" in typo.stderr
    path.write_text(ACCOUNT + "metric_denylist: [connector_info]\n")
    both = cli("check-config", "--config", str(path), "--metric-allowlist", "connector_health")
    assert both.returncode == 2
    assert "give either metric_allowlist or metric_denylist" in both.stderr
    # run refuses the same way
    bad_run = cli("run", "--config", str(path), "--metric-allowlist", "connector_health")
    assert bad_run.returncode == 2


async def scrape_until(
    client: httpx.AsyncClient, url: str, ok: Callable[[str], bool], timeout: float = 20
) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            response = await client.get(url)
            if response.status_code == 200 and ok(response.text):
                return response.text
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"{url}: condition not met within {timeout}s"
        await asyncio.sleep(0.1)


async def test_the_flag_survives_a_reload(sim: Simulator, tmp_path: Path) -> None:
    path = tmp_path / "config.yml"
    accounts = [sim_account(sim, "fivetran")]
    config = {"poll_interval": "1s", "max_retries": 0, "accounts": accounts}
    path.write_text(yaml.safe_dump(config))
    denied = "connector_health,connector_.*_age_seconds"
    proc, port = start_daemon(path, tmp_path / "log", "--metric-denylist", denied)
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            text = await scrape_until(client, url, lambda t: "connector_info{" in t)
            assert "connector_health" not in text and "_age_seconds" not in text
            # the file changes (a second account) and is reloaded: the flag still applies
            accounts.append({**sim_account(sim, "bindbee")})
            path.write_text(yaml.safe_dump(config))
            proc.send_signal(signal.SIGHUP)
            bindbee_ok = 'connector_exporter_poll_success{account="demo",vendor="bindbee"} 1.0'
            text = await scrape_until(client, url, lambda t: bindbee_ok in t)
            assert "connector_health" not in text and "_age_seconds" not in text
            assert "connector_last_success_timestamp_seconds{" in text
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)

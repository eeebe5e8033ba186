"""Hostile or broken config files (issue 12, item 5): SIGHUPs racing a reload, and `*_file`
secrets that are FIFOs, devices or huge. Every test runs the real daemon or CLI.
"""

from __future__ import annotations

import os
import resource
import signal
from pathlib import Path

from tests.conftest import cli
from tests.reliability.hostile import (
    daemon_on_listing,
    fivetran_account,
    fivetran_item,
    metrics,
    metrics_when,
    sample,
    wait_until,
    write_config,
)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_a_sighup_during_a_reload_is_coalesced_and_the_newest_file_wins(tmp_path: Path) -> None:
    with daemon_on_listing(tmp_path, [fivetran_item("c1")], "first") as (vendor, daemon, path):
        metrics_when(daemon, lambda t: sample(t, "connector_exporter_polls_total", account="first"))
        # A file that takes seconds to parse (a long exclude list), then the final one.
        slow = [f"^never-{i:06d}$" for i in range(60_000)]
        write_config(path, [fivetran_account("slow", vendor.url("v"), exclude=slow)])
        before = cpu_seconds(daemon.proc.pid)
        daemon.signal(signal.SIGHUP)
        wait_until(
            lambda: cpu_seconds(daemon.proc.pid) > before + 0.3,
            step=0.02,
            what="the slow reload under way",
        )
        write_config(path, [fivetran_account("final", vendor.url("v"))])
        daemon.signal(signal.SIGHUP)
        text = metrics_when(
            daemon,
            lambda t: sample(t, "connector_exporter_polls_total", account="final"),
            timeout=90,
            what="the newest file applied",
        )
        assert sample(text, "connector_exporter_polls_total", account="slow") is None
        assert sample(text, "connector_exporter_polls_total", account="first") is None


def _limited_memory() -> None:
    # The old code read /dev/zero until memory ran out: keep that bounded on a shared machine.
    resource.setrlimit(resource.RLIMIT_AS, (2 * 1024**3, 2 * 1024**3))


def test_fifo_device_and_huge_secret_files_fail_check_config_cleanly(tmp_path: Path) -> None:
    fifo = tmp_path / "token.fifo"
    os.mkfifo(fifo)
    huge = tmp_path / "huge-token"
    huge.write_bytes(b"x" * (1024 * 1024))
    accounts = [
        {**fivetran_account(name, "http://127.0.0.1:9/x"), "api_secret_file": str(target)}
        for name, target in (
            ("fifo", fifo),
            ("zero", "/dev/zero"),
            ("huge", huge),
            ("dir", tmp_path),
        )
    ]
    for account in accounts:
        del account["api_secret"]
    config = write_config(tmp_path / "config.yaml", accounts)
    for target in (config, Path("/dev/zero"), fifo):
        done = cli("check-config", "--config", str(target), timeout=30, preexec_fn=_limited_memory)
        assert done.returncode == 2, done.stdout + done.stderr
        assert "Traceback" not in done.stderr
    lines = [line.strip() for line in done.stderr.splitlines()]
    assert "cannot read config file" in done.stderr and "not a regular file" in done.stderr
    done = cli("check-config", "--config", str(config), timeout=30, preexec_fn=_limited_memory)
    lines = [line.strip() for line in done.stderr.splitlines()]
    assert f"accounts[0].api_secret_file: cannot read {fifo}: not a regular file" in lines, lines
    assert "accounts[1].api_secret_file: cannot read /dev/zero: not a regular file" in lines
    assert f"accounts[2].api_secret_file: cannot read {huge}: larger than 64 KiB" in lines
    assert f"accounts[3].api_secret_file: cannot read {tmp_path}: not a regular file" in lines


def test_a_fifo_secret_file_at_reload_fails_fast_and_sigterm_still_exits(tmp_path: Path) -> None:
    fifo = tmp_path / "token.fifo"
    os.mkfifo(fifo)
    with daemon_on_listing(tmp_path, [fivetran_item("c1")]) as (vendor, daemon, path):
        metrics_when(daemon, lambda t: sample(t, "connector_exporter_polls_total", account="a"))
        account = fivetran_account("a", vendor.url("v"))
        del account["api_secret"]
        write_config(path, [{**account, "api_secret_file": str(fifo)}])
        daemon.signal(signal.SIGHUP)
        wait_until(
            lambda: '"event": "reload_failed"' in daemon.log_text(),
            timeout=15,
            what="the reload refused",
        )
        assert "not a regular file" in daemon.log_text()
        assert sample(metrics(daemon), "connector_exporter_config_last_reload_successful") == 0
        took = daemon.stop()
        assert took < 5.0, f"exit took {took:.1f}s"

"""The demo as a new user meets it: it binds 127.0.0.1, and every command its banner or the
README prints works as printed against it (parsed from the banner and the README, so that
neither can drift from what the exporter serves)."""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from exporter.cli import DEFAULT_DEMO_LISTEN_ADDRESS
from exporter.config import _seconds_text
from exporter.demo import url_host
from exporter.vendors import REGISTRY
from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
BANNER_END = "polls run every"
START_SECONDS = 60.0


@dataclass
class Demo:
    proc: subprocess.Popen[str]
    port: int
    banner: list[str]


def _read_lines(proc: subprocess.Popen[str], out: queue.Queue[str | None]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        out.put(line.rstrip("\n"))
    out.put(None)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """`connector-exporter demo` as a user starts it, on a free port; its banner as printed."""
    port = free_port()
    log = tmp_path_factory.mktemp("demo") / "demo.log"
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "exporter", "demo", "--listen-address", f"127.0.0.1:{port}"],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_read_lines, args=(proc, lines), daemon=True).start()
    banner: list[str] = []
    deadline = time.monotonic() + START_SECONDS
    try:
        while not banner or BANNER_END not in banner[-1]:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            assert line is not None, f"demo exited: {log.read_text()[-2000:]}"
            banner.append(line)
        yield Demo(proc, port, banner)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def run_command(command: str) -> subprocess.CompletedProcess[str]:
    # pipefail: a command "works" only if every stage does (grep exits 1 when nothing matches).
    return subprocess.run(
        ["bash", "-o", "pipefail", "-c", command],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def banner_commands(banner: list[str]) -> list[str]:
    return [line.strip() for line in banner if line.strip().startswith("curl ")]


def readme_demo_commands() -> list[str]:
    """Every shell command of the README that talks to the demo's default address: lines of
    its sh code blocks and inline `curl …` spans."""
    text = README.read_text()
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
        commands += [line.strip() for line in block.splitlines()]
    commands += re.findall(r"`(curl [^`]+)`", text)
    host_port = DEFAULT_DEMO_LISTEN_ADDRESS
    return [c for c in commands if c.startswith("curl ") and host_port in c]


def test_banner_commands_work_as_printed(demo: Demo) -> None:
    commands = banner_commands(demo.banner)
    assert len(commands) >= 3, demo.banner
    for command in commands:
        result = run_command(command)
        assert result.returncode == 0, (command, result.stderr)
        assert result.stdout.strip(), command
    # The first one lists the unhealthy connectors, state by state.
    unhealthy = run_command(commands[0]).stdout.splitlines()
    assert unhealthy and all(line.endswith(" 1.0") for line in unhealthy)
    assert not any('health="healthy"' in line for line in unhealthy)
    # The pitfall the banner used to print: values are never a bare 1.
    assert run_command(commands[0].replace("' 1.0$'", "' 1$'")).returncode == 1
    # The last one changed a connector's health in the simulator: the next poll shows it.
    changed = re.search(
        r"/_control/(\w+)/connectors/([\w-]+)/health -d '\{\"health\": \"(\w+)", commands[-1]
    )
    assert changed is not None, commands[-1]
    vendor, connector_id, health = changed.groups()
    wanted = f'connector_id="{connector_id}",health="{health}",vendor="{vendor}"}} 1.0'
    deadline = time.monotonic() + 30  # the demo polls every 10 s
    while wanted not in (text := httpx.get(f"http://127.0.0.1:{demo.port}/metrics").text):
        assert time.monotonic() < deadline, f"{wanted} never appeared"
        time.sleep(0.5)
    assert wanted in text


def test_banner_addresses_answer(demo: Demo) -> None:
    text = "\n".join(demo.banner)
    base = f"http://127.0.0.1:{demo.port}"
    assert f"status page:  {base}/" in text and f"metrics:      {base}/metrics" in text
    for url in (f"{base}/", f"{base}/metrics"):
        assert httpx.get(url, timeout=10).status_code == 200, url
    sims = re.search(r"simulators:\s+(http://127\.0\.0\.1:\d+)\s+\(vendors: ([^)]+)\)", text)
    assert sims is not None, text
    vendors = sims[2].split(", ")
    assert vendors == list(REGISTRY)
    for vendor in vendors:
        r = httpx.get(f"{sims[1]}/_control/{vendor}/connectors", timeout=10)
        assert r.status_code == 200, vendor


def test_readme_commands_work_against_the_demo(demo: Demo) -> None:
    commands = readme_demo_commands()
    assert len(commands) >= 3, commands
    for command in commands:
        # The README speaks of the default address; this demo runs on a free port.
        here = command.replace(DEFAULT_DEMO_LISTEN_ADDRESS, f"127.0.0.1:{demo.port}")
        result = run_command(here)
        assert result.returncode == 0, (command, result.stderr)
        assert result.stdout.strip(), command


def test_demo_listens_on_loopback_only(demo: Demo) -> None:
    # ss lists the demo's listening socket; it must be bound to 127.0.0.1, not 0.0.0.0 or ::.
    listening = subprocess.run(
        ["ss", "-Hltn", f"sport = :{demo.port}"], capture_output=True, text=True, check=True
    ).stdout.split()
    assert f"127.0.0.1:{demo.port}" in listening, listening
    assert DEFAULT_DEMO_LISTEN_ADDRESS == "127.0.0.1:9841"


@pytest.mark.parametrize(
    ("listen", "host"),
    [
        ("0.0.0.0:9841", "127.0.0.1"),
        (":9841", "127.0.0.1"),
        ("[::]:9841", "[::1]"),
        ("[::1]:9841", "[::1]"),
        ("10.1.2.3:9841", "10.1.2.3"),
        ("exporter.internal:9841", "exporter.internal"),
    ],
)
def test_banner_urls_reach_the_listen_address(listen: str, host: str) -> None:
    # An all-interfaces listener is reached through loopback; a specific address only as itself.
    assert url_host(listen) == host


def test_readme_first_hour_facts() -> None:
    text = README.read_text()
    assert "shared/seeds" not in text  # not part of this repository
    quick = text.split("## The two commands", 1)[1].split("\n## ", 1)[0]
    for tool in ("chromium", "wrk", "prometheus", "apt-get", "npm", "helm"):
        assert tool in quick, tool
    trouble = text.split("## Troubleshooting", 1)[1].split("\n## ", 1)[0]
    assert len(re.findall(r"^\d+\. \*\*", trouble, flags=re.M)) == 10
    # The floor table says what the registry enforces.
    for name, vendor in REGISTRY.items():
        assert f"| `{name}` | {_seconds_text(vendor.min_poll_interval)} |" in text, name

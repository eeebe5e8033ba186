"""Real external programs for the alerting tests: start, wait for, stop; plus small helpers.

Every process runs in its own session (process group) on 127.0.0.1 with its output in a log
file, and is killed as a group on teardown, so a failing test never leaks a Prometheus.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ALERTS = REPO / "alerts"
RULE_FILES = sorted(ALERTS.glob("*.rules.yml"))
TEST_FILES = sorted((ALERTS / "tests").glob("*.test.yml"))
ALERTMANAGER_EXAMPLE = ALERTS / "alertmanager.example.yml"
RUNBOOKS = REPO / "docs" / "runbooks.md"
EXPORTER = Path(sys.executable).with_name("connector-exporter")

T = TypeVar("T")


def binary(name: str) -> str:
    """Path of a required program; a missing one fails the test (`make test` installs them)."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found on PATH; `make tools` installs it (Debian package)")
    return path


def alertmanager_binary() -> str:
    """Debian names the Alertmanager binary prometheus-alertmanager; upstream alertmanager."""
    for name in ("prometheus-alertmanager", "alertmanager"):
        if (path := shutil.which(name)) is not None:
            return path
    pytest.fail("prometheus-alertmanager not found; `make tools` installs it (Debian package)")


def run(argv: Sequence[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """A program to completion, output captured (no shell)."""
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def duration_seconds(text: str) -> float:
    """A Prometheus duration such as `15m`, `1h30m` or `24h` in seconds."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    parts = re.findall(r"(\d+)(ms|s|m|h|d|w|y)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a Prometheus duration: {text!r}")
    return sum(int(n) * units[u] for n, u in parts)


def wait_for(
    what: str,
    probe: Callable[[], T | None],
    timeout: float,
    interval: float = 0.2,
    on_timeout: Callable[[], str] | None = None,
) -> T:
    """Call `probe` until it returns something truthy, and return that; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            result = probe()
            if result:
                return result
        except (httpx.HTTPError, OSError, ValueError, KeyError) as err:
            last_error = err
        if time.monotonic() >= deadline:
            detail = on_timeout() if on_timeout else ""
            pytest.fail(f"timed out after {timeout}s waiting for {what} ({last_error})\n{detail}")
        time.sleep(interval)


@dataclass
class Proc:
    """One started program and where its output goes."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def output(self, tail: int = 4000) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return f"--- {self.name} (exit {self.popen.poll()}) log tail ---\n{text[-tail:]}"

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM the process group, SIGKILL it if it has not exited within `grace`."""
        if self.popen.poll() is None:
            _signal_group(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                _signal_group(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=grace)
        else:
            # The leader is gone; make sure no child it started outlives it.
            _signal_group(self.popen.pid, signal.SIGKILL)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


@dataclass
class Processes:
    """Starts programs in their own process groups and stops all of them on `close`."""

    workdir: Path
    procs: list[Proc] = field(default_factory=list)

    def start(self, name: str, argv: Sequence[str]) -> Proc:
        log = self.workdir / f"{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                start_new_session=True,
            )
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def logs(self) -> str:
        return "\n".join(p.output() for p in self.procs)

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()


@dataclass(frozen=True)
class Notification:
    """One webhook POST from Alertmanager, with when it arrived."""

    received: float
    path: str
    body: dict[str, Any]

    def alerts(self, status: str | None = None, **labels: str) -> list[dict[str, Any]]:
        """The alerts of this notification with `status` and all `labels` (exact values)."""
        found = []
        for alert in self.body.get("alerts", []):
            if status is not None and alert.get("status") != status:
                continue
            if all(alert.get("labels", {}).get(k) == v for k, v in labels.items()):
                found.append(alert)
        return found


class WebhookReceiver:
    """The Alertmanager webhook receiver of the end-to-end test, on 127.0.0.1."""

    def __init__(self) -> None:
        self.notifications: list[Notification] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                with receiver._lock:
                    receiver.notifications.append(Notification(time.time(), self.path, body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def received(self) -> list[Notification]:
        with self._lock:
            return list(self.notifications)

    def find(
        self, since: float, path: str | None = None, status: str | None = None, **labels: str
    ) -> Iterator[tuple[Notification, dict[str, Any]]]:
        """(notification, alert) pairs received after `since` that match."""
        for n in self.received():
            if n.received < since or (path is not None and n.path != path):
                continue
            for alert in n.alerts(status, **labels):
                yield n, alert

    def describe(self) -> str:
        lines = ["--- webhook notifications ---"]
        for n in self.received():
            alerts = [
                (a.get("status"), a["labels"].get("alertname"), a["labels"].get("connector_id"))
                for a in n.body.get("alerts", [])
            ]
            lines.append(f"{n.received:.3f} {n.path} {n.body.get('status')} {alerts}")
        return "\n".join(lines)

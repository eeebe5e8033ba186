"""A hostile vendor and a real daemon to attack (tests/reliability/test_hostile_*.py).

The vendor is a small aiohttp app on its own thread that answers as a Fivetran API would, or
as an attacker controlling one would: each account's `base_url` ends in a prefix that selects
a behaviour, and `HostileVendor.handlers[prefix]` can be swapped between polls.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from aiohttp import web

from tests.conftest import start_daemon
from tests.reliability.helpers import on_own_loop, proc_status_bytes

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def fivetran_item(connector_id: str, name: str = "", **extra: Any) -> dict[str, Any]:
    return {
        "id": connector_id,
        "schema": name or connector_id,
        "service": "postgres",
        "group_id": "g1",
        "paused": False,
        "status": {
            "setup_state": "connected",
            "sync_state": "scheduled",
            "update_state": "on_schedule",
        },
        **extra,
    }


def listing(items: list[dict[str, Any]], cursor: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"items": items}
    if cursor:
        data["next_cursor"] = cursor
    return {"code": "Success", "data": data}


@dataclass
class HostileVendor:
    """Serves `/<prefix>/v1/connections` with `handlers[prefix]`; records what it was sent."""

    handlers: dict[str, Handler] = field(default_factory=dict)
    seen: list[web.Request] = field(default_factory=list)
    headers_seen: list[dict[str, str]] = field(default_factory=list)
    port: int = 0

    def url(self, prefix: str) -> str:
        return f"http://127.0.0.1:{self.port}/{prefix}"

    def serve_json(self, prefix: str, body: Any, status: int = 200) -> None:
        async def answer(_: web.Request) -> web.StreamResponse:
            return web.json_response(body, status=status)

        self.handlers[prefix] = answer

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        self.headers_seen.append(dict(request.headers))
        handler = self.handlers.get(request.match_info["prefix"])
        if handler is None:
            return web.json_response({"message": "no such prefix"}, status=404)
        return await handler(request)


@contextmanager
def hostile_vendor() -> Iterator[HostileVendor]:
    vendor = HostileVendor()
    app = web.Application()
    app.router.add_get("/{prefix}/v1/connections", vendor._dispatch)
    runner = web.AppRunner(app, access_log=None)

    async def start() -> None:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        vendor.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    with on_own_loop(start, runner.cleanup, "hostile vendor"):
        yield vendor


def fivetran_account(name: str, base_url: str, **extra: Any) -> dict[str, Any]:
    return {
        "vendor": "fivetran",
        "name": name,
        "base_url": base_url,
        "api_key": "hostile-test-key-0000",
        "api_secret": "hostile-test-secret-0000",
        **extra,
    }


def write_config(path: Path, accounts: list[dict[str, Any]], **top: Any) -> Path:
    raw = {
        "poll_interval": "1s",
        "max_retries": 0,
        "request_timeout": "5s",
        "poll_timeout": "20s",
        "log_level": "debug",
        "log_format": "json",
        **top,
        "accounts": accounts,
    }
    path.write_text(yaml.safe_dump(raw))
    return path


@dataclass
class Daemon:
    """A running `connector-exporter run`, its port and its log."""

    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    scheme: str = "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 10.0) -> float:
        """SIGTERM; returns the seconds the process took to exit (killed past `timeout`)."""
        if self.proc.poll() is not None:
            return 0.0
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            return float("inf")
        return time.monotonic() - started


def start(
    config: Path,
    log: Path,
    *extra: str,
    limits: dict[int, tuple[int, int]] | None = None,
    scheme: str = "http",
) -> Daemon:
    """The daemon as a subprocess on a free 127.0.0.1 port; `limits`: RLIMIT_* to set in it."""
    import resource

    def set_limits() -> None:
        for which, value in (limits or {}).items():
            resource.setrlimit(which, value)

    proc, port = start_daemon(config, log, *extra, preexec_fn=set_limits if limits else None)
    return Daemon(proc, port, log, scheme)


@contextmanager
def daemon_on_listing(
    tmp_path: Path, items: list[dict[str, Any]], name: str = "a"
) -> Iterator[tuple[HostileVendor, Daemon, Path]]:
    """The vendor serving `items` as one listing at prefix `v`, and the daemon polling it as
    Fivetran account `name` (config file tmp_path/config.yaml); the daemon is stopped after."""
    with hostile_vendor() as vendor:
        vendor.serve_json("v", listing(items))
        config = write_config(tmp_path / "config.yaml", [fivetran_account(name, vendor.url("v"))])
        daemon = start(config, tmp_path / "daemon.log")
        try:
            yield vendor, daemon, config
        finally:
            daemon.stop()


def wait_until(
    check: Callable[[], Any], timeout: float = 20.0, what: str = "condition", step: float = 0.1
) -> Any:
    """`check()`'s first truthy result, polled every `step` until `timeout` (then fail)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (httpx.HTTPError, OSError) as err:
            last = err
        else:
            if last:
                return last
        time.sleep(step)
    raise AssertionError(f"{what} not reached within {timeout}s (last: {last!r})")


def get(daemon: Daemon, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.get(daemon.url + path, timeout=kwargs.pop("timeout", 10.0), **kwargs)


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of the first sample `name{labels...}` in exposition text (labels: a subset)."""
    for line in text.splitlines():
        match = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(match.group(3))
    return None


def metrics(daemon: Daemon, **kwargs: Any) -> str:
    response = get(daemon, "/metrics", **kwargs)
    assert response.status_code == 200, response.status_code
    return response.text


def polls(daemon: Daemon, account: str, **kwargs: Any) -> float:
    return sample(metrics(daemon, **kwargs), "connector_exporter_polls_total", account=account) or 0


def reason(text: str, account: str) -> str | None:
    """The reason set to 1 in connector_exporter_last_poll_failure_reason for `account`."""
    for line in text.splitlines():
        if line.startswith("connector_exporter_last_poll_failure_reason{") and line.endswith(
            " 1.0"
        ):
            labels: dict[str, str] = dict(re.findall(r'(\w+)="([^"]*)"', line))
            if labels.get("account") == account:
                return labels["reason"]
    return None


def vm_hwm(pid: int) -> int:
    """Peak resident set size of a process, in bytes (VmHWM)."""
    return proc_status_bytes(pid, "VmHWM")


def raw_connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    return s


def metrics_when(
    daemon: Daemon, predicate: Callable[[str], Any], timeout: float = 20.0, what: str = ""
) -> str:
    """The first /metrics text for which `predicate(text)` holds."""

    def check() -> str | None:
        text = metrics(daemon)
        return text if predicate(text) else None

    result: str = wait_until(check, timeout=timeout, what=what or "metrics condition")
    return result

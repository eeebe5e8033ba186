"""The real programs of the alert path: simulator, exporter, Prometheus, Alertmanager.

Each `start_*` starts one program from `Processes` on free 127.0.0.1 ports, waits until it is
ready and returns its base URL; `alert_path` starts all of them, wired together, with a webhook
receiver at the end.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml

from tests.alerts.procs import (
    ALERTMANAGER_EXAMPLE,
    EXPORTER,
    RULE_FILES,
    Notification,
    Proc,
    Processes,
    WebhookReceiver,
    alertmanager_binary,
    binary,
    free_port,
    load_yaml,
    wait_for,
)

JOB = "connector-exporter"


def get_json(url: str, **params: str) -> Any:
    response = httpx.get(url, params=params, timeout=5)
    response.raise_for_status()
    return response.json()


def ok(url: str) -> bool:
    return httpx.get(url, timeout=5).status_code == 200


def start_simulator(
    procs: Processes, fleet_sizes: dict[str, int] | None = None, args: Sequence[str] = ()
) -> str:
    port = free_port()
    sizes = [f"--fleet-size={vendor}={n}" for vendor, n in (fleet_sizes or {}).items()]
    procs.start("simulator", [str(EXPORTER), "simulate", "--port", str(port), *sizes, *args])
    base = f"http://127.0.0.1:{port}"
    wait_for(
        "the simulator",
        lambda: ok(f"{base}/_control/fivetran/connectors"),
        timeout=20,
        on_timeout=procs.logs,
    )
    return base


# The control API changes one connector per call: calls go out from a small pool, bounded and
# fast enough for a fleet of hundreds.
WORKERS = 16


def set_healths(
    simulator: str, health: str, ids: list[str] | None = None, vendor: str = "fivetran"
) -> None:
    """Every connector of `vendor` in `ids` (default: all of them) to `health`."""
    if ids is None:
        ids = [c["id"] for c in get_json(f"{simulator}/_control/{vendor}/connectors")]
    with httpx.Client(timeout=10) as client, ThreadPoolExecutor(max_workers=WORKERS) as pool:

        def one(cid: str) -> None:
            url = f"{simulator}/_control/{vendor}/connectors/{cid}/health"
            client.post(url, json={"health": health}).raise_for_status()

        list(pool.map(one, ids))


def start_exporter(
    procs: Processes, accounts: list[dict[str, Any]], poll: str = "1s", args: Sequence[str] = ()
) -> str:
    config = procs.workdir / "exporter.yml"
    config.write_text(
        yaml.safe_dump(
            {"poll_interval": poll, "max_retries": 0, "request_timeout": "5s", "accounts": accounts}
        )
    )
    address = f"127.0.0.1:{free_port()}"
    procs.start(
        "exporter",
        [str(EXPORTER), "run", "--config", str(config), "--listen-address", address, *args],
    )
    wait_for("the exporter", lambda: ok(f"http://{address}/readyz"), 30, 0.2, procs.logs)
    return address


def shortened_rules(
    target: Path,
    new_for: str,
    overrides: dict[str, str] | None = None,
    keep_firing_for: str = "1s",
) -> list[Path]:
    """Copies of the shipped rule files with every `for:` replaced by `new_for` (or, for the
    alerts named in `overrides`, by their own duration), and every `keep_firing_for:` by
    `keep_firing_for`.

    A textual rewrite, not a YAML round trip, so everything else is byte for byte what ships.
    """
    overrides = overrides or {}
    target.mkdir(parents=True, exist_ok=True)
    copies = []
    for rule_file in RULE_FILES:
        alert = ""
        lines = []
        rewritten = 0
        for line in rule_file.read_text().splitlines(keepends=True):
            if m := re.match(r"^\s*- alert: (\S+)$", line):
                alert = m.group(1)
            if m := re.match(r"^(\s+)for: \S+$", line):
                line = f"{m.group(1)}for: {overrides.get(alert, new_for)}\n"
                rewritten += 1
            elif m := re.match(r"^(\s+)keep_firing_for: \S+$", line):
                line = f"{m.group(1)}keep_firing_for: {keep_firing_for}\n"
            lines.append(line)
        if rule_file.name == "connector-alerts.rules.yml":
            assert rewritten >= 10, f"expected a `for` per alert in {rule_file.name}: {rewritten}"
        copies.append(target / rule_file.name)
        copies[-1].write_text("".join(lines))
    return copies


def start_alertmanager(
    procs: Processes, webhook: str, without_inhibition_by: str | None = None
) -> str:
    """Alertmanager with the shipped example's routes and inhibitions, receivers -> webhook.

    Only the receivers (placeholders for PagerDuty/Slack/the heartbeat) and the timers change:
    each receiver becomes a webhook at `webhook/<receiver name>`, so the test sees which route
    was taken. `without_inhibition_by` drops the inhibit rules whose source is that alert (to
    measure what they save).
    """
    config = load_yaml(ALERTMANAGER_EXAMPLE)
    names = [r["name"] for r in config["receivers"]]
    assert sorted(names) == ["heartbeat", "null", "pager", "tickets"], names
    if without_inhibition_by is not None:
        source = f'alertname="{without_inhibition_by}"'
        kept = [r for r in config["inhibit_rules"] if source not in r["source_matchers"]]
        assert len(kept) < len(config["inhibit_rules"]), without_inhibition_by
        config["inhibit_rules"] = kept
    hooks = {name: [{"url": f"{webhook}/{name}", "send_resolved": True}] for name in names}
    config["receivers"] = [
        {"name": name} if name == "null" else {"name": name, "webhook_configs": hooks[name]}
        for name in names
    ]
    config["route"].update(group_wait="1s", group_interval="1s", repeat_interval="1h")
    for route in config["route"]["routes"]:
        for timer in ("group_wait", "group_interval", "repeat_interval"):
            route.pop(timer, None)
    flags = ["--cluster.listen-address=", "--log.level=debug"]
    return _serve(procs, "Alertmanager", config, alertmanager_binary(), "--storage.path", flags)


def start_prometheus(
    procs: Processes,
    exporter: str,
    alertmanager: str,
    rule_files: list[Path],
    scrape_interval: str = "1s",
    evaluation_interval: str = "1s",
) -> str:
    config = {
        "global": {
            "scrape_interval": scrape_interval,
            "evaluation_interval": evaluation_interval,
            "scrape_timeout": scrape_interval,
        },
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": [exporter]}]}],
        "alerting": {
            "alertmanagers": [
                {"static_configs": [{"targets": [alertmanager.removeprefix("http://")]}]}
            ]
        },
    }
    # send firing alerts on every evaluation so Alertmanager never times them out
    flags = ["--rules.alert.resend-delay=1s", "--log.level=info"]
    return _serve(procs, "Prometheus", config, binary("prometheus"), "--storage.tsdb.path", flags)


def _serve(
    procs: Processes,
    label: str,
    config: dict[str, Any],
    program: str,
    storage_flag: str,
    flags: list[str],
) -> str:
    """Prometheus or Alertmanager (both take the same config, storage and address flags) with
    `config` and its own data folder, on a free port; its base URL once it is ready."""
    name = label.lower()
    path = procs.workdir / f"{name}.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    storage = procs.workdir / f"{name}-data"
    storage.mkdir()
    address = f"127.0.0.1:{free_port()}"
    procs.start(
        name,
        [
            program,
            f"--config.file={path}",
            f"{storage_flag}={storage}",
            f"--web.listen-address={address}",
            *flags,
        ],
    )
    wait_for(label, lambda: ok(f"http://{address}/-/ready"), 30, 0.2, procs.logs)
    return f"http://{address}"


def query(prometheus: str, promql: str) -> list[dict[str, Any]]:
    data = get_json(f"{prometheus}/api/v1/query", query=promql)
    assert data["status"] == "success", data
    result: list[dict[str, Any]] = data["data"]["result"]
    return result


def fivetran_account(simulator: str, name: str) -> dict[str, Any]:
    """The config account that polls the simulated Fivetran fleet."""
    return {
        "vendor": "fivetran",
        "name": name,
        "api_key": "sim-key",
        "api_secret": "sim-secret",
        "base_url": f"{simulator}/fivetran",
    }


@dataclass
class AlertPath:
    """simulator -> exporter -> Prometheus -> Alertmanager -> `receiver`, all running."""

    procs: Processes
    receiver: WebhookReceiver
    simulator: str
    exporter: str
    prometheus: str
    alertmanager: str

    def logs(self) -> str:
        return self.receiver.describe() + "\n" + self.procs.logs()

    def proc(self, name: str) -> Proc:
        return next(p for p in self.procs.procs if p.name == name)

    def set_health(self, vendor: str, connector_id: str, health: str) -> None:
        url = f"{self.simulator}/_control/{vendor}/connectors/{connector_id}/health"
        httpx.post(url, json={"health": health}, timeout=5).raise_for_status()

    def notification(
        self,
        what: str,
        since: float,
        path: str | None = None,
        status: str | None = None,
        timeout: float = 60,
        **labels: str,
    ) -> tuple[Notification, dict[str, Any]]:
        """The first (notification, alert) after `since` that matches, waited for."""
        return wait_for(
            what,
            lambda: next(self.receiver.find(since, path, status, **labels), None),
            timeout=timeout,
            on_timeout=self.logs,
        )

    def wait_scraped(self) -> None:
        wait_for(
            "Prometheus to scrape the exporter",
            lambda: query(self.prometheus, f'up{{job="{JOB}"}} == 1'),
            timeout=30,
            on_timeout=self.logs,
        )

    def wait_quiet(self, promql: str, what: str = "no alert firing", timeout: float = 30) -> None:
        """Until the query `promql` (an ALERTS selector) returns nothing."""
        wait_for(what, lambda: query(self.prometheus, promql) == [], timeout, 0.2, self.logs)


P = TypeVar("P", bound=AlertPath)


def alert_path(
    kind: type[P],
    tmp_path: Path,
    accounts: Callable[[str], list[dict[str, Any]]],
    rules: Callable[[Path], list[Path]],
    *,
    fleet_sizes: dict[str, int] | None = None,
    heal: bool = True,
    simulator_args: Sequence[str] = (),
    poll: str = "1s",
    exporter_args: Sequence[str] = (),
    without_inhibition_by: str | None = None,
    intervals: tuple[str, str] = ("1s", "1s"),
) -> Iterator[P]:
    """Starts the whole path (for a fixture to `yield from`) and stops it after.

    `accounts(simulator URL)` is the exporter's accounts, `rules(folder)` writes the rule files
    Prometheus loads; `heal` makes every simulated Fivetran connector healthy first, so that the
    only alerts are those the test causes. `intervals`: Prometheus' scrape and evaluation.
    """
    procs = Processes(tmp_path)
    receiver = WebhookReceiver()
    receiver.start()
    try:
        simulator = start_simulator(procs, fleet_sizes, simulator_args)
        if heal:
            set_healths(simulator, "healthy")
        exporter = start_exporter(procs, accounts(simulator), poll, exporter_args)
        alertmanager = start_alertmanager(procs, receiver.url(""), without_inhibition_by)
        prometheus = start_prometheus(
            procs, exporter, alertmanager, rules(tmp_path / "rules"), *intervals
        )
        yield kind(procs, receiver, simulator, exporter, prometheus, alertmanager)
    finally:
        procs.close()
        receiver.close()

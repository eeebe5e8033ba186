"""The landing page: rendered from real polls of the simulators, the health "since" the
scheduler carries forward, escaping, and the page as headless Chromium shows it."""

from __future__ import annotations

import html
import os
import re
import shutil
import struct
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from exporter.demo import DEMO_POLL_INTERVAL
from exporter.model import Connector, Health, Snapshot, StateSets
from exporter.scheduler import AccountRunner
from exporter.simulator import Simulator
from exporter.status import UNHEALTHY_ROWS as MAX_ROWS
from exporter.status import AccountStatus, carry_health_since, publish
from exporter.statuspage import REFRESH_SECONDS, landing_page
from exporter.vendors import REGISTRY
from tests.alerts.procs import Processes, binary, run, wait_for
from tests.conftest import make_config
from tests.conftest import status_of as published_status
from tests.grafana.stack import start_exporter

REPO = Path(__file__).resolve().parents[1]
SCREENSHOT = REPO / "docs" / "status-page.png"
WINDOW = (1280, 900)
SECRET_KEYS = ("api_key", "api_secret", "token", "app_id")
HOSTILE = '<img src=x onerror="document.title=1">&amp;'


NOW = 1_700_000_000.0


def assert_no_secrets(sim: Simulator, page: str) -> None:
    for secret in [str(a[k]) for a in sim.accounts() for k in SECRET_KEYS if k in a]:
        assert secret not in page


@pytest.fixture
async def runners(sim: Simulator) -> AsyncIterator[list[AccountRunner]]:
    """One runner per simulator account, each polled once (successfully) at NOW."""
    config = make_config(sim.accounts())
    started = [AccountRunner(a, config, clock=lambda: NOW) for a in config.accounts]
    try:
        for runner in started:
            assert await runner.poll()
        yield started
    finally:
        for runner in started:
            await runner.aclose()


def rows(page: str, table: str) -> list[str]:
    body = page.split(f'<table id="{table}">', 1)[1].split("</table>", 1)[0]
    return re.findall(r"<tr>.*?</tr>", body.split("<tbody>", 1)[1], flags=re.S)


def status_of(*connectors: Connector, since: dict[str, float] | None = None) -> AccountStatus:
    snap = Snapshot("fivetran", "prod", StateSets(), connectors, taken_at=1000.0)
    status = published_status(snap, interval=300.0, since=since)
    status.last_poll_end = status.last_success_end = 1000.0
    return status


# --- the page from real polls --------------------------------------------------------------
async def test_page_of_the_demo_fleet_lists_accounts_counts_and_unhealthy(
    sim: Simulator, runners: list[AccountRunner]
) -> None:
    statuses = [r.status for r in runners]
    page = landing_page(statuses, NOW + 90)

    connectors = [c for s in statuses if s.snapshot for c in s.snapshot.connectors]
    unhealthy = [c for c in connectors if c.health is not Health.HEALTHY]
    assert 0 < len(unhealthy) < len(connectors)
    for health in Health:
        expected = sum(1 for c in connectors if c.health is health)
        assert f'data-health="{health.value}"><b>{expected}</b>' in page, health

    listed = rows(page, "unhealthy")
    assert len(listed) == len(unhealthy)
    for c in unhealthy:
        assert any(f">{c.connector_id}<" in r and f"h-{c.health.value}" in r for r in listed)
    healthy_ids = [c.connector_id for c in connectors if c.health is Health.HEALTHY]
    assert not any(f">{cid}<" in r for cid in healthy_ids for r in listed)
    # Most severe first; paused last; "since" is the vendor's own time where it gives one,
    # else the first poll, 90 s before the page.
    assert "h-broken" in listed[0] and "h-paused" in listed[-1]
    assert all(">1m ago<" in r for r in listed if ">first seen<" in r)
    assert any(">relink needed at<" in r for r in listed)

    accounts = rows(page, "accounts")
    assert len(accounts) == 5
    assert accounts[1].startswith("<tr><td>bindbee</td><td>demo</td>")
    assert all('class="ok"' in r for r in accounts)
    assert f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">' in page
    assert_no_secrets(sim, page)


async def test_failed_poll_shows_failed_and_no_credentials(
    sim: Simulator, runners: list[AccountRunner]
) -> None:
    bindbee = next(r for r in runners if r.status.vendor == "bindbee")
    sim.vendors["bindbee"].token = "rotated"  # type: ignore[attr-defined]
    assert not await bindbee.poll()
    page = landing_page([r.status for r in runners], NOW)
    row = next(r for r in rows(page, "accounts") if "<td>bindbee</td>" in r)
    assert 'class="failed" title="' in row and ">failed<" in row
    assert bindbee.status.last_error  # the vendor's message, shown as the cell's title
    assert_no_secrets(sim, page)


async def test_health_since_follows_changes_between_polls(sim: Simulator) -> None:
    """The scheduler keeps, per connector, the first poll that showed its current health."""
    clock = [1_000.0]
    config = make_config([a for a in sim.accounts() if a["vendor"] == "fivetran"])
    runner = AccountRunner(config.accounts[0], config, clock=lambda: clock[0])
    assert await runner.poll()
    assert runner.status.published is not None
    first = dict(runner.status.published.since)
    snap = runner.status.snapshot
    assert snap is not None and set(first) == {c.connector_id for c in snap.connectors}
    assert set(first.values()) == {1_000.0}

    fivetran = sim.vendors["fivetran"]
    healthy = next(c for c in snap.connectors if c.health is Health.HEALTHY).connector_id
    fivetran.set_health(fivetran.connectors[healthy], "broken", clock[0])
    gone = next(c for c in snap.connectors if c.connector_id != healthy).connector_id
    del fivetran.connectors[gone]
    clock[0] = 2_000.0
    assert await runner.poll()
    assert runner.status.published is not None
    second = runner.status.published.since
    assert second[healthy] == 2_000.0
    assert gone not in second
    assert {k: v for k, v in second.items() if k != healthy} == {
        k: v for k, v in first.items() if k not in (healthy, gone)
    }

    # A failed poll changes nothing; the next good one keeps the unchanged times.
    clock[0] = 3_000.0
    async with httpx.AsyncClient() as client:
        r = await client.post(
            f"http://127.0.0.1:{sim.port}/_control/fivetran/faults", json={"mode": "unauthorized"}
        )
        assert r.status_code == 200
    assert not await runner.poll()
    assert runner.status.published is not None
    assert runner.status.published.since == second
    await runner.aclose()


def test_carry_health_since_is_pure_and_starts_at_the_first_snapshot() -> None:
    states = StateSets()
    a = Snapshot("v", "a", states, (Connector("x", health=Health.HEALTHY),), taken_at=10.0)
    b = Snapshot(
        "v",
        "a",
        states,
        (Connector("x", health=Health.HEALTHY), Connector("y", health=Health.FAILING)),
        taken_at=20.0,
    )
    c = Snapshot("v", "a", states, (Connector("x", health=Health.BROKEN),), taken_at=30.0)
    since = carry_health_since(None, a)
    assert since == {"x": 10.0}
    first = publish(a, since)
    assert carry_health_since(first, b) == {"x": 10.0, "y": 20.0}
    second = publish(b, {"x": 10.0, "y": 20.0})
    assert carry_health_since(second, c) == {"x": 30.0}
    assert first.since == {"x": 10.0}  # the input is not changed


# --- escaping and limits -------------------------------------------------------------------
def test_vendor_data_is_escaped() -> None:
    status = status_of(
        Connector("id<1>", name=HOSTILE, integration="<b>sf</b>", health=Health.BROKEN),
        since={"id<1>": 900.0},
    )
    status.account = 'prod"><script>'
    status.last_ok = False
    status.last_error = 'bad "request" <script>alert(1)</script>'
    page = landing_page([status], 1000.0)
    for raw in (HOSTILE, "<b>sf</b>", "id<1>", "<script>", '"request"'):
        assert raw not in page
    assert "&lt;img src=x onerror=&quot;document.title=1&quot;&gt;&amp;amp;" in page
    assert "id&lt;1&gt;" in page and "&lt;b&gt;sf&lt;/b&gt;" in page
    assert ">1m ago<" in page


def test_since_is_the_vendors_own_time_where_it_gives_one() -> None:
    """After a restart, a connector that has needed a relink for days reads days, not seconds."""
    day = 86400.0
    status = status_of(
        Connector("relink", health=Health.RELINK_NEEDED, relink_needed_since=1000.0 - 3 * day),
        Connector("relink-no-time", health=Health.RELINK_NEEDED),
        Connector("failing", health=Health.FAILING, last_failure=1000.0 - 2 * 3600),
        Connector("broken", health=Health.BROKEN, last_failure=1000.0 - 2 * 3600),
        since=dict.fromkeys(("relink", "relink-no-time", "failing", "broken"), 990.0),
    )
    page = landing_page([status], 1000.0)
    listed = {}
    for row in rows(page, "unhealthy"):
        match = re.search(r'class="small">([^<]+)</div>', row)
        assert match is not None
        listed[match[1]] = row
    assert ">3d 0h ago<" in listed["relink"] and ">relink needed at<" in listed["relink"]
    assert ">2h 0m ago<" in listed["failing"] and ">failed at<" in listed["failing"]
    for first_seen in ("relink-no-time", "broken"):
        assert ">10s ago<" in listed[first_seen] and ">first seen<" in listed[first_seen]
    assert "first seen</i>, the first poll" in page


def test_unhealthy_list_is_capped_but_counts_are_complete() -> None:
    many = [Connector(f"c{i:04d}", name=f"n{i}", health=Health.FAILING) for i in range(600)]
    page = landing_page([status_of(*many)], 1000.0)
    assert len(rows(page, "unhealthy")) == MAX_ROWS
    assert f"{600 - MAX_ROWS} more not shown" in page
    assert 'data-health="failing"><b>600</b>' in page


def test_all_healthy_and_no_accounts() -> None:
    page = landing_page([status_of(Connector("a", health=Health.HEALTHY))], 1000.0)
    assert "every connector is healthy" in page
    assert "no accounts configured" in landing_page([], 1000.0)


# --- in a real browser ---------------------------------------------------------------------
@dataclass
class Served:
    url: str
    sim: str


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """`connector-exporter run` against `connector-exporter simulate`: the demo fleet."""
    workdir = tmp_path_factory.mktemp("statuspage")
    procs = Processes(workdir)
    try:
        sim, exporter = start_exporter(procs, workdir, poll_interval=DEMO_POLL_INTERVAL)
        yield Served(exporter + "/", sim)
    finally:
        procs.close()


def chromium(tmp_path: Path, *args: str) -> str:
    """Headless Chromium (Debian's `chromium`; `make tools` installs it); its stdout."""
    result = run(
        [
            binary("chromium"),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            f"--user-data-dir={tmp_path / 'chromium-profile'}",
            *args,
        ],
        timeout=90,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_browser_renders_the_page_of_the_demo_fleet(served: Served, tmp_path: Path) -> None:
    dom = chromium(tmp_path, "--dump-dom", served.url)
    assert "<title>connector-exporter</title>" in dom
    text = re.sub(r"<[^>]+>", " ", dom)
    for word in ("Connectors by health", "Not healthy", "Accounts", "relink_needed", "broken"):
        assert word in text, word
    accounts = rows(dom, "accounts")
    assert [re.findall(r"<td>(\w+)</td>", r)[0] for r in accounts] == sorted(REGISTRY)
    assert all('class="ok"' in r for r in accounts)
    unhealthy = rows(dom, "unhealthy")
    assert len(unhealthy) >= 20 and "h-broken" in unhealthy[0]
    assert any(">ft_billing<" in r for r in unhealthy)

    shot = tmp_path / "status-page.png"
    chromium(tmp_path, f"--screenshot={shot}", f"--window-size={WINDOW[0]},{WINDOW[1]}", served.url)
    assert png_size(shot) == WINDOW
    assert shot.stat().st_size > 30_000  # a rendered page, not a blank one
    if os.environ.get("UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(shot, SCREENSHOT)


def test_docs_keep_a_screenshot_of_the_page() -> None:
    assert png_size(SCREENSHOT) == WINDOW
    assert SCREENSHOT.stat().st_size > 30_000


def test_browser_shows_hostile_names_as_text(served: Served, tmp_path: Path) -> None:
    with httpx.Client(base_url=served.sim + "/_control") as client:
        target = "ft_warehouse"
        assert client.patch(f"/fivetran/connectors/{target}", json={"schema": HOSTILE}).is_success
        assert client.post(
            f"/fivetran/connectors/{target}/health", json={"health": "broken"}
        ).is_success
        try:
            wait_for(
                "the next poll to pick up the renamed connector",
                lambda: html.escape(HOSTILE) in httpx.get(served.url, timeout=5).text,
                30,
            )
            dom = chromium(tmp_path, "--dump-dom", served.url)
        finally:
            client.post("/reset")
    row = next(r for r in rows(dom, "unhealthy") if f">{target}<" in r)
    assert "<img" not in dom
    # Chromium serialises the text node back, escaped: the name arrived as text.
    assert "&lt;img src=x onerror=" in row and "h-broken" in row
    assert "<title>connector-exporter</title>" in dom

"""Hostile clients of the HTTP endpoints: password floods, odd Authorization headers, reloads
racing checks, rotated TLS client CAs (issue 12, item 3). Every test runs the real daemon.
"""

from __future__ import annotations

import base64
import itertools
import json
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import bcrypt
import httpx
import pytest
import trustme
import yaml

from tests.reliability.hostile import (
    Daemon,
    fivetran_account,
    fivetran_item,
    hostile_vendor,
    listing,
    sample,
    start,
    wait_until,
    write_config,
)

PASSWORD = "correct horse battery staple"


def hashed(password: str, cost: int) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(cost)).decode()


def write_web(path: Path, users: dict[str, str], **extra: object) -> Path:
    path.write_text(yaml.safe_dump({"basic_auth_users": users, **extra}))
    return path


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def from_address(host: str) -> httpx.Client:
    """A client whose connections come from `host` (any 127.x.y.z is this machine)."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=host), timeout=60)


def timed_get(client: httpx.Client, url: str, **kwargs: object) -> tuple[int, float]:
    started = time.monotonic()
    status = client.get(url, **kwargs).status_code  # type: ignore[arg-type]
    return status, time.monotonic() - started


def idle_daemon(tmp_path: Path, password: str, cost: int) -> tuple[Daemon, Path]:
    """The daemon behind basic auth (user `prom`, bcrypt `cost`), its one poll an hour away;
    and its web config file, for a test to rewrite."""
    config = write_config(
        tmp_path / "config.yaml",
        [fivetran_account("a", "http://127.0.0.1:9/x")],
        poll_interval="1h",
    )
    web = write_web(tmp_path / "web.yaml", {"prom": hashed(password, cost)})
    return start(config, tmp_path / "daemon.log", "--web-config", str(web)), web


def wait_log(daemon: Daemon, text: str, count: int = 1, timeout: float = 20) -> None:
    wait_until(
        lambda: daemon.log_text().count(text) >= count, timeout=timeout, what=f"{text!r} logged"
    )


# 40 clients, each on its own connection, guessing as fast as they are answered.
FLOOD = """
import asyncio, base64, sys, time
import httpx
url, seconds = sys.argv[1], float(sys.argv[2])
async def attacker(client, i):
    auth = "Basic " + base64.b64encode(f"prom:guess-{i}".encode()).decode()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            await client.get(url, headers={"Authorization": auth})
        except httpx.HTTPError:
            await asyncio.sleep(0.05)
async def main():
    limits = httpx.Limits(max_connections=40, max_keepalive_connections=40)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        print("flooding", flush=True)
        await asyncio.gather(*(attacker(client, i) for i in range(40)))
asyncio.run(main())
"""


def poll_times(log: str) -> list[float]:
    out = []
    for line in log.splitlines():
        if line.startswith("{") and '"event": "poll"' in line:
            stamp = json.loads(line)["timestamp"]
            out.append(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp())
    return out


def test_password_flood_keeps_scrapes_fast_and_polls_on_time(tmp_path: Path) -> None:
    """40 clients guessing passwords against a cost-14 hash: scrapes and polls go on."""
    with hostile_vendor() as vendor:
        vendor.serve_json("v", listing([fivetran_item(f"c{i}") for i in range(50)]))
        config = write_config(tmp_path / "config.yaml", [fivetran_account("a", vendor.url("v"))])
        web = write_web(tmp_path / "web.yaml", {"prom": hashed(PASSWORD, 14)})
        daemon = start(config, tmp_path / "daemon.log", "--web-config", str(web))
        auth = {"Authorization": basic("prom", PASSWORD)}
        try:
            with httpx.Client(timeout=60) as client:
                # the first check of the right password is slow (cost 14), then cached
                wait_until(
                    lambda: client.get(daemon.url + "/metrics", headers=auth).status_code == 200,
                    timeout=60,
                    what="an authenticated scrape",
                )
                flood = subprocess.Popen(
                    [sys.executable, "-c", FLOOD, daemon.url + "/metrics", "15"],
                    stdout=subprocess.PIPE,
                )
                try:
                    assert flood.stdout is not None and flood.stdout.readline() == b"flooding\n"
                    latencies: list[float] = []
                    flood_from = time.time()
                    end = time.monotonic() + 14
                    while time.monotonic() < end:
                        started = time.monotonic()
                        try:
                            response = client.get(daemon.url + "/metrics", headers=auth, timeout=10)
                        except httpx.TimeoutException:
                            latencies.append(10.0)
                            continue
                        latencies.append(time.monotonic() - started)
                        assert response.status_code == 200, response.status_code
                        time.sleep(0.05)
                    flood_to = time.time()
                finally:
                    flood.kill()
                    flood.wait(10)
        finally:
            daemon.stop()
    # Poll delay: the longest gap between polls ending during the flood, past the 1s interval
    # (plus its 0.1s jitter), read from the daemon's own poll log lines.
    ends = (
        [flood_from]
        + [t for t in poll_times(daemon.log_text()) if flood_from <= t <= flood_to]
        + [flood_to]
    )
    worst_poll = max(b - a for a, b in itertools.pairwise(ends)) - 1.1
    latencies.sort()
    p99 = latencies[max(0, int(len(latencies) * 0.99) - 1)]
    print(
        f"\nunder the flood: scrape p50 {statistics.median(latencies) * 1000:.0f} ms, "
        f"p99 {p99 * 1000:.0f} ms over {len(latencies)} scrapes; "
        f"worst poll delay {worst_poll:.2f} s"
    )
    assert p99 < 1.0, f"scrape p99 {p99:.2f}s under a password flood"
    assert worst_poll < 2.5, f"a poll was {worst_poll:.1f}s late under a password flood"


def test_no_cached_password_survives_a_reload(tmp_path: Path) -> None:
    """A check in flight while SIGHUP rotates the password must not cache the old one."""
    daemon, web = idle_daemon(tmp_path, "old-password", 13)
    new_hash = hashed("new-password", 4)
    try:
        wait_until(lambda: httpx.get(daemon.url + "/healthz").status_code == 200, what="up")
        old = {"Authorization": basic("prom", "old-password")}
        with httpx.Client(timeout=60) as client:
            import threading

            first: list[int] = []
            in_flight = threading.Thread(
                target=lambda: first.append(
                    client.get(daemon.url + "/metrics", headers=old).status_code
                )
            )
            in_flight.start()
            time.sleep(0.3)  # the check (cost 13, about a second) is under way
            write_web(web, {"prom": new_hash})
            daemon.signal(signal.SIGHUP)
            wait_log(daemon, '"event": "reloaded"')
            in_flight.join(60)
            assert first, "the in-flight request did not finish"
        with httpx.Client(timeout=60) as client:
            status = client.get(daemon.url + "/metrics", headers=old).status_code
            assert status == 401, "the old password still works after the reload"
            new = {"Authorization": basic("prom", "new-password")}
            assert client.get(daemon.url + "/metrics", headers=new).status_code == 200
    finally:
        daemon.stop()


def test_unknown_and_known_users_cost_the_same(tmp_path: Path) -> None:
    daemon, _ = idle_daemon(tmp_path, PASSWORD, 12)
    try:
        wait_until(lambda: httpx.get(daemon.url + "/healthz").status_code == 200, what="up")
        known: list[float] = []
        unknown: list[float] = []
        # each from its own address, so that no attempt is throttled
        for i in range(3):
            with from_address(f"127.0.0.{10 + i}") as client:
                status, took = timed_get(
                    client, daemon.url + "/metrics", headers={"Authorization": basic("prom", "x")}
                )
                assert status == 401
                known.append(took)
            with from_address(f"127.0.0.{20 + i}") as client:
                status, took = timed_get(
                    client, daemon.url + "/metrics", headers={"Authorization": basic("nobody", "x")}
                )
                assert status == 401
                unknown.append(took)
    finally:
        daemon.stop()
    ratio = statistics.median(unknown) / statistics.median(known)
    print(
        f"\nwrong password {statistics.median(known):.2f}s, unknown user "
        f"{statistics.median(unknown):.2f}s"
    )
    assert 0.6 < ratio < 1.6, f"unknown users answer {ratio:.2f}x the time of known ones"


MALFORMED = [
    b"Basic",
    b"Basic ",
    b"Basic !!!!",
    b"Basic " + base64.b64encode(b"no-colon-here"),
    b"Basic " + base64.b64encode(b"\xff\xfe:\xff"),
    b"Basic \xc3\xa9\xc3\xa9",  # non-ASCII where base64 is expected
    b"Basic " + base64.b64encode(("prom:" + "x" * 200).encode()),  # past bcrypt's 72 bytes
    b"Basic " + base64.b64encode(b"prom:a\x00b"),
    b"Basic " + base64.b64encode(b"prom:\xed\xa0\x80"),  # a UTF-8-encoded surrogate
    b"Basic " + base64.b64encode("pröm:pässwörd".encode()),
    b"Basic " + b"QUFB" * 1500,  # long, yet under the 8 KiB header line limit
    b"Bearer abc",
    b"basic " + base64.b64encode(b"prom:wrong"),
    b"\xff\xfe\xfd",
]


def raw_status(port: int, source: str, authorization: bytes) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=30, source_address=(source, 0)) as s:
        s.sendall(
            b"GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: "
            + authorization
            + b"\r\nConnection: close\r\n\r\n"
        )
        head = s.recv(64)
    return int(head.split(b" ")[1])


def test_every_malformed_authorization_is_401(tmp_path: Path) -> None:
    daemon, _ = idle_daemon(tmp_path, PASSWORD, 4)
    try:
        wait_until(lambda: httpx.get(daemon.url + "/healthz").status_code == 200, what="up")
        statuses = {
            value[:40]: raw_status(daemon.port, f"127.0.1.{i + 1}", value)
            for i, value in enumerate(MALFORMED)
        }
    finally:
        daemon.stop()
    assert {k: s for k, s in statuses.items() if s != 401} == {}


def test_weak_bcrypt_cost_is_warned(tmp_path: Path) -> None:
    daemon, _ = idle_daemon(tmp_path, PASSWORD, 4)
    try:
        wait_log(daemon, '"event": "started"')
        log = daemon.log_text()
        assert "web_config_warning" in log and "bcrypt cost 4 is weak" in log, log
        assert hashed.__name__ and PASSWORD not in log
    finally:
        daemon.stop()


@pytest.mark.parametrize(
    "broken",
    ["", "\n", "basic_auth_users:\n", "basic_auth_users:\n  prom: $2b$12$abcdefghij"],
    ids=["empty", "blank", "cut-after-key", "cut-in-hash"],
)
def test_empty_or_truncated_web_config_at_reload_keeps_the_old_one(
    tmp_path: Path, broken: str
) -> None:
    daemon, web = idle_daemon(tmp_path, PASSWORD, 4)
    try:
        wait_log(daemon, '"event": "started"')
        web.write_text(broken)
        daemon.signal(signal.SIGHUP)
        wait_log(daemon, '"event": "reload_failed"')
        assert httpx.get(daemon.url + "/metrics").status_code == 401
        text = httpx.get(
            daemon.url + "/metrics", headers={"Authorization": basic("prom", PASSWORD)}
        ).text
        assert sample(text, "connector_exporter_config_last_reload_successful") == 0
    finally:
        daemon.stop()


def _client(ca: trustme.CA, client_ca: trustme.CA) -> httpx.Client:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    client_ca.issue_cert("scraper@example.test").configure_cert(ctx)
    return httpx.Client(verify=ctx, timeout=10)


def _handshake_ok(daemon: Daemon, client: httpx.Client) -> bool:
    try:
        return client.get(daemon.url + "/healthz").status_code == 200
    except (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError, ssl.SSLError):
        return False


def test_tls_and_client_ca_are_rebuilt_on_reload(tmp_path: Path) -> None:
    """SIGHUP with a new server certificate and a new client CA: new connections use both."""
    server_ca, old_clients, new_server_ca, new_clients = (trustme.CA() for _ in range(4))
    cert, key, client_ca = tmp_path / "server.pem", tmp_path / "server.key", tmp_path / "ca.pem"

    def install(issuer: trustme.CA, clients: trustme.CA) -> None:
        leaf = issuer.issue_cert("127.0.0.1")
        leaf.cert_chain_pems[0].write_to_path(str(cert))
        leaf.private_key_pem.write_to_path(str(key))
        clients.cert_pem.write_to_path(str(client_ca))

    install(server_ca, old_clients)
    web = tmp_path / "web.yaml"
    web.write_text(
        yaml.safe_dump(
            {
                "tls_server_config": {
                    "cert_file": str(cert),
                    "key_file": str(key),
                    "client_ca_file": str(client_ca),
                    "client_auth_type": "RequireAndVerifyClientCert",
                }
            }
        )
    )
    config = write_config(
        tmp_path / "config.yaml",
        [fivetran_account("a", "http://127.0.0.1:9/x")],
        poll_interval="1h",
    )
    daemon = start(config, tmp_path / "daemon.log", "--web-config", str(web), scheme="https")
    try:
        wait_log(daemon, '"event": "started"')
        with _client(server_ca, old_clients) as before:
            assert _handshake_ok(daemon, before)
        install(new_server_ca, new_clients)
        daemon.signal(signal.SIGHUP)
        wait_log(daemon, '"event": "reloaded"')
        with _client(new_server_ca, old_clients) as old_client_cert:
            assert not _handshake_ok(daemon, old_client_cert), "the old client CA still trusted"
        with _client(server_ca, new_clients) as old_server_trust:
            assert not _handshake_ok(daemon, old_server_trust), "the old server cert still served"
        with _client(new_server_ca, new_clients) as after:
            assert _handshake_ok(daemon, after)
    finally:
        daemon.stop()

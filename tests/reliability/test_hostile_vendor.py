"""Hostile vendor answers against the real daemon (issue 12, items 1 and 6).

A vendor API, or whoever controls one, can send compression bombs, cookies, listings without
their list, zero dates and collapsed listings. The daemon must keep its memory bounded, keep no
state between requests, keep the last good listing and say why each poll failed.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import pytest
from aiohttp import web

from exporter.vendors.base import MAX_RESPONSE_BYTES
from tests.reliability.hostile import (
    daemon_on_listing,
    fivetran_account,
    fivetran_item,
    hostile_vendor,
    listing,
    metrics,
    metrics_when,
    polls,
    reason,
    sample,
    start,
    vm_hwm,
    wait_until,
    write_config,
)

# Decoded, this is 768 MiB of JSON padding: 24 times the cap. Two gzip layers make the bytes on
# the wire a few KiB (gzip alone tops out near 1:1000; a second layer squeezes the repeats).
BOMB_DECODED = 768 * 1024 * 1024


def _bomb_layer() -> bytes:
    head = b'{"code": "Success", "data": {"items": [], "pad": "'
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    out = [compressor.compress(head)]
    block = b"x" * (8 * 1024 * 1024)
    for _ in range(BOMB_DECODED // len(block)):
        out.append(compressor.compress(block))
    out.append(compressor.compress(b'"}}'))
    out.append(compressor.flush())
    return b"".join(out)


@pytest.fixture(scope="module")
def bombs() -> dict[str, bytes]:
    inner = _bomb_layer()
    # gzip of a gzip; deflate (zlib) of a gzip: both stacks httpx decodes in one piece.
    return {"gzip, gzip": gzip.compress(inner, 9), "gzip, deflate": zlib.compress(inner, 9)}


def test_stacked_encodings_are_capped_once_decoded(tmp_path: Path, bombs: dict[str, bytes]) -> None:
    """A few KiB of stacked gzip must fail the poll as too_large, with RSS near the cap."""
    with hostile_vendor() as vendor:
        for prefix, (encoding, body) in zip(("gz2", "dfl"), bombs.items(), strict=True):

            async def bomb(_: web.Request, body: bytes = body, enc: str = encoding) -> web.Response:
                return web.Response(
                    body=body,
                    headers={"Content-Encoding": enc, "Content-Type": "application/json"},
                )

            vendor.handlers[prefix] = bomb
        config = write_config(
            tmp_path / "config.yaml",
            [fivetran_account(p, vendor.url(p)) for p in ("gz2", "dfl")],
            poll_interval="1h",
        )
        daemon = start(config, tmp_path / "daemon.log")
        try:
            text = metrics_when(
                daemon,
                lambda t: reason(t, "gz2") and reason(t, "dfl"),
                timeout=60,
                what="both bomb polls failed",
            )
            peak = vm_hwm(daemon.proc.pid)
            print(f"\npeak RSS (VmHWM) during the decoded-size attack: {peak / 2**20:.0f} MiB")
            assert reason(text, "gz2") == "too_large", daemon.log_text()[-2000:]
            assert reason(text, "dfl") == "too_large"
            # The cap plus the joined copy and the interpreter: far below one bomb's size.
            assert peak < 3 * MAX_RESPONSE_BYTES + 100 * 2**20, f"peak RSS {peak / 2**20:.0f} MiB"
            assert "larger than" in daemon.log_text()
        finally:
            daemon.stop()


def test_vendor_cookies_are_never_sent_back(tmp_path: Path) -> None:
    """Page 1 sets a cookie; page 2 (same poll) and the next poll must not carry it."""
    with hostile_vendor() as vendor:

        async def paged(request: web.Request) -> web.Response:
            if request.query.get("cursor") == "page2":
                return web.json_response(listing([fivetran_item("c2")]))
            response = web.json_response(listing([fivetran_item("c1")], cursor="page2"))
            response.set_cookie("session", "vendor-tracking-cookie", path="/")
            response.headers.add("Set-Cookie", "other=1; Domain=127.0.0.1; Path=/")
            return response

        vendor.handlers["paged"] = paged
        config = write_config(
            tmp_path / "config.yaml", [fivetran_account("a", vendor.url("paged"))]
        )
        daemon = start(config, tmp_path / "daemon.log")
        try:
            wait_until(lambda: polls(daemon, "a") >= 2, timeout=30, what="two polls")
            assert len(vendor.headers_seen) >= 4
            sent = [h for h in vendor.headers_seen if "Cookie" in h or "cookie" in h]
            assert sent == [], f"cookies sent back: {sent[:2]}"
            assert sample(metrics(daemon), "connector_exporter_connectors", account="a") == 2
        finally:
            daemon.stop()


def test_listing_without_its_list_key_keeps_the_last_good(tmp_path: Path) -> None:
    """`{"data": {}}` is a bad response: the poll fails and the last good series stay."""
    items = [fivetran_item("c1"), fivetran_item("c2")]
    with daemon_on_listing(tmp_path, items) as (vendor, daemon, _):
        wait_until(lambda: reason(metrics(daemon), "a") == "none", what="a good poll")
        before = polls(daemon, "a")
        vendor.serve_json("v", {"code": "Success", "data": {}})
        wait_until(lambda: polls(daemon, "a") >= before + 2, timeout=30, what="two polls")
        text = metrics(daemon)
        assert reason(text, "a") == "bad_response"
        assert sample(text, "connector_exporter_poll_success", account="a") == 0
        assert sample(text, "connector_exporter_connectors", account="a") == 2
        assert sample(text, "connector_info", connector_id="c2") == 1


def test_timestamps_at_or_before_the_epoch_give_no_series(tmp_path: Path) -> None:
    items = [
        fivetran_item("zero", succeeded_at="1970-01-01T00:00:00Z"),
        fivetran_item("old", succeeded_at="0001-01-01T00:00:00Z"),
        fivetran_item("neg", failed_at="1969-12-31T23:59:59Z"),
        fivetran_item("real", succeeded_at="2024-12-01T00:00:00Z"),
    ]
    with daemon_on_listing(tmp_path, items) as (_, daemon, _):
        text = metrics_when(daemon, lambda t: reason(t, "a") == "none", what="a good poll")
        for family in (
            "connector_last_success_timestamp_seconds",
            "connector_last_success_age_seconds",
            "connector_last_failure_timestamp_seconds",
        ):
            for cid in ("zero", "old", "neg"):
                assert sample(text, family, connector_id=cid) is None, (family, cid)
        assert sample(text, "connector_last_success_timestamp_seconds", connector_id="real")


def test_collapsed_listing_is_held_until_confirmed(tmp_path: Path) -> None:
    """drop_guard {max_drop: 0.5, confirm_polls: 3}: 10 -> 1 connectors is held for 2 polls."""
    with hostile_vendor() as vendor:
        ten = listing([fivetran_item(f"c{i}") for i in range(10)])
        vendor.serve_json("v", ten)
        vendor.serve_json("w", ten)
        guard = {"max_drop": 0.5, "confirm_polls": 3}
        config = write_config(
            tmp_path / "config.yaml",
            [
                fivetran_account("guarded", vendor.url("v"), drop_guard=guard),
                fivetran_account("open", vendor.url("w")),
            ],
        )
        daemon = start(config, tmp_path / "daemon.log")
        try:
            wait_until(lambda: reason(metrics(daemon), "guarded") == "none", what="a good poll")
            seen: list[tuple[str | None, float | None]] = []

            def record() -> bool:
                text = metrics(daemon)
                state = (
                    reason(text, "guarded"),
                    sample(text, "connector_exporter_connectors", account="guarded"),
                )
                if not seen or seen[-1] != state:
                    seen.append(state)
                return state == ("none", 1.0)

            start_polls = polls(daemon, "guarded")
            vendor.serve_json("v", listing([fivetran_item("c0")]))
            vendor.serve_json("w", listing([fivetran_item("c0")]))
            wait_until(record, timeout=30, step=0.05, what="the shrunken listing believed")
            # held on the first polls (last good kept), then believed: never wiped at once
            assert ("suspicious_drop", 10.0) in seen, seen
            assert polls(daemon, "guarded") - start_polls >= 3
            log = daemon.log_text()
            assert log.count('"reason": "suspicious_drop"') >= 2, log[-3000:]
            # without a guard the same listing is believed at once
            text = metrics(daemon)
            assert sample(text, "connector_exporter_connectors", account="open") == 1
        finally:
            daemon.stop()


def test_every_failed_poll_sets_its_reason(tmp_path: Path) -> None:
    with hostile_vendor() as vendor:
        vendor.serve_json("auth", {"message": "bad key"}, status=401)
        vendor.serve_json("http", {"message": "down"}, status=503)
        vendor.serve_json("bad", ["not", "an", "object"])

        async def hang(_: web.Request) -> web.Response:
            import asyncio

            await asyncio.sleep(30)
            return web.json_response({})

        vendor.handlers["slow"] = hang
        closed = f"http://127.0.0.1:{_closed_port()}/x"
        config = write_config(
            tmp_path / "config.yaml",
            [
                fivetran_account("auth", vendor.url("auth")),
                fivetran_account("http", vendor.url("http")),
                fivetran_account("bad", vendor.url("bad")),
                fivetran_account("slow", vendor.url("slow")),
                fivetran_account("transport", closed),
            ],
            request_timeout="1s",
            poll_interval="1h",
        )
        daemon = start(config, tmp_path / "daemon.log")
        expected = {
            "auth": "auth",
            "http": "http",
            "bad": "bad_response",
            "slow": "timeout",
            "transport": "transport",
        }
        try:
            text = metrics_when(
                daemon,
                lambda t: all(reason(t, a) for a in expected),
                timeout=30,
                what="every account polled",
            )
            assert {a: reason(text, a) for a in expected} == expected
            for account in expected:  # exactly one reason at 1, every other at 0
                ones = [
                    line
                    for line in text.splitlines()
                    if line.startswith("connector_exporter_last_poll_failure_reason{")
                    and f'account="{account}"' in line
                ]
                assert len(ones) == 8 and sum(line.endswith(" 1.0") for line in ones) == 1
        finally:
            daemon.stop()


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])

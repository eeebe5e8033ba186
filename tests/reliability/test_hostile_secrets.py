"""Secrets in every form, and vendor text that attacks the page and the log (issue 12, item 2).

A vendor's 401 echoes what it was sent: the Authorization header, its base64 token, the key
JSON-escaped, URL-encoded, repr'd; plus a lone surrogate, terminal escapes, a forged log line
and 100 KB of padding. None of it may reach the log, `/`, `/metrics`; `/` must still answer.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from urllib.parse import quote, quote_plus

from aiohttp import web

from tests.conftest import cli
from tests.reliability.hostile import (
    fivetran_account,
    get,
    hostile_vendor,
    metrics,
    metrics_when,
    reason,
    start,
    write_config,
)

# Quotes, a backslash and non-ASCII: each escaping (JSON, repr, URL) writes them differently.
KEY = 'hostile"key\\with/odd+chars=1'
SECRET = "sécret-valüe-2024-ünïcode"


def derived_forms() -> dict[str, str]:
    pair = f"{KEY}:{SECRET}".encode()
    token = base64.b64encode(pair).decode()
    forms = {
        "key": KEY,
        "secret": SECRET,
        "basic token": token,
        "basic token unpadded": token.rstrip("="),
        "header": f"Basic {token}",
    }
    for name, value in (("key", KEY), ("secret", SECRET)):
        forms[f"{name} json"] = json.dumps(value)[1:-1]
        forms[f"{name} repr"] = repr(value)[1:-1]
        forms[f"{name} url"] = quote(value, safe="")
        forms[f"{name} url+"] = quote_plus(value, safe="")
        forms[f"{name} unicode_escape"] = value.encode("unicode_escape").decode()
    return forms


def echoing_401(request: web.Request) -> web.Response:
    header = request.headers.get("Authorization", "")
    token = header.partition(" ")[2]
    echoed = " | ".join(
        [
            f"you sent {header}",
            f"token={token}",
            f"decoded={base64.b64decode(token).decode()!r}",
            f"key={json.dumps(KEY)}",
            f"secret={quote(SECRET)} {quote_plus(SECRET)}",
            f"repr={SECRET!r} {SECRET.encode('unicode_escape').decode()}",
        ]
    )
    # A lone surrogate only exists as a JSON escape; terminal escapes and a forged log line.
    message = json.dumps(echoed + " \x1b[31mRED\x1b[0m\nFORGED LOG LINE\r\n" + "A" * 100_000)
    body = '{"message": "\\ud800 ' + message[1:] + "}"
    return web.Response(body=body.encode(), status=401, content_type="application/json")


async def _echo(request: web.Request) -> web.StreamResponse:
    return echoing_401(request)


def test_no_derived_form_of_a_secret_leaks_and_the_page_survives(tmp_path: Path) -> None:
    with hostile_vendor() as vendor:
        vendor.handlers["echo"] = _echo
        account = fivetran_account("echo", vendor.url("echo"), api_key=KEY, api_secret=SECRET)
        config = write_config(tmp_path / "config.yaml", [account])
        daemon = start(config, tmp_path / "daemon.log")
        try:
            text = metrics_when(daemon, lambda t: reason(t, "echo") == "auth", what="a 401")
            page = get(daemon, "/")
            assert page.status_code == 200, page.status_code  # a lone surrogate made it 500
            outputs = {
                "log": daemon.log_text(),
                "/": page.text,
                "/metrics": text
                + metrics(daemon, headers={"Accept": "application/openmetrics-text"}),
                "/healthz": get(daemon, "/healthz").text,
                "/readyz": get(daemon, "/readyz").text,
            }
        finally:
            daemon.stop()
        for where, output in outputs.items():
            for name, form in derived_forms().items():
                assert form not in output, f"{name} ({form!r}) leaked into {where}"
        log, html = outputs["log"], outputs["/"]
        assert "[REDACTED]" in log and "you sent" in log  # the message itself was kept
        # sanitised: no forged line, no escapes; capped: not 100 KB of padding
        assert not any(line.startswith("FORGED") for line in log.splitlines())
        assert "\\u001b" not in log and "\x1b" not in html and "\\ud800" not in log
        assert "A" * 1000 not in log and "A" * 1000 not in html


def test_secret_with_a_control_character_is_rejected_without_its_value(tmp_path: Path) -> None:
    token_file = tmp_path / "api_secret"
    token_file.write_text("first-half-of-token\nsecond-half-of-token\n")
    config = write_config(
        tmp_path / "config.yaml",
        [
            {
                "vendor": "fivetran",
                "name": "a",
                "base_url": "http://127.0.0.1:9/x",
                "api_key": "tab\there-in-the-key",
                "api_secret_file": str(token_file),
            }
        ],
    )
    for command in ("check-config", "run"):
        done = cli(command, "--config", str(config), timeout=30)
        output = done.stdout + done.stderr
        assert done.returncode == 2, output
        assert "accounts[0].api_secret: contains a control character" in output, output
        assert "accounts[0].api_key: contains a control character" in output, output
        for part in ("first-half", "second-half", "here-in-the-key"):
            assert part not in output
        assert "Traceback" not in output

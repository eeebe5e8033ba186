"""Structured logs: one JSON object per line off a TTY, stdlib loggers routed through the same
output, and registered secrets redacted in every field."""

from __future__ import annotations

import io
import json
import logging

import structlog

from exporter import logs


def test_json_lines_and_redaction() -> None:
    out = io.StringIO()
    logs.register_secrets(["secret-token-abc123", "tiny"])
    logs.configure("info", "json", stream=out)
    try:
        structlog.get_logger("t").info("poll", error="HTTP 401: bad secret-token-abc123", n=3)
        structlog.get_logger("t").debug("hidden")
        logging.getLogger("aiohttp.server").warning("from %s", "secret-token-abc123")
    finally:
        logs.configure("info", "json")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["event"] for line in lines] == ["poll", "from [REDACTED]"]
    assert lines[0]["error"] == "HTTP 401: bad [REDACTED]" and lines[0]["n"] == 3
    assert lines[0]["level"] == "info" and lines[0]["timestamp"].endswith("Z")
    assert "secret-token-abc123" not in out.getvalue()


def test_short_values_are_not_treated_as_secrets() -> None:
    logs.register_secrets(["abc"])
    assert logs.redact("abc is a word") == "abc is a word"


def test_noisy_libraries_only_from_warning() -> None:
    logs.configure("debug", "json", stream=io.StringIO())
    try:
        assert logging.getLogger("httpx").level == logging.WARNING
        assert logging.getLogger("apscheduler").level == logging.WARNING
    finally:
        logs.configure("info", "json")

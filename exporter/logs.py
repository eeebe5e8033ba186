"""Structured logging: JSON lines off a TTY, readable console lines on one; secrets redacted."""

from __future__ import annotations

import base64
import binascii
import html
import json
import logging
import re
import sys
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any, TextIO
from urllib.parse import quote, quote_plus

import structlog

REDACTED = "[REDACTED]"
# Very short values would redact ordinary words; real API keys are far longer.
MIN_SECRET_LENGTH = 6
# Vendor-supplied text (error messages) kept in logs and on the landing page, at most.
VENDOR_TEXT_CAP = 300
# Every credential the config holds, in every form it can be echoed back. Log calls never pass
# secrets on purpose; this is the net under that rule, for the day a vendor echoes a token (or
# the Basic pair it was sent, or an escaped copy of either) inside an error message.
_secrets: set[str] = set()
_ordered: tuple[str, ...] = ()
# C0/C1 controls (newline, ESC, NUL, DEL...), lone surrogates and bidi overrides: nothing a
# vendor sends may forge log lines, break UTF-8 output or reorder what a reader sees.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\u202a-\u202e\u2066-\u2069]")


def sanitise(text: str, cap: int = VENDOR_TEXT_CAP) -> str:
    """`text` safe to log and show: controls and invalid code points replaced, length capped."""
    text = _UNSAFE.sub("\ufffd", text[: cap + 1])
    return text if len(text) <= cap else text[: cap - 1] + "\u2026"


def _forms(value: str) -> set[str]:
    """`value` as it can reappear in an error text: escaped, quoted, URL- or base64-encoded."""
    forms = {
        value,
        repr(value)[1:-1],
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        value.encode("unicode_escape").decode("ascii"),
        quote(value, safe=""),
        quote_plus(value, safe=""),
        html.escape(value),
        base64.b64encode(value.encode()).decode(),
        base64.urlsafe_b64encode(value.encode()).decode(),
    }
    # base64 padding is droppable, so the unpadded text is what can still be found
    forms.update(f.rstrip("=") for f in list(forms) if f.endswith("="))
    return {f for f in forms if len(f) >= MIN_SECRET_LENGTH}


def secret_forms(secrets: Iterable[str], headers: Mapping[str, str] | None = None) -> set[str]:
    """Every string to redact for these secrets and the request headers built from them.

    A header is derived from a secret when it holds one, or its token does once base64-decoded
    (a Basic pair): the header value and its token are then secrets too.
    """
    raw = {s for s in secrets if len(s) >= MIN_SECRET_LENGTH}
    values = set(raw)
    for value in (headers or {}).values():
        token = value.partition(" ")[2] or value
        try:
            decoded = base64.b64decode(token, validate=True).decode("utf-8", "replace")
        except (binascii.Error, ValueError):
            decoded = ""
        if any(s in value or s in decoded for s in raw):
            values.update(v for v in (value, token) if len(v) >= MIN_SECRET_LENGTH)
    out: set[str] = set()
    for value in values:
        out |= _forms(value)
    return out


def longest_first(forms: Iterable[str]) -> tuple[str, ...]:
    # A form that contains another must be replaced before the shorter one cuts it.
    return tuple(sorted(set(forms), key=len, reverse=True))


def redact_with(ordered: Iterable[str], text: str) -> str:
    """`text` with each of `ordered` (from `longest_first`) replaced."""
    for secret in ordered:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def register_secrets(values: Iterable[str], headers: Mapping[str, str] | None = None) -> None:
    global _ordered
    _secrets.update(secret_forms(values, headers))
    _ordered = longest_first(_secrets)


def redact(text: str) -> str:
    return redact_with(_ordered, text)


def _redact_processor(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in event.items():
        if isinstance(value, str):
            event[key] = redact(value)
    return event


def configure(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Set up structlog and route stdlib logging (aiohttp, APScheduler) through the same output."""
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "console" if stream.isatty() else "json"
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=stream.isatty())
    )
    level_no = logging.getLevelNamesMapping()[level.upper()]
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.format_exc_info,
            _redact_processor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level_no),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                _redact_processor,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level_no)
    # APScheduler logs every job run and httpx every request at INFO; the one poll line of
    # our own says more, so theirs only come through from WARNING up.
    for noisy in ("apscheduler", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(level_no, logging.WARNING))

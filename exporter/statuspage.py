"""The landing page (`GET /`): what each account's polls are doing, without Grafana."""

from __future__ import annotations

import html
from collections.abc import Iterable
from datetime import UTC, datetime

from exporter import __version__
from exporter.scheduler import AccountStatus


def _fmt_time(ts: float | None, now: float) -> str:
    if ts is None:
        return "—"
    stamp = datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    delta = ts - now
    rel = f"in {delta:.0f}s" if delta >= 0 else f"{-delta:.0f}s ago"
    return f"{stamp} ({rel})"


def landing_page(statuses: Iterable[AccountStatus], now: float) -> str:
    rows = []
    for s in sorted(statuses, key=lambda s: (s.vendor, s.account)):
        result = "pending" if s.last_ok is None else ("ok" if s.last_ok else "failed")
        detail = f' title="{html.escape(s.last_error)}"' if s.last_error else ""
        count = len(s.snapshot.connectors) if s.snapshot else 0
        rows.append(
            "<tr>"
            f"<td>{html.escape(s.vendor)}</td><td>{html.escape(s.account)}</td>"
            f"<td>{_fmt_time(s.last_poll_end, now)}</td>"
            f'<td class="{result}"{detail}>{result}</td>'
            f"<td>{count}</td><td>{_fmt_time(s.next_poll, now)}</td>"
            "</tr>"
        )
    body = "\n".join(rows) or '<tr><td colspan="6">no accounts configured</td></tr>'
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>connector-exporter</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}.ok{{color:#080}}
.failed{{color:#b00}}.pending{{color:#888}}</style></head>
<body><h1>connector-exporter</h1><p>version {html.escape(__version__)}</p>
<p><a href="/metrics">Metrics</a> · <a href="/healthz">Health</a> ·
<a href="/readyz">Readiness</a></p>
<h2>Accounts</h2>
<table><thead><tr><th>vendor</th><th>account</th><th>last poll</th><th>result</th>
<th>connectors</th><th>next poll</th></tr></thead>
<tbody>
{body}
</tbody></table></body></html>
"""

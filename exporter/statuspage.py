"""The landing page (`GET /`): is any connector broken, where, since when, without Grafana.

Plain server-rendered HTML with inline CSS and a meta refresh: no JavaScript, no build step.
Every value that comes from a vendor or the config (names, ids, errors) goes through
`html.escape`; the page sees only `AccountStatus`, which holds no credentials.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime

from exporter import __version__
from exporter.logs import sanitise
from exporter.model import SEVERITY, Health
from exporter.status import UNHEALTHY_ROWS, AccountStatus, Unhealthy

REFRESH_SECONDS = 30
COUNT_ORDER = (Health.HEALTHY, *SEVERITY)

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:1.5em 2em;
color:#1f2328;background:#fff}
h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.1em;margin:1.6em 0 .5em}
.meta{color:#59636e;font-size:.9em}a{color:#0969da}
table{border-collapse:collapse;font-size:.9em}
th,td{border-bottom:1px solid #d1d9e0;padding:4px 10px;text-align:left;vertical-align:top}
th{background:#f6f8fa}td.num{text-align:right}
.counts{display:flex;flex-wrap:wrap;gap:.5em;margin:0;padding:0;list-style:none}
.counts li{border-radius:6px;padding:.45em .8em;min-width:6.5em;color:#fff}
.counts b{display:block;font-size:1.5em}
.h-healthy{background:#1a7f37}.h-degraded{background:#9a6700}.h-failing{background:#bc4c00}
.h-broken{background:#cf222e}.h-relink_needed{background:#8250df}
.h-incomplete{background:#0969da}.h-paused{background:#59636e}.h-unknown{background:#818b98}
.state{border-radius:4px;padding:1px 6px;color:#fff;white-space:nowrap}
.ok{color:#1a7f37;font-weight:600}.failed{color:#cf222e;font-weight:600}
.pending{color:#59636e}.small{color:#59636e;font-size:.85em}
"""


# Names, ids and errors come from vendors: lone surrogates (`\ud800` in their JSON) cannot be
# encoded, and control characters or a megabyte-long message must not reach the page either.
TEXT_CAP = 1000


def _esc(value: object) -> str:
    return html.escape(sanitise(str(value), TEXT_CAP), quote=True)


def _age(seconds: float) -> str:
    """A short human duration: 42s, 5m, 3h 20m, 2d 4h."""
    s = int(abs(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


def _when(ts: float | None, now: float) -> str:
    """An absolute UTC time (in a tooltip) with its distance from now."""
    if ts is None:
        return "—"
    stamp = datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    delta = ts - now
    rel = f"in {_age(delta)}" if delta > 0.5 else f"{_age(delta)} ago"
    return f'<time datetime="{_esc(stamp)}" title="{_esc(stamp)}">{_esc(rel)}</time>'


def _state(health: Health) -> str:
    return f'<span class="state h-{health.value}">{_esc(health.value)}</span>'


def _message(text: str) -> str:
    """The vendor's reason for the state (already one line, length-capped), escaped."""
    return f'<div class="small reason">{_esc(text)}</div>' if text else ""


def _accounts(statuses: list[AccountStatus], now: float) -> str:
    rows = []
    for s in statuses:
        result = "pending" if s.last_ok is None else ("ok" if s.last_ok else "failed")
        # The error text is the vendor's message, redacted by the HTTP client; never a secret.
        detail = f' title="{_esc(s.last_error)}"' if s.last_error else ""
        published = s.published
        counts = published.counts if published else {}
        total = sum(counts.values())
        unhealthy = total - counts.get(Health.HEALTHY, 0)
        rows.append(
            "<tr>"
            f"<td>{_esc(s.vendor)}</td><td>{_esc(s.account)}</td>"
            f'<td class="{result}"{detail}>{result}</td>'
            f"<td>{_when(s.last_poll_end, now)}</td>"
            f"<td>{_when(s.last_success_end, now)}</td>"
            f'<td class="num">{total}</td><td class="num">{unhealthy}</td>'
            f"<td>{_when(s.next_poll, now)}</td>"
            "</tr>"
        )
    body = "\n".join(rows) or '<tr><td colspan="8">no accounts configured</td></tr>'
    return (
        '<table id="accounts"><thead><tr><th>vendor</th><th>account</th><th>result</th>'
        "<th>last poll</th><th>last success</th><th>connectors</th><th>not healthy</th>"
        f"<th>next poll</th></tr></thead>\n<tbody>\n{body}\n</tbody></table>"
    )


def _counts(statuses: list[AccountStatus]) -> str:
    counts: Counter[Health] = Counter()
    for s in statuses:
        if (published := s.published) is not None:
            counts.update(published.counts)
    items = "".join(
        f'<li class="h-{h.value}" data-health="{h.value}"><b>{counts[h]}</b>{_esc(h.value)}</li>'
        for h in COUNT_ORDER
    )
    return f'<ul class="counts" id="counts">{items}</ul>'


def _unhealthy(statuses: list[AccountStatus], now: float) -> str:
    found: list[tuple[AccountStatus, Unhealthy]] = []
    shown = 0
    for s in statuses:
        if (published := s.published) is not None:
            found.extend((s, u) for u in published.unhealthy)
            shown += sum(published.counts.values()) - published.counts.get(Health.HEALTHY, 0)
    # Most severe first, then the longest in that state.
    found.sort(key=lambda f: (f[1].rank, f[1].since, f[0].vendor, f[0].account))
    rows = [
        "<tr>"
        f"<td>{_esc(s.vendor)}</td><td>{_esc(s.account)}</td>"
        f'<td>{_esc(c.name) or "—"}<div class="small">{_esc(c.connector_id)}</div></td>'
        f"<td>{_esc(c.integration)}</td><td>{_state(c.health)}{_message(c.status_message)}</td>"
        f'<td>{_when(u.since, now)} <span class="small since">{_esc(u.since_label)}</span></td>'
        "</tr>"
        for s, u in found[:UNHEALTHY_ROWS]
        for c in (u.connector,)
    ]
    if not found:
        rows.append('<tr><td colspan="6">every connector is healthy</td></tr>')
    more = (
        f'<p class="small">{shown - UNHEALTHY_ROWS} more not shown; see /metrics or Grafana.</p>'
        if shown > UNHEALTHY_ROWS
        else ""
    )
    body = "\n".join(rows)
    return (
        '<table id="unhealthy"><thead><tr><th>vendor</th><th>account</th><th>name</th>'
        "<th>integration</th><th>state</th><th>since</th></tr></thead>\n"
        f"<tbody>\n{body}\n</tbody></table>{more}"
    )


def landing_page(statuses: Iterable[AccountStatus], now: float) -> str:
    """The whole page for the accounts' current status at `now` (Unix seconds)."""
    ordered = sorted(statuses, key=lambda s: (s.vendor, s.account))
    generated = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="{REFRESH_SECONDS}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>connector-exporter</title>
<style>{STYLE}</style></head>
<body>
<h1>connector-exporter</h1>
<p class="meta">version {_esc(__version__)} · page generated {generated}, refreshes every
{REFRESH_SECONDS}s · <a href="/metrics">metrics</a> · <a href="/healthz">healthz</a> ·
<a href="/readyz">readyz</a></p>
<h2>Connectors by health</h2>
{_counts(ordered)}
<h2>Accounts</h2>
{_accounts(ordered, now)}
<h2>Not healthy</h2>
{_unhealthy(ordered, now)}
<p class="small">since: the vendor's own time where it gives one (<i>relink needed at</i>,
<i>failed at</i>: its last failure); otherwise <i>first seen</i>, the first poll at which this
exporter saw the connector in its current state (so never before the exporter started).</p>
</body></html>
"""

"""Is the exporter itself polling every vendor account and taking webhooks? Poll results,
failure reasons and durations, vendor API responses (429s), webhook intake, shards, data age,
connector counts, CPU and memory."""

# The docstring above is the dashboard's description in Grafana.

from __future__ import annotations

import dashlib as dl
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm

UID, TITLE = "connector-exporter-health", "Connector exporter health"


def per_account(metric: str) -> str:
    return f"{metric}{{{dl.ACCOUNTS}}}"


# Process metrics carry no vendor/account; keep the exporter's own targets (whatever the job
# is called) by joining on its build info.
EXPORTER_TARGETS = "on (job, instance) connector_exporter_build_info"
PROCESS_CPU = f"rate(process_cpu_seconds_total[$__rate_interval]) and {EXPORTER_TARGETS}"
REQUEST_RATE = (
    "sum by (vendor, account, code) ("
    f"rate(connector_exporter_api_requests_total{{{dl.ACCOUNTS}}}[$__rate_interval]))"
)
# Accounts whose last poll succeeded, and all configured accounts (each has a poll interval).
POLLING = (
    (f"sum({per_account('connector_exporter_poll_success')})", "ok"),
    (f"count({per_account('connector_exporter_poll_interval_seconds')})", "accounts"),
)
ACCOUNT_LEGEND = "{{vendor}}/{{account}}"
OK: dl.Steps = ((None, "red"), (1, "green"))


def _summary() -> list[dl.Panel]:
    """The stat row: polls, throttling, configuration and versions."""
    return [
        dl.stat_panel(
            "Accounts polling OK",
            "Accounts whose last poll succeeded, of all accounts.",
            [dl.query(e, legend, instant=True) for e, legend in POLLING],
            (4, 6),
            text=cm.BigValueTextMode.VALUE_AND_NAME,
            steps=dl.TEXT,
        ),
        dl.alarm_stat(
            "Throttled requests (429) in range",
            "Vendor API responses with HTTP 429 over the dashboard's time range.",
            "sum(increase(connector_exporter_api_requests_total"
            f'{{{dl.ACCOUNTS}, code="429"}}[$__range])) or vector(0)',
            (4, 6),
            ((None, "green"), (1, "orange")),
            decimals=0,
        ),
        dl.alarm_stat(
            "Config reload",
            "Whether the last configuration (re)load succeeded, per exporter instance.",
            "connector_exporter_config_last_reload_successful",
            (4, 6),
            OK,
            "{{instance}}",
            mappings=dl.POLL_RESULT,
        ),
        dl.stat_panel(
            "Version",
            "The exporter versions running.",
            [
                dl.query(
                    "count by (version) (connector_exporter_build_info)",
                    "{{version}}",
                    instant=True,
                )
            ],
            (4, 6),
            text=cm.BigValueTextMode.NAME,
            steps=dl.TEXT,
        ),
    ]


def _polls() -> list[dl.Panel]:
    """Poll results, data age and durations, the vendors' answers, connectors per account."""
    requests = dl.timeseries_panel(
        "Vendor API requests by code",
        "Requests per second by HTTP status (or timeout/error); 429 (throttled) in orange, "
        "server errors and transport failures in red.",
        [dl.query(REQUEST_RATE, "{{vendor}}/{{account}} {{code}}")],
        unit="reqps",
    )
    requests = requests.override_by_regexp(".* 429", dl.fixed_color("orange"))
    return [
        dl.timeline_panel(
            "Poll success per account",
            "Each account's last poll result over time: when did polling fail?",
            [dl.query(per_account("connector_exporter_poll_success"), ACCOUNT_LEGEND)],
            (7, 24),
            show=cm.VisibilityMode.NEVER,
            merge=True,
            mappings=dl.POLL_RESULT,
            steps=OK,
        ),
        dl.timeseries_panel(
            "Time since last successful poll",
            "Age of each account's data; ConnectorExporterStaleData fires above 3 poll intervals.",
            [
                dl.query(
                    "time() - "
                    + per_account("connector_exporter_last_poll_success_timestamp_seconds"),
                    ACCOUNT_LEGEND,
                )
            ],
            unit="s",
        ),
        dl.timeseries_panel(
            "Poll duration",
            "How long the last poll of each account took, all pages included.",
            [dl.query(per_account("connector_exporter_poll_duration_seconds"), ACCOUNT_LEGEND)],
            unit="s",
        ),
        requests.override_by_regexp(".* (5..|timeout|error)", dl.fixed_color("red")),
        dl.timeseries_panel(
            "Poll failure ratio (1h)",
            "Share of polls that failed over the last hour, per account.",
            [
                dl.query(
                    per_account("vendor_account:connector_exporter_poll_failures:ratio_rate1h"),
                    ACCOUNT_LEGEND,
                )
            ],
            unit="percentunit",
            high=1,
        ),
        dl.count_timeseries(
            "Connectors per account",
            "Connectors in each account's last good snapshot: did some disappear?",
            [dl.query(per_account("connector_exporter_connectors"), ACCOUNT_LEGEND)],
        ),
    ]


# Webhook answers (SPEC §6.2): accepted and duplicate events were verified; the rest rejected.
WEBHOOK_VERIFIED = "accepted|duplicate"
WEBHOOK_REJECTED = "bad_signature|bad_request|unknown_account|too_large"
WEBHOOKS = "connector_exporter_webhook_requests_total"
WEBHOOK_RATE = f"sum by (vendor, account, result) (rate({per_account(WEBHOOKS)}[$__rate_interval]))"
REJECTED = f'{WEBHOOKS}{{{dl.ACCOUNTS}, result!~"{WEBHOOK_VERIFIED}"}}'
WEBHOOKS_REJECTED = f"sum(increase({REJECTED}[$__range])) or vector(0)"
# The current reason per account (value 1 of the StateSet), once however many replicas poll it.
POLL_FAILURE_REASON = (
    "max by (vendor, account, reason) ("
    f"{per_account('connector_exporter_last_poll_failure_reason')} == 1)"
)
# Shards (SPEC §6.3): how many distinct ordinals report, of the total the shards were told.
SHARDS_UP = 'count(count_values("ordinal", connector_exporter_shard_ordinal))'
SHARDS_TOTAL = "max(connector_exporter_total_shards)"
SHARDS = ((SHARDS_UP, "reporting"), (SHARDS_TOTAL, "of"))


def _intake() -> list[dl.Panel]:
    """Webhooks coming in, why polls fail, and whether every shard reports."""
    ok = dl.text_map({"none": ("none (last poll ok)", "green")})
    failed = dm.ValueMappingResult(color="red", index=1)
    reasons = [*ok, dm.RegexMap(options=dm.DashboardRegexMapOptions(pattern=".+", result=failed))]
    shards = dl.table_panel(
        "Shards",
        "Each exporter process and the shard it polls (--shard INDEX/COUNT; 0 of 1 unsharded).",
        [
            dl.table_query("max by (job, instance) (connector_exporter_shard_ordinal)"),
            dl.table_query("max by (job, instance) (connector_exporter_total_shards)"),
        ],
        (4, 12),
        [dl.MERGE, dl.organize(rename={"Value #A": "shard", "Value #B": "of shards"})],
        decimals=0,
    )
    return [
        dl.alarm_stat(
            "Webhooks rejected in range",
            "Webhook requests refused (bad signature, bad request, unknown account, too large, "
            "rate limited) over the dashboard's time range. A rotated secret shows here.",
            WEBHOOKS_REJECTED,
            (4, 6),
            ((None, "green"), (1, "red")),
            decimals=0,
        ),
        dl.stat_panel(
            "Shards reporting",
            "Distinct shard ordinals with a running exporter, and the shard count they were "
            "given; fewer reporting than the total means a shard is missing.",
            [
                dl.query(SHARDS_UP, "reporting", instant=True),
                dl.query(SHARDS_TOTAL, "of", instant=True),
            ],
            (4, 6),
            text=cm.BigValueTextMode.VALUE_AND_NAME,
            steps=dl.TEXT,
            decimals=0,
        ),
        shards,
        dl.timeseries_panel(
            "Webhook requests by result",
            "Webhook requests per second by answer: accepted (green), duplicates (blue), "
            "rejected in red, rate limited in orange (bad_signature: a secret was rotated on "
            "one side only).",
            [dl.query(WEBHOOK_RATE, "{{vendor}}/{{account}} {{result}}")],
            unit="reqps",
        )
        .override_by_regexp(".* accepted", dl.fixed_color("green"))
        .override_by_regexp(".* duplicate", dl.fixed_color("blue"))
        .override_by_regexp(f".* ({WEBHOOK_REJECTED})", dl.fixed_color("red"))
        .override_by_regexp(".* rate_limited", dl.fixed_color("orange")),
        dl.table_panel(
            "Last poll failure reason",
            "Why each account's last poll failed (timeout, transport, http, auth, bad_response, "
            "too_large, suspicious_drop), or none when it succeeded.",
            [dl.table_query(POLL_FAILURE_REASON)],
            (8, 12),
            [dl.organize(rename={}, hide=("Time", "Value"), order=("vendor", "account", "reason"))],
            sort_by="reason",
            overrides={"reason": dl.color_text(reasons)},
        ),
    ]


def _process() -> list[dl.Panel]:
    return [
        dl.timeseries_panel(
            "Process CPU",
            "CPU seconds per second used by each exporter process.",
            [dl.query(PROCESS_CPU, "{{instance}}")],
            unit="percentunit",
        ),
        dl.timeseries_panel(
            "Process memory",
            "Resident memory of each exporter process.",
            [dl.query(f"process_resident_memory_bytes and {EXPORTER_TARGETS}", "{{instance}}")],
            unit="bytes",
        ),
    ]


def build() -> db.Dashboard:
    panels = [*_summary(), *_intake(), *_polls(), *_process()]
    return dl.new_dashboard(UID, TITLE, __doc__ or "", dl.variables(), panels)

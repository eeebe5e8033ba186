"""Connector exporter health: is the exporter itself polling every vendor account?"""

from __future__ import annotations

from dashlib import (
    ACCOUNTS,
    POLL_RESULT,
    TEXT,
    Panel,
    Steps,
    alarm_stat,
    count_timeseries,
    fixed_color,
    new_dashboard,
    query,
    stat_panel,
    timeline_panel,
    timeseries_panel,
    variables,
)
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.models import common as cm

# Process metrics carry no vendor/account; keep the exporter's own targets (whatever the job
# is called) by joining on its build info.
EXPORTER_TARGETS = "on (job, instance) connector_exporter_build_info"
REQUEST_RATE = (
    "sum by (vendor, account, code) ("
    f"rate(connector_exporter_api_requests_total{{{ACCOUNTS}}}[$__rate_interval]))"
)
ACCOUNT_LEGEND = "{{vendor}}/{{account}}"
OK: Steps = ((None, "red"), (1, "green"))


def per_account(metric: str) -> str:
    return f"{metric}{{{ACCOUNTS}}}"


def _summary() -> list[Panel]:
    """The stat row: polls, throttling, configuration and versions."""
    return [
        stat_panel(
            "Accounts polling OK",
            "Accounts whose last poll succeeded, of all accounts.",
            [
                query(f"sum({per_account('connector_exporter_poll_success')})", "ok", instant=True),
                query(
                    f"count({per_account('connector_exporter_poll_interval_seconds')})",
                    "accounts",
                    instant=True,
                ),
            ],
            (4, 6),
            text=cm.BigValueTextMode.VALUE_AND_NAME,
            steps=TEXT,
        ),
        alarm_stat(
            "Throttled requests (429) in range",
            "Vendor API responses with HTTP 429 over the dashboard's time range.",
            "sum(increase(connector_exporter_api_requests_total"
            f'{{{ACCOUNTS}, code="429"}}[$__range])) or vector(0)',
            (4, 6),
            ((None, "green"), (1, "orange")),
            decimals=0,
        ),
        alarm_stat(
            "Config reload",
            "Whether the last configuration (re)load succeeded, per exporter instance.",
            "connector_exporter_config_last_reload_successful",
            (4, 6),
            OK,
            "{{instance}}",
            mappings=POLL_RESULT,
        ),
        stat_panel(
            "Version",
            "The exporter versions running.",
            [
                query(
                    "count by (version) (connector_exporter_build_info)",
                    "{{version}}",
                    instant=True,
                )
            ],
            (4, 6),
            text=cm.BigValueTextMode.NAME,
            steps=TEXT,
        ),
    ]


def _polls() -> list[Panel]:
    """Poll results, data age and durations, the vendors' answers, connectors per account."""
    requests = timeseries_panel(
        "Vendor API requests by code",
        "Requests per second by HTTP status (or timeout/error); 429 (throttled) in orange, "
        "server errors and transport failures in red.",
        [query(REQUEST_RATE, "{{vendor}}/{{account}} {{code}}")],
        unit="reqps",
    )
    requests = requests.override_by_regexp(".* 429", fixed_color("orange"))
    return [
        timeline_panel(
            "Poll success per account",
            "Each account's last poll result over time: when did polling fail?",
            [query(per_account("connector_exporter_poll_success"), ACCOUNT_LEGEND)],
            (7, 24),
            show=cm.VisibilityMode.NEVER,
            merge=True,
            mappings=POLL_RESULT,
            steps=OK,
        ),
        timeseries_panel(
            "Time since last successful poll",
            "Age of each account's data; ConnectorExporterStaleData fires above 3 poll intervals.",
            [
                query(
                    "time() - "
                    + per_account("connector_exporter_last_poll_success_timestamp_seconds"),
                    ACCOUNT_LEGEND,
                )
            ],
            unit="s",
        ),
        timeseries_panel(
            "Poll duration",
            "How long the last poll of each account took, all pages included.",
            [query(per_account("connector_exporter_poll_duration_seconds"), ACCOUNT_LEGEND)],
            unit="s",
        ),
        requests.override_by_regexp(".* (5..|timeout|error)", fixed_color("red")),
        timeseries_panel(
            "Poll failure ratio (1h)",
            "Share of polls that failed over the last hour, per account.",
            [
                query(
                    per_account("vendor_account:connector_exporter_poll_failures:ratio_rate1h"),
                    ACCOUNT_LEGEND,
                )
            ],
            unit="percentunit",
            high=1,
        ),
        count_timeseries(
            "Connectors per account",
            "Connectors in each account's last good snapshot: did some disappear?",
            [query(per_account("connector_exporter_connectors"), ACCOUNT_LEGEND)],
        ),
    ]


def _process() -> list[Panel]:
    return [
        timeseries_panel(
            "Process CPU",
            "CPU seconds per second used by each exporter process.",
            [
                query(
                    f"rate(process_cpu_seconds_total[$__rate_interval]) and {EXPORTER_TARGETS}",
                    "{{instance}}",
                )
            ],
            unit="percentunit",
        ),
        timeseries_panel(
            "Process memory",
            "Resident memory of each exporter process.",
            [query(f"process_resident_memory_bytes and {EXPORTER_TARGETS}", "{{instance}}")],
            unit="bytes",
        ),
    ]


def build() -> db.Dashboard:
    return new_dashboard(
        "connector-exporter-health",
        "Connector exporter health",
        "Is the exporter itself polling every vendor account? Poll results and durations, "
        "vendor API responses (429s), data age, connector counts, CPU and memory.",
        variables(),
        [*_summary(), *_polls(), *_process()],
    )

"""Connector detail: one connector (or a few) over time. The fleet overview and every connector
alert link here with var-vendor, var-account and var-connector_id set."""

from __future__ import annotations

from dashlib import (
    CONNECTOR_KEY,
    CONNECTORS,
    DAY,
    HEALTH,
    HEALTH_CODE,
    HEALTH_CODES,
    REPLICA_LABELS,
    SERIES_LABELS,
    TEXT,
    YES_NO,
    Panel,
    Steps,
    color_text,
    count_timeseries,
    fixed_color,
    new_dashboard,
    organize,
    query,
    stat_panel,
    table_panel,
    table_query,
    text_map,
    timeline_panel,
    timeseries_panel,
    variables,
)
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.models import common as cm

# One code per connector: max, not sum, so that HA replicas scraped under one job do not add up.
HEALTH_AS_CODE = (
    "max by (vendor, account, connector_id) (\n"
    + "\n  or ".join(
        f'{HEALTH_CODE[name]} * connector_health{{{CONNECTORS}, health="{name}"}}'
        for name, _ in HEALTH
    )
    + "\n)"
)
CONNECTOR_LEGEND = "{{vendor}}/{{account}} {{connector_id}}"


def selector(metric: str) -> str:
    """`metric` for the connectors the variables select."""
    return f"{metric}{{{CONNECTORS}}}"


def age_stat(title: str, description: str, expr: str, *steps: tuple[float | None, str]) -> Panel:
    """A duration of one connector, in the stat grid four to a row."""
    return stat_panel(
        title,
        description,
        [query(expr, CONNECTOR_LEGEND, instant=True)],
        (4, 6),
        color=cm.BigValueColorMode.VALUE,
        unit="s",
        decimals=0,
        steps=steps or TEXT,
        no_value="not reported",
    )


def _states() -> list[Panel]:
    """Who it is, and its health and the vendor's own states over time."""
    state_legend = "{{connector_id}} %s: {{state}}"
    current: Steps = ((None, "blue"),)
    return [
        table_panel(
            "Connector",
            "Who it is: name, integration, group and end user as the vendor reports.",
            [table_query(f"max without ({REPLICA_LABELS}) ({selector('connector_info')})")],
            (5, 24),
            [
                organize(
                    rename={},
                    hide=SERIES_LABELS,
                    order=(
                        "vendor",
                        "account",
                        "name",
                        "integration",
                        "group",
                        "end_user",
                        "connector_id",
                    ),
                )
            ],
        ),
        timeline_panel(
            "Health",
            "Normalised health over time: when did it break, when did it recover?",
            [query(HEALTH_AS_CODE, CONNECTOR_LEGEND)],
            (6, 24),
            show=cm.VisibilityMode.AUTO,
            merge=True,
            mappings=HEALTH_CODES,
            steps=TEXT,
        ),
        timeline_panel(
            "Setup, sync, update and schema state",
            "The vendor's own states (one row per state the connector was in): setup/link/"
            "credential state, sync state, Fivetran's update state and schema status "
            "(blocked_on_customer: syncs wait for the customer).",
            [
                query(f"{selector(f'connector_{kind}_state')} == 1", state_legend % kind)
                for kind in ("setup", "sync", "update", "schema")
            ],
            (7, 24),
            show=cm.VisibilityMode.NEVER,
            mappings=text_map({"1": ("current", "blue")}),
            steps=current,
        ),
        timeline_panel(
            "Paused and relink needed",
            "Whether the connector was paused, and whether its end user had to relink.",
            [
                query(selector("connector_paused"), "{{connector_id}} paused"),
                query(selector("connector_relink_needed"), "{{connector_id}} relink needed"),
            ],
            (5, 24),
            show=cm.VisibilityMode.AUTO,
            merge=True,
            mappings=YES_NO,
            steps=((None, "green"), (1, "red")),
        ),
        timeline_panel(
            "Manual schedule and historical sync",
            "Whether the connector syncs only when asked (Fivetran manual schedule: no sync-stale "
            "alert) and whether it is re-syncing its history.",
            [
                query(selector("connector_manual_schedule"), "{{connector_id}} manual schedule"),
                query(selector("connector_historical_sync"), "{{connector_id}} historical sync"),
            ],
            (4, 24),
            show=cm.VisibilityMode.AUTO,
            merge=True,
            mappings=text_map({"0": ("no", "text"), "1": ("yes", "blue")}),
            steps=TEXT,
        ),
    ]


def _ages() -> list[Panel]:
    """The stat grid: when it last synced, failed, will sync, and what Fivetran asks of users."""
    issues = stat_panel(
        "Warnings and tasks",
        "Fivetran's warnings and the tasks it asks a user to act on, right now.",
        [
            query(selector("connector_warnings"), "{{connector_id}} warnings", instant=True),
            query(selector("connector_tasks"), "{{connector_id}} tasks", instant=True),
        ],
        (4, 6),
        color=cm.BigValueColorMode.VALUE,
        text=cm.BigValueTextMode.VALUE_AND_NAME,
        steps=((None, "green"), (1, "orange")),
        decimals=0,
        no_value="not reported",
    )
    return [
        age_stat(
            "Last successful sync",
            "How long ago the last sync succeeded (Fivetran succeeded_at and the like).",
            selector("connector_last_success_age_seconds"),
            (None, "green"),
            (DAY, "orange"),
        ),
        age_stat(
            "Last failed sync",
            "How long ago the last sync or credential refresh failed.",
            selector("connector_last_failure_age_seconds"),
            (None, "red"),
            (DAY, "text"),
        ),
        age_stat(
            "Sync frequency",
            "The configured interval between syncs (Fivetran sync_frequency).",
            selector("connector_sync_frequency_seconds"),
        ),
        age_stat(
            "Credentials expire in",
            "Time left until the credentials expire (Apideck, Versori); negative: expired.",
            f"{selector('connector_credential_expiry_timestamp_seconds')} - time()",
            (None, "red"),
            (7 * DAY, "green"),
        ),
        age_stat(
            "Last sync started",
            "How long ago the last sync started (Bindbee).",
            f"time() - {selector('connector_last_sync_start_timestamp_seconds')}",
        ),
        age_stat(
            "Next sync in",
            "Time until the next scheduled sync (Bindbee, Fivetran rescheduled_for); "
            "negative: overdue.",
            f"{selector('connector_next_sync_timestamp_seconds')} - time()",
            (None, "orange"),
            (0, "green"),
        ),
        age_stat(
            "Relink needed for",
            "How long the end user has been asked to re-authenticate (Bindbee relink_needed_at).",
            f"time() - {selector('connector_relink_needed_since_timestamp_seconds')}",
            (None, "purple"),
        ),
        issues,
    ]


def _history() -> list[Panel]:
    return [
        timeseries_panel(
            "Time since last success and failure",
            "A sawtooth is a connector that syncs; a line that only rises is one that stopped.",
            [
                query(selector("connector_last_success_age_seconds"), "{{connector_id}} success"),
                query(selector("connector_last_failure_age_seconds"), "{{connector_id}} failure"),
            ],
            unit="s",
        ),
        count_timeseries(
            "Warnings and tasks over time",
            "Fivetran's warning and task counts: when did they appear?",
            [
                query(selector("connector_warnings"), "{{connector_id}} warnings"),
                query(selector("connector_tasks"), "{{connector_id}} tasks"),
            ],
        ),
    ]


# The result of a sync (SPEC §6.2) and its colour.
SYNC_RESULTS = {"success": "green", "failure": "red", "rescheduled": "orange", "canceled": "text"}
# Syncs and events arrive by webhook at whichever replica the Service picked: counters add up
# over replicas, last values take the latest.
SYNCS_IN_RANGE = f"sum by (result) (increase({selector('connector_syncs_total')}[$__range]))"
SYNC_RATE = (
    f"sum by ({CONNECTOR_KEY}, result) ("
    f"increase({selector('connector_syncs_total')}[$__rate_interval]))"
)


def latest(metric: str) -> str:
    """`metric` once per connector, however many replicas serve it."""
    return f"max by ({CONNECTOR_KEY}) ({selector(metric)})"


def _syncs() -> list[Panel]:
    """What the webhooks tell: sync outcomes and durations, the last event; sync progress."""
    outcomes = stat_panel(
        "Syncs in range",
        "Syncs that ended in the dashboard's time range, by result (from webhooks).",
        [query(SYNCS_IN_RANGE, "{{result}}", instant=True)],
        (4, 6),
        color=cm.BigValueColorMode.VALUE,
        text=cm.BigValueTextMode.VALUE_AND_NAME,
        decimals=0,
        no_value="no sync seen",
        overrides={result: fixed_color(color) for result, color in SYNC_RESULTS.items()},
    )
    progress = stat_panel(
        "Sync progress",
        "How far the running sync has come (Bindbee sync_progress).",
        [query(latest("connector_sync_progress_ratio"), CONNECTOR_LEGEND, instant=True)],
        (4, 6),
        unit="percentunit",
        steps=TEXT,
        no_value="not reported",
    )
    return [
        outcomes,
        age_stat(
            "Last sync took",
            "Duration of the last sync whose start and end events were both received.",
            latest("connector_last_sync_duration_seconds"),
        ),
        age_stat(
            "Last webhook event",
            "How long ago the last accepted webhook event for this connector arrived.",
            f"time() - {latest('connector_last_event_timestamp_seconds')}",
        ),
        progress,
    ]


def _issues() -> Panel:
    return table_panel(
        "Open tasks and warnings",
        "Fivetran's current task codes (a user must act) and warning codes; its docs explain "
        "each code.",
        [table_query(f"max by ({CONNECTOR_KEY}, kind, code) ({selector('connector_issue_info')})")],
        (6, 24),
        [organize(rename={}, hide=("Time", "Value"), order=(*CONNECTOR_KEY.split(", "), "kind"))],
        overrides={
            "kind": color_text(
                text_map({"task": ("task", "orange"), "warning": ("warning", "yellow")})
            )
        },
        no_value="No open task or warning",
    )


def _sync_history() -> list[Panel]:
    by_result = count_timeseries(
        "Syncs by result",
        "Syncs that ended per interval, by result (from webhooks): do failures pile up?",
        [query(SYNC_RATE, "{{connector_id}} {{result}}")],
    )
    for result, color in SYNC_RESULTS.items():
        by_result.override_by_regexp(f".* {result}", fixed_color(color))
    return [
        by_result,
        timeseries_panel(
            "Sync duration",
            "How long each sync took (the last one whose start and end were both seen).",
            [query(latest("connector_last_sync_duration_seconds"), "{{connector_id}}")],
            unit="s",
        ),
    ]


def build() -> db.Dashboard:
    return new_dashboard(
        "connector-detail",
        "Connector detail",
        "One connector (or a few): health and vendor states over time, sync times and outcomes, "
        "warnings and tasks, credential expiry. Linked from the fleet overview and from every "
        "connector alert.",
        variables(connector=True),
        [*_states(), *_ages(), *_syncs(), _issues(), *_history(), *_sync_history()],
    )

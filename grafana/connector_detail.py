"""Connector detail: one connector (or a few) over time. The fleet overview and every connector
alert link here with var-vendor, var-account and var-connector_id set."""

from __future__ import annotations

from dashlib import (
    CONNECTORS,
    DAY,
    HEALTH,
    HEALTH_CODE,
    HEALTH_CODES,
    SERIES_LABELS,
    TEXT,
    YES_NO,
    Panel,
    Steps,
    count_timeseries,
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

HEALTH_AS_CODE = (
    "sum by (vendor, account, connector_id) (\n"
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
            [table_query(selector("connector_info"))],
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
            "Setup, sync and update state",
            "The vendor's own states (one row per state the connector was in): setup/link/"
            "credential state, sync state and Fivetran's update state.",
            [
                query(f"{selector(f'connector_{kind}_state')} == 1", state_legend % kind)
                for kind in ("setup", "sync", "update")
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


def build() -> db.Dashboard:
    return new_dashboard(
        "connector-detail",
        "Connector detail",
        "One connector (or a few): health and vendor states over time, sync times, warnings, "
        "credential expiry. Linked from the fleet overview and from every connector alert.",
        variables(connector=True),
        [*_states(), *_ages(), *_history()],
    )

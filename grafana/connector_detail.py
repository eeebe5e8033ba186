"""One connector (or a few): health and vendor states over time, sync times and outcomes,
warnings and tasks, credential expiry. Linked from the fleet overview and from every connector
alert."""

# The docstring above is the dashboard's description in Grafana. The fleet overview and every
# connector alert link here with var-vendor, var-account and var-connector_id set.

from __future__ import annotations

import dashlib as dl
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus as pb
from grafana_foundation_sdk.models import common as cm

UID, TITLE = "connector-detail", "Connector detail"

# One code per connector: max, not sum, so that HA replicas scraped under one job do not add up.
HEALTH_AS_CODE = (
    "max by (vendor, account, connector_id) (\n"
    + "\n  or ".join(
        f'{dl.HEALTH_CODE[name]} * connector_health{{{dl.CONNECTORS}, health="{name}"}}'
        for name, _ in dl.HEALTH
    )
    + "\n)"
)
CONNECTOR_LEGEND = "{{vendor}}/{{account}} {{connector_id}}"


def selector(metric: str) -> str:
    """`metric` for the connectors the variables select."""
    return f"{metric}{{{dl.CONNECTORS}}}"


def per_connector(*, instant: bool = False, **metrics: str) -> list[pb.Dataquery]:
    """One query per metric, its legend the connector and the keyword (`_` read as a space)."""
    return [
        dl.query(
            selector(metric), f"{{{{connector_id}}}} {word.replace('_', ' ')}", instant=instant
        )
        for word, metric in metrics.items()
    ]


def age_stat(title: str, description: str, expr: str, *steps: tuple[float | None, str]) -> dl.Panel:
    """A duration of one connector, in the stat grid four to a row."""
    return dl.stat_panel(
        title,
        description,
        [dl.query(expr, CONNECTOR_LEGEND, instant=True)],
        (4, 6),
        color=cm.BigValueColorMode.VALUE,
        unit="s",
        decimals=0,
        steps=steps or dl.TEXT,
        no_value="not reported",
    )


def _states() -> list[dl.Panel]:
    """Who it is, and its health and the vendor's own states over time."""
    state_legend = "{{connector_id}} %s: {{state}}"
    current: dl.Steps = ((None, "blue"),)
    return [
        dl.table_panel(
            "Connector",
            "Who it is: name, integration, group and end user as the vendor reports.",
            [dl.table_query(f"max without ({dl.REPLICA_LABELS}) ({selector('connector_info')})")],
            (5, 24),
            [
                dl.organize(
                    rename={},
                    hide=dl.SERIES_LABELS,
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
        dl.timeline_panel(
            "Health",
            "Normalised health over time: when did it break, when did it recover?",
            [dl.query(HEALTH_AS_CODE, CONNECTOR_LEGEND)],
            (6, 24),
            show=cm.VisibilityMode.AUTO,
            merge=True,
            mappings=dl.HEALTH_CODES,
            steps=dl.TEXT,
        ),
        dl.timeline_panel(
            "Setup, sync, update and schema state",
            "The vendor's own states (one row per state the connector was in): setup/link/"
            "credential state, sync state, Fivetran's update state and schema status "
            "(blocked_on_customer: syncs wait for the customer).",
            [
                dl.query(f"{selector(f'connector_{kind}_state')} == 1", state_legend % kind)
                for kind in ("setup", "sync", "update", "schema")
            ],
            (7, 24),
            show=cm.VisibilityMode.NEVER,
            mappings=dl.text_map({"1": ("current", "blue")}),
            steps=current,
        ),
        dl.timeline_panel(
            "Paused and relink needed",
            "Whether the connector was paused, and whether its end user had to relink.",
            per_connector(paused="connector_paused", relink_needed="connector_relink_needed"),
            (5, 24),
            show=cm.VisibilityMode.AUTO,
            merge=True,
            mappings=dl.YES_NO,
            steps=((None, "green"), (1, "red")),
        ),
        dl.timeline_panel(
            "Manual schedule and historical sync",
            "Whether the connector syncs only when asked (Fivetran manual schedule: no sync-stale "
            "alert) and whether it is re-syncing its history.",
            per_connector(
                manual_schedule="connector_manual_schedule",
                historical_sync="connector_historical_sync",
            ),
            (4, 24),
            show=cm.VisibilityMode.AUTO,
            merge=True,
            mappings=dl.text_map({"0": ("no", "text"), "1": ("yes", "blue")}),
            steps=dl.TEXT,
        ),
    ]


def _ages() -> list[dl.Panel]:
    """The stat grid: when it last synced, failed, will sync, and what Fivetran asks of users."""
    issues = dl.stat_panel(
        "Warnings and tasks",
        "Fivetran's warnings and the tasks it asks a user to act on, right now.",
        [
            *per_connector(instant=True, warnings="connector_warnings", tasks="connector_tasks"),
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
            (dl.DAY, "orange"),
        ),
        age_stat(
            "Last failed sync",
            "How long ago the last sync or credential refresh failed.",
            selector("connector_last_failure_age_seconds"),
            (None, "red"),
            (dl.DAY, "text"),
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
            (7 * dl.DAY, "green"),
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


def _history() -> list[dl.Panel]:
    return [
        dl.timeseries_panel(
            "Time since last success and failure",
            "A sawtooth is a connector that syncs; a line that only rises is one that stopped.",
            per_connector(
                success="connector_last_success_age_seconds",
                failure="connector_last_failure_age_seconds",
            ),
            unit="s",
        ),
        dl.count_timeseries(
            "Warnings and tasks over time",
            "Fivetran's warning and task counts: when did they appear?",
            per_connector(warnings="connector_warnings", tasks="connector_tasks"),
        ),
    ]


# The result of a sync (SPEC §6.2) and its colour.
SYNC_RESULTS = {"success": "green", "failure": "red", "rescheduled": "orange", "canceled": "text"}
# Syncs and events arrive by webhook at whichever replica the Service picked: counters add up
# over replicas, last values take the highest (the latest, for a timestamp).
SYNCS_IN_RANGE = f"sum by (result) (increase({selector('connector_syncs_total')}[$__range]))"
SYNC_RATE = (
    f"sum by ({dl.CONNECTOR_KEY}, result) ("
    f"increase({selector('connector_syncs_total')}[$__rate_interval]))"
)


def latest(metric: str) -> str:
    """`metric` once per connector, however many replicas serve it: the highest value. For the
    last sync's duration with replicas that saw different syncs, that is the longer one."""
    return f"max by ({dl.CONNECTOR_KEY}) ({selector(metric)})"


def _syncs() -> list[dl.Panel]:
    """What the webhooks tell: sync outcomes and durations, the last event; sync progress."""
    return [
        dl.named_stat(
            "Syncs in range",
            "Syncs that ended in the dashboard's time range, by result (from webhooks).",
            dl.query(SYNCS_IN_RANGE, "{{result}}", instant=True),
            (4, 6),
            SYNC_RESULTS,
            color=cm.BigValueColorMode.VALUE,
            decimals=0,
            no_value="no sync seen",
        ),
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
        dl.stat_panel(
            "Sync progress",
            "How far the running sync has come (Bindbee sync_progress).",
            [dl.query(latest("connector_sync_progress_ratio"), CONNECTOR_LEGEND, instant=True)],
            (4, 6),
            unit="percentunit",
            steps=dl.TEXT,
            no_value="not reported",
        ),
    ]


def _issues() -> dl.Panel:
    return dl.table_panel(
        "Open tasks and warnings",
        "Fivetran's current task codes (a user must act) and warning codes; its docs explain "
        "each code.",
        [
            dl.table_query(
                f"max by ({dl.CONNECTOR_KEY}, kind, code) ({selector('connector_issue_info')})"
            )
        ],
        (6, 24),
        [
            dl.organize(
                rename={}, hide=("Time", "Value"), order=(*dl.CONNECTOR_KEY.split(", "), "kind")
            )
        ],
        overrides={
            "kind": dl.color_text(
                dl.text_map({"task": ("task", "orange"), "warning": ("warning", "yellow")})
            )
        },
        no_value="No open task or warning",
    )


def _sync_history() -> list[dl.Panel]:
    by_result = dl.count_timeseries(
        "Syncs by result",
        "Syncs that ended per interval, by result (from webhooks): do failures pile up?",
        [dl.query(SYNC_RATE, "{{connector_id}} {{result}}")],
    )
    for result, color in SYNC_RESULTS.items():
        by_result.override_by_regexp(f".* {result}", dl.fixed_color(color))
    return [
        by_result,
        dl.timeseries_panel(
            "Sync duration",
            "How long each sync took (the last one whose start and end were both seen).",
            [dl.query(latest("connector_last_sync_duration_seconds"), "{{connector_id}}")],
            unit="s",
        ),
    ]


def build() -> db.Dashboard:
    panels = [*_states(), *_ages(), *_syncs(), _issues(), *_history(), *_sync_history()]
    return dl.new_dashboard(UID, TITLE, __doc__ or "", dl.variables(connector=True), panels)

"""Is any connector broken, where, since when? Fleet counts from the recording rules, every
connector that is not healthy, and the connector alerts."""

# The docstring above is the dashboard's description in Grafana. Fleet counts read the recording
# rules of alerts/connector-recording.rules.yml; the per-connector table reads the exporter's
# series directly.

from __future__ import annotations

import dashlib as dl
from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm

UID, TITLE = "connector-fleet-overview", "Connector fleet overview"

# "Unhealthy since": the last time the connector was seen healthy within the dashboard's time
# range, else (never healthy in the range) the first time it was seen not healthy, i.e. "at
# least since". Derived from the health StateSet itself because the vendors' own timestamps
# (relink_needed_since, last_failure) exist only for some vendors and some states. The subquery
# runs at the panel's interval (at least 1m) over `$__range`. Every side of a join is one series
# per connector (max by, topk by), so HA replicas scraped under one job list a connector once.
UNHEALTHY_SINCE = f"""1000 * (
    max by (vendor, account, connector_id) (
      max_over_time(
        timestamp(connector_health{{{dl.ACCOUNTS}, health="healthy"}} == 1)[$__range:$__interval]
      )
    )
  or
    max by (vendor, account, connector_id) (
      min_over_time(
        timestamp(connector_health{{{dl.ACCOUNTS}, health!="healthy"}} == 1)[$__range:$__interval]
      )
    )
)
* on (vendor, account, connector_id) group_left (health)
  topk by (vendor, account, connector_id) (
    1, connector_health{{{dl.ACCOUNTS}, health!="healthy"}} == 1
  )
* on (vendor, account, connector_id) group_left (name, integration, group)
  topk by (vendor, account, connector_id) (1, connector_info{{{dl.ACCOUNTS}, group=~"$group"}})"""

UNHEALTHY_LAST_SUCCESS_AGE = f"""max by (vendor, account, connector_id) (
  connector_last_success_age_seconds{{{dl.ACCOUNTS}}}
  and on (vendor, account, connector_id) (connector_health{{{dl.ACCOUNTS}, health!="healthy"}} == 1)
  and on (vendor, account, connector_id) connector_info{{{dl.ACCOUNTS}, group=~"$group"}}
)"""

HEALTH_BY_STATE = f"sum by (health) (vendor_account_health:connector_health:sum{{{dl.ACCOUNTS}}})"
NOT_HEALTHY = f'vendor_account_health:connector_health:sum{{{dl.ACCOUNTS}, health!="healthy"}}'
RELINK = f"vendor_account:connector_relink_needed:sum{{{dl.ACCOUNTS}}}"
# An account counts once however many replicas poll it; failing when any of them failed.
ACCOUNTS_FAILING = (
    f"count(min by (vendor, account) (connector_exporter_poll_success{{{dl.ACCOUNTS}}}) == 0)"
    " or vector(0)"
)
# One row per alert, not one per replica that evaluated it.
ALERTS = f'max without ({dl.REPLICA_LABELS}) (ALERTS{{alertname=~"Connector.*", {dl.ACCOUNTS}}})'
ALERT_STATE = dl.text_map({"firing": ("firing", "red"), "pending": ("pending", "orange")})


# The connector counts of the stat row next to the health counts: title, width, the colour it
# turns when it counts any connector, and the recording rule expression it sums.
COUNTED = (("Not healthy", 4, "red", NOT_HEALTHY), ("Relink needed", 3, "purple", RELINK))
ABOUT = {
    "Not healthy": "Connectors in any state other than healthy (paused included).",
    "Relink needed": "Connectors whose end user must re-authenticate (paused ones included).",
}


def _counts() -> list[dl.Panel]:
    """The stat row: how many connectors in each state, and whether the data can be trusted."""
    by_health = dl.named_stat(
        "Connectors by health",
        "How many connectors are in each normalised health state right now.",
        dl.query(HEALTH_BY_STATE, "{{health}}", instant=True),
        (5, 14),
        dict(dl.HEALTH),
        color=cm.BigValueColorMode.BACKGROUND,
    )
    counted = [
        dl.alarm_stat(
            title,
            ABOUT[title],
            f"sum({expr})",
            (5, width),
            ((None, "green"), (1, color)),
            graph=cm.BigValueGraphMode.AREA,
        )
        for title, width, color, expr in COUNTED
    ]
    return [
        by_health,
        *counted,
        dl.alarm_stat(
            "Accounts failing to poll",
            "Vendor accounts whose last poll failed: their connector data is frozen at the last "
            "good poll. See the exporter health dashboard.",
            ACCOUNTS_FAILING,
            (5, 3),
            ((None, "green"), (1, "red")),
        ),
    ]


def _unhealthy_table() -> dl.Panel:
    columns = ("vendor", "account", "name", "integration", "group", "health")
    return dl.table_panel(
        "Connectors not healthy",
        "Every connector whose health is not `healthy`, longest first. Unhealthy since: last "
        "time seen healthy in the dashboard's time range (or the first time seen unhealthy "
        "when it never was healthy in the range). Click a name for the connector's details.",
        [dl.table_query(UNHEALTHY_SINCE), dl.table_query(UNHEALTHY_LAST_SUCCESS_AGE)],
        (11, 24),
        [
            dl.MERGE,
            dl.organize(
                rename={"Value #A": "unhealthy since", "Value #B": "last success age"},
                order=(*columns, "Value #A", "Value #B", "connector_id"),
            ),
        ],
        sort_by="unhealthy since",
        overrides={
            "health": dl.color_text(dl.HEALTH_TEXT),
            "unhealthy since": dl.prop("unit", "dateTimeFromNow"),
            "last success age": dl.prop("unit", "s"),
            "name": dl.DETAIL_LINKS,
            "connector_id": dl.DETAIL_LINKS,
        },
        no_value="Every connector is healthy",
    ).interval("1m")


def _where() -> list[dl.Panel]:
    """Over time and per account or integration: where the problems are."""
    per_state = dl.count_timeseries(
        "Connectors per health state",
        "The health counts over time, stacked: when did a state grow?",
        [dl.query(HEALTH_BY_STATE, "{{health}}")],
    )
    matrix = dl.organize(
        rename={"vendor_account\\health": "vendor/account"},
        hide=(),
        order=("vendor_account\\health", *(name for name, _ in dl.HEALTH)),
    )
    return [
        dl.health_colors(
            per_state.stacking(cb.StackingConfig().mode(cm.StackingMode.NORMAL)).fill_opacity(30)
        ),
        dl.count_timeseries(
            "Not healthy per vendor and account",
            "Where the problems are: connectors not healthy, per vendor account.",
            [dl.query(f"sum by (vendor, account) ({NOT_HEALTHY})", "{{vendor}}/{{account}}")],
        ),
        dl.table_panel(
            "Health per vendor and account",
            "One row per vendor account, one column per health state.",
            [
                dl.table_query(
                    "label_join(vendor_account_health:connector_health:sum"
                    f'{{{dl.ACCOUNTS}}}, "vendor_account", "/", "vendor", "account")'
                )
            ],
            (8, 12),
            [
                dm.DataTransformerConfig(
                    id_val="groupingToMatrix",
                    options={
                        "columnField": "health",
                        "rowField": "vendor_account",
                        "valueField": "Value",
                        "emptyValue": "zero",
                    },
                ),
                matrix,
            ],
        ),
        dl.bar_panel(
            "Not healthy by integration",
            "Which integrations (Salesforce, Workday, ...) break most: top 15.",
            [
                dl.query(
                    "topk(15, sum by (vendor, integration) ("
                    "vendor_account_integration_health:connector_health:sum"
                    f'{{{dl.ACCOUNTS}, health!="healthy"}}) > 0)',
                    "{{vendor}} {{integration}}",
                    instant=True,
                )
            ],
            (8, 12),
            steps=((None, "orange"),),
            low=0,
            decimals=0,
            no_value="No integration has a connector that is not healthy",
        ),
    ]


def _alerts() -> dl.Panel:
    shown = ("alertstate", "alertname", "severity", "vendor", "account", "name", "connector_id")
    return dl.table_panel(
        "Connector alerts firing and pending",
        "The shipped alerting rules' alerts (Prometheus's ALERTS series), firing first.",
        [dl.table_query(ALERTS)],
        (8, 24),
        [dl.organize(rename={}, hide=(*dl.SERIES_LABELS, "integration"), order=shown)],
        sort_by="alertstate",
        overrides={"alertstate": dl.color_text(ALERT_STATE), "connector_id": dl.DETAIL_LINKS},
        no_value="No connector alert is firing or pending",
    )


def build() -> db.Dashboard:
    panels = [*_counts(), _unhealthy_table(), *_where(), _alerts()]
    return dl.new_dashboard(UID, TITLE, __doc__ or "", dl.variables(group=True), panels)

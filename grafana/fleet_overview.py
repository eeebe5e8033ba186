"""Connector fleet overview: is any connector broken, where, since when?

Fleet counts read the recording rules of alerts/connector-recording.rules.yml; the per-connector
table reads the exporter's series directly.
"""

from __future__ import annotations

from dashlib import (
    ACCOUNTS,
    DETAIL_LINKS,
    HEALTH,
    HEALTH_TEXT,
    MERGE,
    REPLICA_LABELS,
    SERIES_LABELS,
    Panel,
    alarm_stat,
    bar_panel,
    color_text,
    count_timeseries,
    health_colors,
    new_dashboard,
    organize,
    prop,
    query,
    stat_panel,
    table_panel,
    table_query,
    text_map,
    variables,
)
from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm

# "Unhealthy since": the last time the connector was seen healthy within the dashboard's time
# range, else (never healthy in the range) the first time it was seen not healthy, i.e. "at
# least since". Derived from the health StateSet itself because the vendors' own timestamps
# (relink_needed_since, last_failure) exist only for some vendors and some states. The subquery
# runs at the panel's interval (at least 1m) over `$__range`. Every side of a join is one series
# per connector (max by, topk by), so HA replicas scraped under one job list a connector once.
UNHEALTHY_SINCE = f"""1000 * (
    max by (vendor, account, connector_id) (
      max_over_time(
        timestamp(connector_health{{{ACCOUNTS}, health="healthy"}} == 1)[$__range:$__interval]
      )
    )
  or
    max by (vendor, account, connector_id) (
      min_over_time(
        timestamp(connector_health{{{ACCOUNTS}, health!="healthy"}} == 1)[$__range:$__interval]
      )
    )
)
* on (vendor, account, connector_id) group_left (health)
  topk by (vendor, account, connector_id) (
    1, connector_health{{{ACCOUNTS}, health!="healthy"}} == 1
  )
* on (vendor, account, connector_id) group_left (name, integration, group)
  topk by (vendor, account, connector_id) (1, connector_info{{{ACCOUNTS}, group=~"$group"}})"""

UNHEALTHY_LAST_SUCCESS_AGE = f"""max by (vendor, account, connector_id) (
  connector_last_success_age_seconds{{{ACCOUNTS}}}
  and on (vendor, account, connector_id) (connector_health{{{ACCOUNTS}, health!="healthy"}} == 1)
  and on (vendor, account, connector_id) connector_info{{{ACCOUNTS}, group=~"$group"}}
)"""

HEALTH_BY_STATE = f"sum by (health) (vendor_account_health:connector_health:sum{{{ACCOUNTS}}})"
NOT_HEALTHY = f'vendor_account_health:connector_health:sum{{{ACCOUNTS}, health!="healthy"}}'
# An account counts once however many replicas poll it; failing when any of them failed.
ACCOUNTS_FAILING = (
    f"count(min by (vendor, account) (connector_exporter_poll_success{{{ACCOUNTS}}}) == 0)"
    " or vector(0)"
)
# One row per alert, not one per replica that evaluated it.
ALERTS = f'max without ({REPLICA_LABELS}) (ALERTS{{alertname=~"Connector.*", {ACCOUNTS}}})'
ALERT_STATE = text_map({"firing": ("firing", "red"), "pending": ("pending", "orange")})


def _counts() -> list[Panel]:
    """The stat row: how many connectors in each state, and whether the data can be trusted."""
    by_health = stat_panel(
        "Connectors by health",
        "How many connectors are in each normalised health state right now.",
        [query(HEALTH_BY_STATE, "{{health}}", instant=True)],
        (5, 14),
        color=cm.BigValueColorMode.BACKGROUND,
        text=cm.BigValueTextMode.VALUE_AND_NAME,
    ).color_scheme(db.FieldColor().mode(dm.FieldColorModeId.FIXED).fixed_color("text"))
    area = cm.BigValueGraphMode.AREA
    return [
        health_colors(by_health),
        alarm_stat(
            "Not healthy",
            "Connectors in any state other than healthy (paused included).",
            f"sum({NOT_HEALTHY})",
            (5, 4),
            ((None, "green"), (1, "red")),
            graph=area,
        ),
        alarm_stat(
            "Relink needed",
            "Connectors whose end user must re-authenticate (paused ones included).",
            f"sum(vendor_account:connector_relink_needed:sum{{{ACCOUNTS}}})",
            (5, 3),
            ((None, "green"), (1, "purple")),
            graph=area,
        ),
        alarm_stat(
            "Accounts failing to poll",
            "Vendor accounts whose last poll failed: their connector data is frozen at the last "
            "good poll. See the exporter health dashboard.",
            ACCOUNTS_FAILING,
            (5, 3),
            ((None, "green"), (1, "red")),
        ),
    ]


def _unhealthy_table() -> Panel:
    columns = ("vendor", "account", "name", "integration", "group", "health")
    return table_panel(
        "Connectors not healthy",
        "Every connector whose health is not `healthy`, longest first. Unhealthy since: last "
        "time seen healthy in the dashboard's time range (or the first time seen unhealthy "
        "when it never was healthy in the range). Click a name for the connector's details.",
        [table_query(UNHEALTHY_SINCE), table_query(UNHEALTHY_LAST_SUCCESS_AGE)],
        (11, 24),
        [
            MERGE,
            organize(
                rename={"Value #A": "unhealthy since", "Value #B": "last success age"},
                order=(*columns, "Value #A", "Value #B", "connector_id"),
            ),
        ],
        sort_by="unhealthy since",
        overrides={
            "health": color_text(HEALTH_TEXT),
            "unhealthy since": prop("unit", "dateTimeFromNow"),
            "last success age": prop("unit", "s"),
            "name": DETAIL_LINKS,
            "connector_id": DETAIL_LINKS,
        },
        no_value="Every connector is healthy",
    ).interval("1m")


def _where() -> list[Panel]:
    """Over time and per account or integration: where the problems are."""
    per_state = count_timeseries(
        "Connectors per health state",
        "The health counts over time, stacked: when did a state grow?",
        [query(HEALTH_BY_STATE, "{{health}}")],
    )
    matrix = organize(
        rename={"vendor_account\\health": "vendor/account"},
        hide=(),
        order=("vendor_account\\health", *(name for name, _ in HEALTH)),
    )
    return [
        health_colors(
            per_state.stacking(cb.StackingConfig().mode(cm.StackingMode.NORMAL)).fill_opacity(30)
        ),
        count_timeseries(
            "Not healthy per vendor and account",
            "Where the problems are: connectors not healthy, per vendor account.",
            [query(f"sum by (vendor, account) ({NOT_HEALTHY})", "{{vendor}}/{{account}}")],
        ),
        table_panel(
            "Health per vendor and account",
            "One row per vendor account, one column per health state.",
            [
                table_query(
                    "label_join(vendor_account_health:connector_health:sum"
                    f'{{{ACCOUNTS}}}, "vendor_account", "/", "vendor", "account")'
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
        bar_panel(
            "Not healthy by integration",
            "Which integrations (Salesforce, Workday, ...) break most: top 15.",
            [
                query(
                    "topk(15, sum by (vendor, integration) ("
                    "vendor_account_integration_health:connector_health:sum"
                    f'{{{ACCOUNTS}, health!="healthy"}}) > 0)',
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


def _alerts() -> Panel:
    shown = ("alertstate", "alertname", "severity", "vendor", "account", "name", "connector_id")
    return table_panel(
        "Connector alerts firing and pending",
        "The shipped alerting rules' alerts (Prometheus's ALERTS series), firing first.",
        [table_query(ALERTS)],
        (8, 24),
        [organize(rename={}, hide=(*SERIES_LABELS, "integration"), order=shown)],
        sort_by="alertstate",
        overrides={"alertstate": color_text(ALERT_STATE), "connector_id": DETAIL_LINKS},
        no_value="No connector alert is firing or pending",
    )


def build() -> db.Dashboard:
    return new_dashboard(
        "connector-fleet-overview",
        "Connector fleet overview",
        "Is any connector broken, where, since when? Fleet counts from the recording rules, "
        "every connector that is not healthy, and the connector alerts.",
        variables(group=True),
        [*_counts(), _unhealthy_table(), *_where(), _alerts()],
    )

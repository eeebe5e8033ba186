"""The Grafana dashboards of connector-exporter, as code (grafana-foundation-sdk).

    python grafana/generate.py          # rewrites grafana/*.json
    python grafana/generate.py --check  # exit 1 when a committed file differs

Every query reads only the exporter's metrics (SPEC §5), the recording rules of
alerts/connector-recording.rules.yml, the process metrics every exporter serves, and `ALERTS`
(Prometheus's series of the shipped alerting rules). Panel ids and query refIds are numbered
here, so the output is byte-stable; tests/grafana/ checks it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from grafana_foundation_sdk.builders import bargauge, stat, statetimeline, table, timeseries
from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus as pb
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import prometheus as pm

HERE = Path(__file__).resolve().parent
TAGS = ["connector-exporter"]
DATASOURCE = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")

# Label filters every query carries; `=~` because the variables are multi-value with All=`.*`.
ACCOUNTS = 'vendor=~"$vendor", account=~"$account"'
CONNECTORS = ACCOUNTS + ', connector_id=~"$connector_id"'

# Normalised health (SPEC §5), in order of severity for people, with its colour and the code the
# detail dashboard's health timeline uses (a StateSet has no single numeric value to plot).
HEALTH = (
    ("healthy", "green"),
    ("degraded", "yellow"),
    ("failing", "orange"),
    ("broken", "red"),
    ("relink_needed", "purple"),
    ("incomplete", "blue"),
    ("paused", "text"),
    ("unknown", "#8e8e8e"),
)
HEALTH_CODE = {name: code for code, (name, _) in enumerate(HEALTH, start=1)}
DAY = 86400

Panel = Builder[dm.Panel]
ColoredPanel = TypeVar("ColoredPanel", stat.Panel, timeseries.Panel)


# --- small builders ------------------------------------------------------------------------
def query(
    expr: str, legend: str = "", *, instant: bool = False, table_format: bool = False
) -> pb.Dataquery:
    q = pb.Dataquery().expr(expr).datasource(DATASOURCE)
    if legend:
        q = q.legend_format(legend)
    q = q.instant() if instant else q.range()
    if table_format:
        q = q.format(pm.PromQueryFormat.TABLE)
    return q


def thresholds(*steps: tuple[float | None, str]) -> db.ThresholdsConfig:
    return (
        db.ThresholdsConfig()
        .mode(dm.ThresholdsMode.ABSOLUTE)
        .steps([dm.Threshold(value=v, color=c) for v, c in steps])
    )


def text_map(mapping: dict[str, tuple[str, str]]) -> list[dm.ValueMapping]:
    """Value mappings from a value (number or label text) to (display text, colour)."""
    return [
        dm.ValueMap(
            options={
                value: dm.ValueMappingResult(text=text, color=color, index=i)
                for i, (value, (text, color)) in enumerate(mapping.items())
            }
        )
    ]


HEALTH_TEXT = text_map({name: (name, color) for name, color in HEALTH})
HEALTH_CODES = text_map({str(HEALTH_CODE[name]): (name, color) for name, color in HEALTH})
YES_NO = text_map({"0": ("no", "green"), "1": ("yes", "red")})
POLL_RESULT = text_map({"0": ("failed", "red"), "1": ("ok", "green")})


def fixed_color(color: str) -> list[dm.DynamicConfigValue]:
    return [dm.DynamicConfigValue(id_val="color", value={"mode": "fixed", "fixedColor": color})]


def health_colors(panel: ColoredPanel) -> ColoredPanel:
    """Each series named after a health state gets that state's colour."""
    for name, color in HEALTH:
        panel = panel.override_by_name(name, fixed_color(color))
    return panel


def organize(
    rename: dict[str, str], hide: tuple[str, ...] = ("Time",), order: tuple[str, ...] = ()
) -> dm.DataTransformerConfig:
    """Grafana's organize transformation; `hide` and `order` name fields before `rename`."""
    return dm.DataTransformerConfig(
        id_val="organize",
        options={
            "excludeByName": dict.fromkeys(hide, True),
            "indexByName": {name: i for i, name in enumerate(order)},
            "renameByName": rename,
        },
    )


MERGE = dm.DataTransformerConfig(id_val="merge", options={})


def detail_link(title: str) -> dict[str, str]:
    """A table cell link to the connector detail dashboard for that row's connector."""
    url = (
        "/d/connector-detail/connector-detail?${datasource:queryparam}"
        "&var-vendor=${__data.fields.vendor}&var-account=${__data.fields.account}"
        "&var-connector_id=${__data.fields.connector_id}&${__url_time_range}"
    )
    # A field data link is {title, url}; Grafana URL-encodes the interpolated field values.
    return {"title": title, "url": url}


def dashboard_links() -> list[Builder[dm.DashboardLink]]:
    return [
        db.DashboardLink("Connector dashboards")
        .type(dm.DashboardLinkType.DASHBOARDS)
        .tags(TAGS)
        .as_dropdown(True)
        .include_vars(True)
        .keep_time(True)
    ]


def variables(*, group: bool = False, connector: bool = False) -> list[Builder[dm.VariableModel]]:
    """datasource, vendor and account (multi, All), and where it helps group or connector_id."""

    def multi(name: str, label: str, metric: str, label_name: str) -> db.QueryVariable:
        return (
            db.QueryVariable(name)
            .label(label)
            .datasource(DATASOURCE)
            .query({"query": f"label_values({metric}, {label_name})", "refId": "variable"})
            .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(dm.VariableSort.ALPHABETICAL_CASE_INSENSITIVE_ASC)
            .multi(True)
            .include_all(True)
            .all_value(".*")
            .current(dm.VariableOption(selected=True, text="All", value="$__all"))
        )

    found: list[Builder[dm.VariableModel]] = [
        db.DatasourceVariable("datasource").label("Data source").type("prometheus"),
        # Every configured account has a poll interval series from the start, before any poll.
        multi("vendor", "Vendor", "connector_exporter_poll_interval_seconds", "vendor"),
        multi(
            "account",
            "Account",
            'connector_exporter_poll_interval_seconds{vendor=~"$vendor"}',
            "account",
        ),
    ]
    if group:
        found.append(
            multi("group", "Group", f"connector_info{{{ACCOUNTS}}}", "group").description(
                "Vendor grouping (Fivetran group, Bindbee category, Apideck unified API, "
                "OpenInt connector config, Versori organisation); filters the connector table."
            )
        )
    if connector:
        found.append(
            multi("connector_id", "Connector", f"connector_info{{{ACCOUNTS}}}", "connector_id")
        )
    return found


def new_dashboard(uid: str, title: str, description: str) -> db.Dashboard:
    return (
        db.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(TAGS)
        .editable()
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .time("now-6h", "now")
        .refresh("1m")
        .timezone("browser")
        .links(dashboard_links())
    )


# --- connector fleet overview --------------------------------------------------------------
# "Unhealthy since": the last time the connector was seen healthy within the dashboard's time
# range, else (never healthy in the range) the first time it was seen not healthy, i.e. "at
# least since". Derived from the health StateSet itself because the vendors' own timestamps
# (relink_needed_since, last_failure) exist only for some vendors and some states. The subquery
# runs at the panel's interval (at least 1m) over `$__range`.
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
  (connector_health{{{ACCOUNTS}, health!="healthy"}} == 1)
* on (vendor, account, connector_id) group_left (name, integration, group)
  topk by (vendor, account, connector_id) (1, connector_info{{{ACCOUNTS}, group=~"$group"}})"""

UNHEALTHY_LAST_SUCCESS_AGE = f"""max by (vendor, account, connector_id) (
  connector_last_success_age_seconds{{{ACCOUNTS}}}
  and on (vendor, account, connector_id) (connector_health{{{ACCOUNTS}, health!="healthy"}} == 1)
  and on (vendor, account, connector_id) connector_info{{{ACCOUNTS}, group=~"$group"}}
)"""

HEALTH_BY_STATE = f"sum by (health) (vendor_account_health:connector_health:sum{{{ACCOUNTS}}})"


def fleet_overview() -> db.Dashboard:
    d = new_dashboard(
        "connector-fleet-overview",
        "Connector fleet overview",
        "Is any connector broken, where, since when? Fleet counts from the recording rules, "
        "every connector that is not healthy, and the connector alerts.",
    ).variables(variables(group=True))

    d = d.with_panel(
        health_colors(
            stat.Panel()
            .title("Connectors by health")
            .description("How many connectors are in each normalised health state right now.")
            .with_target(query(HEALTH_BY_STATE, "{{health}}", instant=True))
            .color_mode(cm.BigValueColorMode.BACKGROUND)
            .graph_mode(cm.BigValueGraphMode.NONE)
            .text_mode(cm.BigValueTextMode.VALUE_AND_NAME)
            .color_scheme(db.FieldColor().mode(dm.FieldColorModeId.FIXED).fixed_color("text"))
        )
        .height(5)
        .span(14)
    )
    d = d.with_panel(
        stat.Panel()
        .title("Not healthy")
        .description("Connectors in any state other than healthy (paused included).")
        .with_target(
            query(
                f'sum(vendor_account_health:connector_health:sum{{{ACCOUNTS}, health!="healthy"}})',
                instant=True,
            )
        )
        .color_mode(cm.BigValueColorMode.BACKGROUND)
        .graph_mode(cm.BigValueGraphMode.AREA)
        .thresholds(thresholds((None, "green"), (1, "red")))
        .height(5)
        .span(4)
    )
    d = d.with_panel(
        stat.Panel()
        .title("Relink needed")
        .description("Connectors whose end user must re-authenticate (paused ones included).")
        .with_target(
            query(f"sum(vendor_account:connector_relink_needed:sum{{{ACCOUNTS}}})", instant=True)
        )
        .color_mode(cm.BigValueColorMode.BACKGROUND)
        .graph_mode(cm.BigValueGraphMode.AREA)
        .thresholds(thresholds((None, "green"), (1, "purple")))
        .height(5)
        .span(3)
    )
    d = d.with_panel(
        stat.Panel()
        .title("Accounts failing to poll")
        .description(
            "Vendor accounts whose last poll failed: their connector data is frozen at the last "
            "good poll. See the exporter health dashboard."
        )
        .with_target(
            query(
                f"count(connector_exporter_poll_success{{{ACCOUNTS}}} == 0) or vector(0)",
                instant=True,
            )
        )
        .color_mode(cm.BigValueColorMode.BACKGROUND)
        .graph_mode(cm.BigValueGraphMode.NONE)
        .thresholds(thresholds((None, "green"), (1, "red")))
        .height(5)
        .span(3)
    )

    d = d.with_panel(
        table.Panel()
        .title("Connectors not healthy")
        .description(
            "Every connector whose health is not `healthy`, longest first. Unhealthy since: last "
            "time seen healthy in the dashboard's time range (or the first time seen unhealthy "
            "when it never was healthy in the range). Click a name for the connector's details."
        )
        .with_target(query(UNHEALTHY_SINCE, instant=True, table_format=True))
        .with_target(query(UNHEALTHY_LAST_SUCCESS_AGE, instant=True, table_format=True))
        .interval("1m")
        .transformations(
            [
                MERGE,
                organize(
                    rename={
                        "Value #A": "unhealthy since",
                        "Value #B": "last success age",
                    },
                    order=(
                        "vendor",
                        "account",
                        "name",
                        "integration",
                        "group",
                        "health",
                        "Value #A",
                        "Value #B",
                        "connector_id",
                    ),
                ),
            ]
        )
        .sort_by([cb.TableSortByFieldState().display_name("unhealthy since")])
        .override_by_name(
            "health",
            [
                dm.DynamicConfigValue(id_val="mappings", value=HEALTH_TEXT),
                dm.DynamicConfigValue(id_val="custom.cellOptions", value={"type": "color-text"}),
            ],
        )
        .override_by_name(
            "unhealthy since", [dm.DynamicConfigValue(id_val="unit", value="dateTimeFromNow")]
        )
        .override_by_name("last success age", [dm.DynamicConfigValue(id_val="unit", value="s")])
        .override_by_name(
            "name", [dm.DynamicConfigValue(id_val="links", value=[detail_link("Connector detail")])]
        )
        .override_by_name(
            "connector_id",
            [dm.DynamicConfigValue(id_val="links", value=[detail_link("Connector detail")])],
        )
        .no_value("Every connector is healthy")
        .height(11)
        .span(24)
    )

    d = d.with_panel(
        health_colors(
            timeseries.Panel()
            .title("Connectors per health state")
            .description("The health counts over time, stacked: when did a state grow?")
            .with_target(query(HEALTH_BY_STATE, "{{health}}"))
            .stacking(cb.StackingConfig().mode(cm.StackingMode.NORMAL))
            .fill_opacity(30)
            .min(0)
            .decimals(0)
        )
        .height(8)
        .span(12)
    )
    d = d.with_panel(
        timeseries.Panel()
        .title("Not healthy per vendor and account")
        .description("Where the problems are: connectors not healthy, per vendor account.")
        .with_target(
            query(
                "sum by (vendor, account) ("
                f'vendor_account_health:connector_health:sum{{{ACCOUNTS}, health!="healthy"}})',
                "{{vendor}}/{{account}}",
            )
        )
        .min(0)
        .decimals(0)
        .height(8)
        .span(12)
    )
    d = d.with_panel(
        table.Panel()
        .title("Health per vendor and account")
        .description("One row per vendor account, one column per health state.")
        .with_target(
            query(
                "label_join(vendor_account_health:connector_health:sum"
                f'{{{ACCOUNTS}}}, "vendor_account", "/", "vendor", "account")',
                instant=True,
                table_format=True,
            )
        )
        .transformations(
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
                organize(
                    rename={"vendor_account\\health": "vendor/account"},
                    hide=(),
                    order=("vendor_account\\health", *(name for name, _ in HEALTH)),
                ),
            ]
        )
        .height(8)
        .span(12)
    )
    d = d.with_panel(
        bargauge.Panel()
        .title("Not healthy by integration")
        .description("Which integrations (Salesforce, Workday, ...) break most: top 15.")
        .with_target(
            query(
                "topk(15, sum by (vendor, integration) ("
                "vendor_account_integration_health:connector_health:sum"
                f'{{{ACCOUNTS}, health!="healthy"}}) > 0)',
                "{{vendor}} {{integration}}",
                instant=True,
            )
        )
        .display_mode(cm.BarGaugeDisplayMode.BASIC)
        .orientation(cm.VizOrientation.HORIZONTAL)
        .thresholds(thresholds((None, "orange")))
        .min(0)
        .decimals(0)
        .no_value("No integration has a connector that is not healthy")
        .height(8)
        .span(12)
    )
    d = d.with_panel(
        table.Panel()
        .title("Connector alerts firing and pending")
        .description(
            "The shipped alerting rules' alerts (Prometheus's ALERTS series), firing first."
        )
        .with_target(
            query(
                f'ALERTS{{alertname=~"Connector.*", {ACCOUNTS}}}',
                instant=True,
                table_format=True,
            )
        )
        .transformations(
            [
                organize(
                    rename={},
                    hide=("Time", "Value", "__name__", "job", "instance", "integration"),
                    order=(
                        "alertstate",
                        "alertname",
                        "severity",
                        "vendor",
                        "account",
                        "name",
                        "connector_id",
                    ),
                )
            ]
        )
        .sort_by([cb.TableSortByFieldState().display_name("alertstate")])
        .override_by_name(
            "alertstate",
            [
                dm.DynamicConfigValue(
                    id_val="mappings",
                    value=text_map({"firing": ("firing", "red"), "pending": ("pending", "orange")}),
                ),
                dm.DynamicConfigValue(id_val="custom.cellOptions", value={"type": "color-text"}),
            ],
        )
        .override_by_name(
            "connector_id",
            [dm.DynamicConfigValue(id_val="links", value=[detail_link("Connector detail")])],
        )
        .no_value("No connector alert is firing or pending")
        .height(8)
        .span(24)
    )
    return d


# --- connector detail ----------------------------------------------------------------------
HEALTH_AS_CODE = (
    "sum by (vendor, account, connector_id) (\n"
    + "\n  or ".join(
        f'{HEALTH_CODE[name]} * connector_health{{{CONNECTORS}, health="{name}"}}'
        for name, _ in HEALTH
    )
    + "\n)"
)
CONNECTOR_LEGEND = "{{vendor}}/{{account}} {{connector_id}}"


def age_stat(title: str, description: str, expr: str, *steps: tuple[float | None, str]) -> Panel:
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .with_target(query(expr, CONNECTOR_LEGEND, instant=True))
        .unit("s")
        .decimals(0)
        .color_mode(cm.BigValueColorMode.VALUE)
        .graph_mode(cm.BigValueGraphMode.NONE)
        .thresholds(thresholds(*steps) if steps else thresholds((None, "text")))
        .no_value("not reported")
        .height(4)
        .span(6)
    )


def connector_detail() -> db.Dashboard:
    d = new_dashboard(
        "connector-detail",
        "Connector detail",
        "One connector (or a few): health and vendor states over time, sync times, warnings, "
        "credential expiry. Linked from the fleet overview and from every connector alert.",
    ).variables(variables(connector=True))

    d = d.with_panel(
        table.Panel()
        .title("Connector")
        .description("Who it is: name, integration, group and end user as the vendor reports.")
        .with_target(query(f"connector_info{{{CONNECTORS}}}", instant=True, table_format=True))
        .transformations(
            [
                organize(
                    rename={},
                    hide=("Time", "Value", "__name__", "job", "instance"),
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
            ]
        )
        .height(5)
        .span(24)
    )
    d = d.with_panel(
        statetimeline.Panel()
        .title("Health")
        .description("Normalised health over time: when did it break, when did it recover?")
        .with_target(query(HEALTH_AS_CODE, CONNECTOR_LEGEND))
        .mappings(HEALTH_CODES)
        .color_scheme(db.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
        .thresholds(thresholds((None, "text")))
        .show_value(cm.VisibilityMode.AUTO)
        .merge_values(True)
        .height(6)
        .span(24)
    )
    d = d.with_panel(
        statetimeline.Panel()
        .title("Setup, sync and update state")
        .description(
            "The vendor's own states (one row per state the connector was in): setup/link/"
            "credential state, sync state and Fivetran's update state."
        )
        .with_target(
            query(
                f"connector_setup_state{{{CONNECTORS}}} == 1", "{{connector_id}} setup: {{state}}"
            )
        )
        .with_target(
            query(f"connector_sync_state{{{CONNECTORS}}} == 1", "{{connector_id}} sync: {{state}}")
        )
        .with_target(
            query(
                f"connector_update_state{{{CONNECTORS}}} == 1", "{{connector_id}} update: {{state}}"
            )
        )
        .mappings(text_map({"1": ("current", "blue")}))
        .color_scheme(db.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
        .thresholds(thresholds((None, "blue")))
        .show_value(cm.VisibilityMode.NEVER)
        .height(7)
        .span(24)
    )
    d = d.with_panel(
        statetimeline.Panel()
        .title("Paused and relink needed")
        .description("Whether the connector was paused, and whether its end user had to relink.")
        .with_target(query(f"connector_paused{{{CONNECTORS}}}", "{{connector_id}} paused"))
        .with_target(
            query(f"connector_relink_needed{{{CONNECTORS}}}", "{{connector_id}} relink needed")
        )
        .mappings(YES_NO)
        .color_scheme(db.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
        .thresholds(thresholds((None, "green"), (1, "red")))
        .show_value(cm.VisibilityMode.AUTO)
        .merge_values(True)
        .height(5)
        .span(24)
    )
    d = d.with_panel(
        age_stat(
            "Last successful sync",
            "How long ago the last sync succeeded (Fivetran succeeded_at and the like).",
            f"connector_last_success_age_seconds{{{CONNECTORS}}}",
            (None, "green"),
            (DAY, "orange"),
        )
    )
    d = d.with_panel(
        age_stat(
            "Last failed sync",
            "How long ago the last sync or credential refresh failed.",
            f"connector_last_failure_age_seconds{{{CONNECTORS}}}",
            (None, "red"),
            (DAY, "text"),
        )
    )
    d = d.with_panel(
        age_stat(
            "Sync frequency",
            "The configured interval between syncs (Fivetran sync_frequency).",
            f"connector_sync_frequency_seconds{{{CONNECTORS}}}",
        )
    )
    d = d.with_panel(
        age_stat(
            "Credentials expire in",
            "Time left until the credentials expire (Apideck, Versori); negative: expired.",
            f"connector_credential_expiry_timestamp_seconds{{{CONNECTORS}}} - time()",
            (None, "red"),
            (7 * DAY, "green"),
        )
    )
    d = d.with_panel(
        age_stat(
            "Last sync started",
            "How long ago the last sync started (Bindbee).",
            f"time() - connector_last_sync_start_timestamp_seconds{{{CONNECTORS}}}",
        )
    )
    d = d.with_panel(
        age_stat(
            "Next sync in",
            "Time until the next scheduled sync (Bindbee, Fivetran rescheduled_for); "
            "negative: overdue.",
            f"connector_next_sync_timestamp_seconds{{{CONNECTORS}}} - time()",
            (None, "orange"),
            (0, "green"),
        )
    )
    d = d.with_panel(
        age_stat(
            "Relink needed for",
            "How long the end user has been asked to re-authenticate (Bindbee relink_needed_at).",
            f"time() - connector_relink_needed_since_timestamp_seconds{{{CONNECTORS}}}",
            (None, "purple"),
        )
    )
    d = d.with_panel(
        stat.Panel()
        .title("Warnings and tasks")
        .description("Fivetran's warnings and the tasks it asks a user to act on, right now.")
        .with_target(
            query(f"connector_warnings{{{CONNECTORS}}}", "{{connector_id}} warnings", instant=True)
        )
        .with_target(
            query(f"connector_tasks{{{CONNECTORS}}}", "{{connector_id}} tasks", instant=True)
        )
        .color_mode(cm.BigValueColorMode.VALUE)
        .graph_mode(cm.BigValueGraphMode.NONE)
        .text_mode(cm.BigValueTextMode.VALUE_AND_NAME)
        .thresholds(thresholds((None, "green"), (1, "orange")))
        .decimals(0)
        .no_value("not reported")
        .height(4)
        .span(6)
    )
    d = d.with_panel(
        timeseries.Panel()
        .title("Time since last success and failure")
        .description(
            "A sawtooth is a connector that syncs; a line that only rises is one that stopped."
        )
        .with_target(
            query(f"connector_last_success_age_seconds{{{CONNECTORS}}}", "{{connector_id}} success")
        )
        .with_target(
            query(f"connector_last_failure_age_seconds{{{CONNECTORS}}}", "{{connector_id}} failure")
        )
        .unit("s")
        .min(0)
        .height(8)
        .span(12)
    )
    d = d.with_panel(
        timeseries.Panel()
        .title("Warnings and tasks over time")
        .description("Fivetran's warning and task counts: when did they appear?")
        .with_target(query(f"connector_warnings{{{CONNECTORS}}}", "{{connector_id}} warnings"))
        .with_target(query(f"connector_tasks{{{CONNECTORS}}}", "{{connector_id}} tasks"))
        .min(0)
        .decimals(0)
        .height(8)
        .span(12)
    )
    return d


# --- exporter health -----------------------------------------------------------------------
# Process metrics carry no vendor/account; keep the exporter's own targets (whatever the job
# is called) by joining on its build info.
EXPORTER_TARGETS = "on (job, instance) connector_exporter_build_info"
REQUEST_RATE = (
    "sum by (vendor, account, code) ("
    f"rate(connector_exporter_api_requests_total{{{ACCOUNTS}}}[$__rate_interval]))"
)


def exporter_health() -> db.Dashboard:
    d = new_dashboard(
        "connector-exporter-health",
        "Connector exporter health",
        "Is the exporter itself polling every vendor account? Poll results and durations, "
        "vendor API responses (429s), data age, connector counts, CPU and memory.",
    ).variables(variables())

    d = d.with_panel(
        stat.Panel()
        .title("Accounts polling OK")
        .description("Accounts whose last poll succeeded, of all accounts.")
        .with_target(
            query(f"sum(connector_exporter_poll_success{{{ACCOUNTS}}})", "ok", instant=True)
        )
        .with_target(
            query(
                f"count(connector_exporter_poll_interval_seconds{{{ACCOUNTS}}})",
                "accounts",
                instant=True,
            )
        )
        .text_mode(cm.BigValueTextMode.VALUE_AND_NAME)
        .graph_mode(cm.BigValueGraphMode.NONE)
        .thresholds(thresholds((None, "text")))
        .height(4)
        .span(6)
    )
    d = d.with_panel(
        stat.Panel()
        .title("Throttled requests (429) in range")
        .description("Vendor API responses with HTTP 429 over the dashboard's time range.")
        .with_target(
            query(
                "sum(increase(connector_exporter_api_requests_total"
                f'{{{ACCOUNTS}, code="429"}}[$__range])) or vector(0)',
                instant=True,
            )
        )
        .color_mode(cm.BigValueColorMode.BACKGROUND)
        .graph_mode(cm.BigValueGraphMode.NONE)
        .thresholds(thresholds((None, "green"), (1, "orange")))
        .decimals(0)
        .height(4)
        .span(6)
    )
    d = d.with_panel(
        stat.Panel()
        .title("Config reload")
        .description("Whether the last configuration (re)load succeeded, per exporter instance.")
        .with_target(
            query("connector_exporter_config_last_reload_successful", "{{instance}}", instant=True)
        )
        .mappings(POLL_RESULT)
        .color_mode(cm.BigValueColorMode.BACKGROUND)
        .graph_mode(cm.BigValueGraphMode.NONE)
        .thresholds(thresholds((None, "red"), (1, "green")))
        .height(4)
        .span(6)
    )
    d = d.with_panel(
        stat.Panel()
        .title("Version")
        .description("The exporter versions running.")
        .with_target(
            query("count by (version) (connector_exporter_build_info)", "{{version}}", instant=True)
        )
        .text_mode(cm.BigValueTextMode.NAME)
        .graph_mode(cm.BigValueGraphMode.NONE)
        .thresholds(thresholds((None, "text")))
        .height(4)
        .span(6)
    )
    d = d.with_panel(
        statetimeline.Panel()
        .title("Poll success per account")
        .description("Each account's last poll result over time: when did polling fail?")
        .with_target(
            query(f"connector_exporter_poll_success{{{ACCOUNTS}}}", "{{vendor}}/{{account}}")
        )
        .mappings(POLL_RESULT)
        .color_scheme(db.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
        .thresholds(thresholds((None, "red"), (1, "green")))
        .show_value(cm.VisibilityMode.NEVER)
        .merge_values(True)
        .height(7)
        .span(24)
    )
    d = d.with_panel(
        timeseries.Panel()
        .title("Time since last successful poll")
        .description(
            "Age of each account's data; ConnectorExporterStaleData fires above 3 poll intervals."
        )
        .with_target(
            query(
                f"time() - connector_exporter_last_poll_success_timestamp_seconds{{{ACCOUNTS}}}",
                "{{vendor}}/{{account}}",
            )
        )
        .unit("s")
        .min(0)
        .height(8)
        .span(12)
    )
    d = d.with_panel(
        timeseries.Panel()
        .title("Poll duration")
        .description("How long the last poll of each account took, all pages included.")
        .with_target(
            query(
                f"connector_exporter_poll_duration_seconds{{{ACCOUNTS}}}", "{{vendor}}/{{account}}"
            )
        )
        .unit("s")
        .min(0)
        .height(8)
        .span(12)
    )
    d = d.with_panel(
        timeseries.Panel()
        .title("Vendor API requests by code")
        .description(
            "Requests per second by HTTP status (or timeout/error); 429 (throttled) in orange, "
            "server errors and transport failures in red."
        )
        .with_target(query(REQUEST_RATE, "{{vendor}}/{{account}} {{code}}"))
        .unit("reqps")
        .min(0)
        .override_by_regexp(".* 429", fixed_color("orange"))
        .override_by_regexp(".* (5..|timeout|error)", fixed_color("red"))
        .height(8)
        .span(12)
    )
    d = d.with_panel(
        timeseries.Panel()
        .title("Poll failure ratio (1h)")
        .description("Share of polls that failed over the last hour, per account.")
        .with_target(
            query(
                f"vendor_account:connector_exporter_poll_failures:ratio_rate1h{{{ACCOUNTS}}}",
                "{{vendor}}/{{account}}",
            )
        )
        .unit("percentunit")
        .min(0)
        .max(1)
        .height(8)
        .span(12)
    )
    d = d.with_panel(
        timeseries.Panel()
        .title("Connectors per account")
        .description("Connectors in each account's last good snapshot: did some disappear?")
        .with_target(
            query(f"connector_exporter_connectors{{{ACCOUNTS}}}", "{{vendor}}/{{account}}")
        )
        .min(0)
        .decimals(0)
        .height(8)
        .span(12)
    )
    d = d.with_panel(
        timeseries.Panel()
        .title("Process CPU")
        .description("CPU seconds per second used by each exporter process.")
        .with_target(
            query(
                f"rate(process_cpu_seconds_total[$__rate_interval]) and {EXPORTER_TARGETS}",
                "{{instance}}",
            )
        )
        .unit("percentunit")
        .min(0)
        .height(8)
        .span(12)
    )
    d = d.with_panel(
        timeseries.Panel()
        .title("Process memory")
        .description("Resident memory of each exporter process.")
        .with_target(query(f"process_resident_memory_bytes and {EXPORTER_TARGETS}", "{{instance}}"))
        .unit("bytes")
        .min(0)
        .height(8)
        .span(12)
    )
    return d


# --- output --------------------------------------------------------------------------------
DASHBOARDS: dict[str, Callable[[], db.Dashboard]] = {
    "connector-fleet-overview.json": fleet_overview,
    "connector-detail.json": connector_detail,
    "connector-exporter-health.json": exporter_health,
}


def _finish(model: dm.Dashboard) -> None:
    """Stable panel ids (1, 2, ...) and query refIds (A, B, ...) in layout order; every panel
    reads the datasource variable."""
    for i, panel in enumerate(model.panels or [], start=1):
        panel.id_val = i
        if isinstance(panel, dm.Panel):
            panel.datasource = DATASOURCE
        for j, target in enumerate(getattr(panel, "targets", None) or []):
            target.ref_id = chr(ord("A") + j)


def render(build: Callable[[], db.Dashboard]) -> str:
    """One dashboard as the JSON text committed under grafana/."""
    model = build().build()
    _finish(model)
    data: dict[str, Any] = json.loads(json.dumps(model, cls=JSONEncoder))
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def generate() -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    return {name: render(build) for name, build in DASHBOARDS.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when a file is out of date")
    parser.add_argument("--out", type=Path, default=HERE, help="directory (default: grafana/)")
    args = parser.parse_args(argv)
    stale = []
    for name, text in generate().items():
        path = args.out / name
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        print(f"out of date: {', '.join(stale)}; run python grafana/generate.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

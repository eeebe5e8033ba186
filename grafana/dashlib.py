"""What the three dashboards share: queries, thresholds, value mappings, variables, the health
palette and one builder per panel kind, so that a dashboard module only says what it shows.

Every builder sets only what it is given: the JSON of a panel holds the options its dashboard
module names and nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol, Self, TypeVar

from grafana_foundation_sdk.builders import bargauge, stat, statetimeline, table, timeseries
from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus as pb
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import prometheus as pm

from exporter.model import SEVERITY, Health

TAGS = ["connector-exporter"]
DATASOURCE = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")
DAY = 86400

# Label filters every query carries; `=~` because the variables are multi-value with All=`.*`.
ACCOUNTS = 'vendor=~"$vendor", account=~"$account"'
CONNECTORS = ACCOUNTS + ', connector_id=~"$connector_id"'
CONNECTOR_KEY = "vendor, account, connector_id"
# Two HA replicas scraped under one job differ only in these target labels; aggregating them
# away counts each connector (or account) once.
REPLICA_LABELS = "instance, pod"

Steps = tuple[tuple[float | None, str], ...]
# (height, width) in Grafana grid units; the width of a row is 24.
Size = tuple[int, int]
Panel = Builder[dm.Panel]


# --- health ----------------------------------------------------------------------------------
# The colour of each normalised health state (SPEC §5). Keyed by the model's enum, so a new state
# without a colour stops the generator (health_palette) instead of showing up grey.
HEALTH_COLORS: Mapping[Health, str] = {
    Health.HEALTHY: "green",
    Health.DEGRADED: "yellow",
    Health.FAILING: "orange",
    Health.BROKEN: "red",
    Health.RELINK_NEEDED: "purple",
    Health.INCOMPLETE: "blue",
    Health.PAUSED: "text",
    Health.UNKNOWN: "#8e8e8e",
}


def health_palette(
    order: Sequence[Health], colors: Mapping[Health, str], every: Iterable[Health]
) -> tuple[tuple[str, str], ...]:
    """(state, colour) in `order`; refuses an order or colours that miss or repeat a state."""
    states = list(every)
    missing = [h for h in states if h not in colors or h not in order]
    if missing or len(order) != len(set(order)) or set(order) != set(states):
        raise ValueError(f"health order {list(order)} / colours do not cover {states} once each")
    return tuple((str(h), colors[h]) for h in order)


# The status page's order: healthy, then most urgent first (exporter.model.SEVERITY).
HEALTH = health_palette((Health.HEALTHY, *SEVERITY), HEALTH_COLORS, Health)
# The detail dashboard's health timeline plots one number per state (a StateSet has none).
HEALTH_CODE = {name: code for code, (name, _) in enumerate(HEALTH, start=1)}


# --- queries, thresholds, mappings -----------------------------------------------------------
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


def table_query(expr: str) -> pb.Dataquery:
    """An instant query whose series become table rows."""
    return query(expr, instant=True, table_format=True)


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


TEXT: Steps = ((None, "text"),)
HEALTH_TEXT = text_map({name: (name, color) for name, color in HEALTH})
HEALTH_CODES = text_map({str(HEALTH_CODE[name]): (name, color) for name, color in HEALTH})
YES_NO = text_map({"0": ("no", "green"), "1": ("yes", "red")})
POLL_RESULT = text_map({"0": ("failed", "red"), "1": ("ok", "green")})


def prop(id_val: str, value: Any) -> list[dm.DynamicConfigValue]:
    """One field override property (unit, links, mappings, ...)."""
    return [dm.DynamicConfigValue(id_val=id_val, value=value)]


def fixed_color(color: str) -> list[dm.DynamicConfigValue]:
    return prop("color", {"mode": "fixed", "fixedColor": color})


def color_text(mappings: list[dm.ValueMapping]) -> list[dm.DynamicConfigValue]:
    """A table column whose text takes the colour of its value mapping."""
    return prop("mappings", mappings) + prop("custom.cellOptions", {"type": "color-text"})


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
# The labels a table of instant series shows nothing useful in.
SERIES_LABELS = ("Time", "Value", "__name__", "job", "instance")


def detail_link(title: str) -> dict[str, str]:
    """A table cell link to the connector detail dashboard for that row's connector."""
    url = (
        "/d/connector-detail/connector-detail?${datasource:queryparam}"
        "&var-vendor=${__data.fields.vendor}&var-account=${__data.fields.account}"
        "&var-connector_id=${__data.fields.connector_id}&${__url_time_range}"
    )
    # A field data link is {title, url}; Grafana URL-encodes the interpolated field values.
    return {"title": title, "url": url}


DETAIL_LINKS = prop("links", [detail_link("Connector detail")])


# --- panels ----------------------------------------------------------------------------------
class _Fields(Protocol):
    """The field options every panel kind of the SDK has."""

    def unit(self, unit: str) -> Self: ...
    def decimals(self, decimals: float) -> Self: ...
    def min(self, min_val: float) -> Self: ...
    def max(self, max_val: float) -> Self: ...
    def mappings(self, mappings: list[dm.ValueMapping]) -> Self: ...
    def no_value(self, no_value: str) -> Self: ...
    def thresholds(self, thresholds: Builder[dm.ThresholdsConfig]) -> Self: ...
    def color_scheme(self, color: Builder[dm.FieldColor]) -> Self: ...
    def override_by_name(self, name: str, properties: list[dm.DynamicConfigValue]) -> Self: ...


class _Panel(_Fields, Protocol):
    def title(self, title: str) -> Self: ...
    def description(self, description: str) -> Self: ...
    def targets(self, targets: list[Any]) -> Self: ...
    def height(self, h: int) -> Self: ...
    def span(self, w: int) -> Self: ...


P = TypeVar("P", bound=_Panel)
F = TypeVar("F", bound=_Fields)


def fields(
    panel: F,
    *,
    unit: str | None = None,
    decimals: int | None = None,
    low: float | None = None,
    high: float | None = None,
    steps: Steps | None = None,
    mappings: list[dm.ValueMapping] | None = None,
    no_value: str | None = None,
    overrides: Mapping[str, list[dm.DynamicConfigValue]] | None = None,
) -> F:
    """Field options, each only when given (an unset option stays out of the JSON)."""
    setters: list[tuple[object, Any]] = [
        (unit, panel.unit),
        (decimals, panel.decimals),
        (low, panel.min),
        (high, panel.max),
        (mappings, panel.mappings),
        (no_value, panel.no_value),
        (None if steps is None else thresholds(*steps), panel.thresholds),
    ]
    for value, setter in setters:
        if value is not None:
            setter(value)
    for name, props in (overrides or {}).items():
        panel.override_by_name(name, props)
    return panel


def panel(
    kind: P,
    title: str,
    description: str,
    targets: Sequence[pb.Dataquery],
    size: Size,
    **options: Any,
) -> P:
    """Any panel: what it is, its queries, where it sits, and its field options (`fields`)."""
    built = kind.title(title).description(description).targets(list(targets))
    return fields(built.height(size[0]).span(size[1]), **options)


def stat_panel(
    title: str,
    description: str,
    targets: Sequence[pb.Dataquery],
    size: Size,
    *,
    color: cm.BigValueColorMode | None = None,
    graph: cm.BigValueGraphMode = cm.BigValueGraphMode.NONE,
    text: cm.BigValueTextMode | None = None,
    **options: Any,
) -> stat.Panel:
    """A big number (or a few); no sparkline unless `graph` asks for one."""
    p = panel(stat.Panel(), title, description, targets, size, **options).graph_mode(graph)
    if color is not None:
        p = p.color_mode(color)
    return p if text is None else p.text_mode(text)


def alarm_stat(
    title: str,
    description: str,
    expr: str,
    size: Size,
    steps: Steps,
    legend: str = "",
    **options: Any,
) -> stat.Panel:
    """A number that turns its background to the colour of the threshold it reached."""
    return stat_panel(
        title,
        description,
        [query(expr, legend, instant=True)],
        size,
        color=cm.BigValueColorMode.BACKGROUND,
        steps=steps,
        **options,
    )


def named_stat(
    title: str,
    description: str,
    target: pb.Dataquery,
    size: Size,
    colors: Mapping[str, str],
    **options: Any,
) -> stat.Panel:
    """One value per series, each under its name in the colour `colors` gives it (text colour
    for a name it does not know)."""
    overrides = {name: fixed_color(color) for name, color in colors.items()}
    p = stat_panel(
        title,
        description,
        [target],
        size,
        text=cm.BigValueTextMode.VALUE_AND_NAME,
        overrides=overrides,
        **options,
    )
    return p.color_scheme(db.FieldColor().mode(dm.FieldColorModeId.FIXED).fixed_color("text"))


def timeseries_panel(
    title: str,
    description: str,
    targets: Sequence[pb.Dataquery],
    size: Size = (8, 12),
    **options: Any,
) -> timeseries.Panel:
    """Lines over time, from zero."""
    return panel(timeseries.Panel(), title, description, targets, size, low=0, **options)


def count_timeseries(
    title: str, description: str, targets: Sequence[pb.Dataquery], **options: Any
) -> timeseries.Panel:
    """Whole numbers over time (connectors, warnings)."""
    return timeseries_panel(title, description, targets, decimals=0, **options)


def timeline_panel(
    title: str,
    description: str,
    targets: Sequence[pb.Dataquery],
    size: Size,
    *,
    show: cm.VisibilityMode,
    merge: bool = False,
    **options: Any,
) -> statetimeline.Panel:
    """States over time, coloured by value mappings and thresholds."""
    p = panel(statetimeline.Panel(), title, description, targets, size, **options)
    p = p.color_scheme(db.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS)).show_value(show)
    return p.merge_values(True) if merge else p


def table_panel(
    title: str,
    description: str,
    targets: Sequence[pb.Dataquery],
    size: Size,
    transformations: list[dm.DataTransformerConfig],
    *,
    sort_by: str | None = None,
    **options: Any,
) -> table.Panel:
    """Rows from instant table queries, shaped by Grafana transformations."""
    p = panel(table.Panel(), title, description, targets, size, **options)
    p = p.transformations(transformations)
    return p if sort_by is None else p.sort_by([cb.TableSortByFieldState().display_name(sort_by)])


def bar_panel(
    title: str, description: str, targets: Sequence[pb.Dataquery], size: Size, **options: Any
) -> bargauge.Panel:
    """Horizontal bars, one per series."""
    p = panel(bargauge.Panel(), title, description, targets, size, **options)
    return p.display_mode(cm.BarGaugeDisplayMode.BASIC).orientation(cm.VizOrientation.HORIZONTAL)


def health_colors(p: P) -> P:
    """Each series named after a health state gets that state's colour."""
    for name, color in HEALTH:
        p.override_by_name(name, fixed_color(color))
    return p


# --- dashboards ------------------------------------------------------------------------------
def dashboard_links() -> list[Builder[dm.DashboardLink]]:
    return [
        db.DashboardLink("Connector dashboards")
        .type(dm.DashboardLinkType.DASHBOARDS)
        .tags(TAGS)
        .as_dropdown(True)
        .include_vars(True)
        .keep_time(True)
    ]


def _multi(name: str, label: str, metric: str, label_name: str) -> db.QueryVariable:
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


def variables(*, group: bool = False, connector: bool = False) -> list[Builder[dm.VariableModel]]:
    """datasource, vendor and account (multi, All), and where it helps group or connector_id."""
    found: list[Builder[dm.VariableModel]] = [
        db.DatasourceVariable("datasource").label("Data source").type("prometheus"),
        # Every configured account has a poll interval series from the start, before any poll.
        _multi("vendor", "Vendor", "connector_exporter_poll_interval_seconds", "vendor"),
        _multi(
            "account",
            "Account",
            'connector_exporter_poll_interval_seconds{vendor=~"$vendor"}',
            "account",
        ),
    ]
    if group:
        found.append(
            _multi("group", "Group", f"connector_info{{{ACCOUNTS}}}", "group").description(
                "Vendor grouping (Fivetran group, Bindbee category, Apideck unified API, "
                "OpenInt connector config, Versori organisation); filters the connector table."
            )
        )
    if connector:
        found.append(
            _multi("connector_id", "Connector", f"connector_info{{{ACCOUNTS}}}", "connector_id")
        )
    return found


def new_dashboard(
    uid: str,
    title: str,
    description: str,
    variables: list[Builder[dm.VariableModel]],
    panels: Iterable[Panel],
) -> db.Dashboard:
    """A dashboard of `panels` laid out in order, tagged and linked to the other two."""
    d = (
        db.Dashboard(title)
        .uid(uid)
        .description(" ".join(description.split()))
        .tags(TAGS)
        .editable()
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .time("now-6h", "now")
        .refresh("1m")
        .timezone("browser")
        .links(dashboard_links())
        .variables(variables)
    )
    for p in panels:
        d = d.with_panel(p)
    return d

"""Every metric family the exporter serves, each defined once: name, help, type, how it is made.

In the spirit of kube-state-metrics' family generators: a per-connector family carries the
function that turns a run of connectors into its exposition lines. The renderer, the README's
metrics table test and the alert rules' metric-name check all read `ALL`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from prometheus_client import utils as prometheus_utils

from exporter.model import Connector, Health

HEALTH_STATES = tuple(h.value for h in Health)
ONE_HOT = {True: "1.0", False: "0.0"}


def go_float(value: float) -> str:
    """Floats as prometheus-client (and Go) print them, so output matches theirs exactly."""
    text: str = prometheus_utils.floatToGoString(value)  # type: ignore[no-untyped-call]
    return text


def esc(value: str) -> str:
    """Label value escaping of the exposition formats (backslash, newline, double quote)."""
    if "\\" in value or "\n" in value or '"' in value:
        return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
    return value


@dataclass(frozen=True)
class Run:
    """A run of one account's connectors, with what every line of theirs needs.

    `prefixes[i]` is connector i's `account="…",connector_id="…"` (label names sorted, as
    prometheus-client orders them); `vendor` its `vendor="…"`; `states` the known values of each
    StateSet attribute, `other` included.
    """

    connectors: Sequence[Connector]
    prefixes: Sequence[str]
    vendor: str
    states: Mapping[str, tuple[str, ...]]


Lines = Callable[[Run], Iterator[str]]


@dataclass(frozen=True)
class Family:
    """One metric family. Exactly one of the ways it is made applies:

    - `lines`: per connector, rendered once per poll;
    - `age_of`: `now - <Connector attribute>` in whole seconds, rendered at scrape time;
    - neither: a catalog family or one of the exporter's own (see `render`, `collector`).
    """

    name: str
    help: str
    type: str = "gauge"
    labels: tuple[str, ...] = ()  # beyond vendor, account, connector_id (for docs and checks)
    lines: Lines | None = field(default=None, compare=False)
    age_of: str = ""


def _info(run: Run) -> Iterator[str]:
    for c, ac in zip(run.connectors, run.prefixes, strict=True):
        yield (
            f'connector_info{{{ac},end_user="{esc(c.end_user)}",group="{esc(c.group)}",'
            f'integration="{esc(c.integration)}",name="{esc(c.name)}",{run.vendor}}} 1.0\n'
        )


def _health(run: Run) -> Iterator[str]:
    for c, ac in zip(run.connectors, run.prefixes, strict=True):
        current = c.health.value
        for state in HEALTH_STATES:
            value = ONE_HOT[state == current]
            yield f'connector_health{{{ac},health="{state}",{run.vendor}}} {value}\n'


def stateset(name: str, attr: str) -> Lines:
    """One series per known value of `attr` (`other` included), 1 for the current one."""

    def lines(run: Run) -> Iterator[str]:
        states = run.states[attr]
        for c, ac in zip(run.connectors, run.prefixes, strict=True):
            value = getattr(c, attr)
            if value is not None:
                for state in states:
                    yield f'{name}{{{ac},state="{state}",{run.vendor}}} {ONE_HOT[state == value]}\n'

    return lines


def flag(name: str, attr: str) -> Lines:
    """0/1 from a boolean attribute; always present."""

    def lines(run: Run) -> Iterator[str]:
        for c, ac in zip(run.connectors, run.prefixes, strict=True):
            yield f"{name}{{{ac},{run.vendor}}} {ONE_HOT[getattr(c, attr)]}\n"

    return lines


def number(name: str, attr: str) -> Lines:
    """The attribute's value; no series where the vendor left it null."""

    def lines(run: Run) -> Iterator[str]:
        for c, ac in zip(run.connectors, run.prefixes, strict=True):
            value = getattr(c, attr)
            if value is not None:
                yield f"{name}{{{ac},{run.vendor}}} {go_float(value)}\n"

    return lines


def _per_connector(name: str, help_: str, make: Callable[[str, str], Lines], attr: str) -> Family:
    labels = ("state",) if make is stateset else ()
    return Family(name, help_, labels=labels, lines=make(name, attr))


# Output order. Each `*_age_seconds` family follows the timestamp family it is derived from.
CONNECTOR: tuple[Family, ...] = (
    Family(
        "connector_info",
        "Connector identity; always 1.",
        labels=("name", "integration", "group", "end_user"),
        lines=_info,
    ),
    Family(
        "connector_health",
        "Normalised connector health (one series per state, 1 for the current one).",
        labels=("health",),
        lines=_health,
    ),
    _per_connector(
        "connector_setup_state",
        "Vendor setup, link or credential state (one series per state).",
        stateset,
        "setup_state",
    ),
    _per_connector(
        "connector_sync_state", "Vendor sync state (one series per state).", stateset, "sync_state"
    ),
    _per_connector(
        "connector_update_state",
        "Vendor data update state (one series per state).",
        stateset,
        "update_state",
    ),
    _per_connector(
        "connector_paused", "1 if the connector is paused, inactive or disabled.", flag, "paused"
    ),
    _per_connector(
        "connector_relink_needed",
        "1 if the end user must re-authenticate the connector.",
        flag,
        "relink_needed",
    ),
    _per_connector(
        "connector_last_success_timestamp_seconds",
        "Unix time of the connector's last successful sync.",
        number,
        "last_success",
    ),
    Family(
        "connector_last_success_age_seconds",
        "Seconds since the last successful sync.",
        age_of="last_success",
    ),
    _per_connector(
        "connector_last_failure_timestamp_seconds",
        "Unix time of the connector's last failed sync or credential refresh.",
        number,
        "last_failure",
    ),
    Family(
        "connector_last_failure_age_seconds",
        "Seconds since the last failed sync or refresh.",
        age_of="last_failure",
    ),
    _per_connector(
        "connector_last_sync_start_timestamp_seconds",
        "Unix time the connector's last sync started.",
        number,
        "last_sync_start",
    ),
    _per_connector(
        "connector_next_sync_timestamp_seconds",
        "Unix time the connector's next sync is scheduled for.",
        number,
        "next_sync",
    ),
    _per_connector(
        "connector_relink_needed_since_timestamp_seconds",
        "Unix time since which the end user must re-authenticate the connector.",
        number,
        "relink_needed_since",
    ),
    _per_connector(
        "connector_credential_expiry_timestamp_seconds",
        "Unix time the connector's credentials expire.",
        number,
        "credential_expiry",
    ),
    _per_connector(
        "connector_sync_frequency_seconds",
        "Configured interval between syncs.",
        number,
        "sync_frequency",
    ),
    _per_connector(
        "connector_warnings",
        "Number of warnings the vendor reports on the connector.",
        number,
        "warnings",
    ),
    _per_connector(
        "connector_tasks", "Number of tasks the vendor asks a user to act on.", number, "tasks"
    ),
)

# Catalog entries (connector types), not connector instances: no connector_id of an instance.
CATALOG: tuple[Family, ...] = (
    Family(
        "connector_catalog_status",
        "Catalog release stage of a connector type (one series per stage).",
        labels=("status",),
    ),
    Family(
        "connector_catalog_info",
        "Catalog identity of a connector type; always 1.",
        labels=("name", "auth_type"),
    ),
)

# The exporter's own families, per account unless `labels` says otherwise (SPEC §5, §6.3).
ACCOUNT_LABELS = ("vendor", "account")
EXPORTER: tuple[Family, ...] = (
    Family("connector_exporter_poll_success", "1 if the last poll of this account succeeded."),
    Family(
        "connector_exporter_last_poll_success_timestamp_seconds",
        "Unix time the last successful poll of this account ended.",
    ),
    Family(
        "connector_exporter_poll_duration_seconds",
        "Duration of the last poll of this account, all pages included.",
    ),
    Family("connector_exporter_polls", "Polls of this account.", "counter"),
    Family("connector_exporter_poll_failures", "Failed polls of this account.", "counter"),
    Family(
        "connector_exporter_last_poll_failure_reason",
        "Why the last poll of this account failed (one series per reason; none: it succeeded).",
        labels=("reason",),
    ),
    Family(
        "connector_exporter_api_requests",
        "Vendor API requests by HTTP status code (or timeout / error).",
        "counter",
        labels=("code",),
    ),
    Family(
        "connector_exporter_connectors", "Connectors in the last good snapshot of this account."
    ),
    Family("connector_exporter_poll_interval_seconds", "Configured poll interval of this account."),
    Family(
        "connector_exporter_config_last_reload_successful",
        "1 if the last configuration load succeeded.",
    ),
    Family(
        "connector_exporter_config_last_reload_success_timestamp_seconds",
        "Unix time of the last successful configuration load.",
    ),
    Family(
        "connector_exporter_build_info", "Build of the exporter; always 1.", labels=("version",)
    ),
)
# Families without the per-account labels.
PROCESS_WIDE = frozenset(
    {
        "connector_exporter_config_last_reload_successful",
        "connector_exporter_config_last_reload_success_timestamp_seconds",
        "connector_exporter_build_info",
    }
)

ALL: tuple[Family, ...] = (*CONNECTOR, *CATALOG, *EXPORTER)
BY_NAME: dict[str, Family] = {f.name: f for f in ALL}


def sample_names(family: Family) -> tuple[str, ...]:
    """The sample names a family exposes (a counter's samples end in `_total`)."""
    return (f"{family.name}_total",) if family.type == "counter" else (family.name,)

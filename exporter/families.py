"""Every metric family the exporter serves, each defined once: name, help, type, how it is made.

In the spirit of kube-state-metrics' family generators: a per-connector family carries the
function that turns a run of connectors into its exposition lines. The renderer, the README's
metrics table test and the alert rules' metric-name check all read `ALL`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
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


@dataclass(frozen=True)
class FromAttr(ABC):
    """Lines of family `name` made from one Connector attribute (what the reference test reads)."""

    name: str
    attr: str

    @abstractmethod
    def __call__(self, run: Run) -> Iterator[str]: ...


class stateset(FromAttr):  # noqa: N801 - reads as the kind of family in the table below
    """One series per known value of `attr` (`other` included), 1 for the current one."""

    def __call__(self, run: Run) -> Iterator[str]:
        name, attr = self.name, self.attr
        states = run.states[attr]
        for c, ac in zip(run.connectors, run.prefixes, strict=True):
            value = getattr(c, attr)
            if value is not None:
                for state in states:
                    yield f'{name}{{{ac},state="{state}",{run.vendor}}} {ONE_HOT[state == value]}\n'


class number(FromAttr):  # noqa: N801
    """The attribute's value; no series where the vendor left it null."""

    def __call__(self, run: Run) -> Iterator[str]:
        name, attr = self.name, self.attr
        for c, ac in zip(run.connectors, run.prefixes, strict=True):
            value = getattr(c, attr)
            if value is not None:
                text = ONE_HOT[value] if value.__class__ is bool else go_float(value)
                yield f"{name}{{{ac},{run.vendor}}} {text}\n"


class flag(number):  # noqa: N801
    """0/1 from a boolean attribute; no series where it is None (the vendor has no such field)."""


def _syncs(run: Run) -> Iterator[str]:
    for c, ac in zip(run.connectors, run.prefixes, strict=True):
        for result, count in c.syncs:
            yield f'connector_syncs_total{{{ac},result="{result}",{run.vendor}}} {count}.0\n'


def _issues(run: Run) -> Iterator[str]:
    for c, ac in zip(run.connectors, run.prefixes, strict=True):
        if not c.issues:
            continue
        # Label names sorted as prometheus-client orders them: `code` sits between `account` and
        # `connector_id`. An escaped account value cannot contain `,connector_id="` (its quotes
        # are escaped), so the first occurrence is the real boundary.
        cut = ac.index(',connector_id="')
        account, connector = ac[:cut], ac[cut:]
        for kind, code in c.issues:
            yield (
                f'connector_issue_info{{{account},code="{esc(code)}"{connector},'
                f'kind="{esc(kind)}",{run.vendor}}} 1.0\n'
            )


def _per_connector(name: str, help_: str, make: type[FromAttr], attr: str) -> Family:
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
    # SPEC §6.1
    _per_connector(
        "connector_schema_state",
        "Vendor schema state (one series per state); no series where the vendor omits it.",
        stateset,
        "schema_state",
    ),
    _per_connector(
        "connector_manual_schedule",
        "1 if the connector only syncs when triggered (it never syncs by itself).",
        flag,
        "manual_schedule",
    ),
    _per_connector(
        "connector_historical_sync",
        "1 while the connector runs a historical (initial or full re-) sync.",
        flag,
        "historical_sync",
    ),
    Family(
        "connector_issue_info",
        "One series per task or warning code the vendor reports on the connector; always 1.",
        labels=("kind", "code"),
        lines=_issues,
    ),
    _per_connector(
        "connector_sync_progress_ratio",
        "Progress of the running sync, 0 to 1.",
        number,
        "sync_progress",
    ),
    _per_connector(
        "connector_test", "1 if the vendor marks the connector as a test connector.", flag, "test"
    ),
    # From webhooks only (SPEC §6.2): no series until an event about the connector arrives.
    Family(
        "connector_syncs",
        "Syncs that ended, by result, as the vendor's webhooks reported them.",
        "counter",
        labels=("result",),
        lines=_syncs,
    ),
    _per_connector(
        "connector_last_sync_duration_seconds",
        "End minus start of the last sync whose start and end events were both received.",
        number,
        "last_sync_duration",
    ),
    _per_connector(
        "connector_last_event_timestamp_seconds",
        "Unix time the last accepted webhook event about the connector was received.",
        number,
        "last_event",
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
    Family(
        "connector_exporter_shard_ordinal",
        "This process' shard index of --shard INDEX/COUNT (0 when unsharded).",
    ),
    Family(
        "connector_exporter_total_shards",
        "The shard count of --shard INDEX/COUNT (1 when unsharded).",
    ),
    Family(
        "connector_exporter_webhook_requests",
        "Webhook requests by outcome; vendor and account are empty when the path names no "
        "configured webhook account.",
        "counter",
        labels=("result",),
    ),
)
# Families without the per-account labels.
PROCESS_WIDE = frozenset(
    {
        "connector_exporter_config_last_reload_successful",
        "connector_exporter_config_last_reload_success_timestamp_seconds",
        "connector_exporter_build_info",
        "connector_exporter_shard_ordinal",
        "connector_exporter_total_shards",
    }
)

ALL: tuple[Family, ...] = (*CONNECTOR, *CATALOG, *EXPORTER)
BY_NAME: dict[str, Family] = {f.name: f for f in ALL}


def sample_names(family: Family) -> tuple[str, ...]:
    """The sample names a family exposes (a counter's samples end in `_total`)."""
    return (f"{family.name}_total",) if family.type == "counter" else (family.name,)

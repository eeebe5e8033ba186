"""Bad input, by property: any JSON into the translators, any text into labels and the config.

Every vendor's page parser and translator takes any JSON value (generated, or a fixture with
parts replaced) and either returns connectors or raises a VendorError; the connectors then
render as exposition that prometheus-client's own parsers read back with the same label values.
Any YAML into the config parser ends in a Config or a ConfigError, and `check-config` exits 2
with the problems listed, never a traceback.
"""

from __future__ import annotations

import copy
import importlib
import math
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families

from exporter.config import Config, ConfigError, parse_config
from exporter.errors import VendorError
from exporter.model import CatalogEntry, Connector, Health, PollResult, Snapshot
from exporter.scheduler import build_snapshot
from exporter.simulator import SPECS
from exporter.status import AccountStatus
from exporter.vendors import REGISTRY
from exporter.vendors.base import parse_retry_after
from tests.conftest import FIXED_NOW, cli, fixture_json, make_config, render, status_of

EXAMPLES = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Any string a JSON document can carry: every code point, lone surrogates included (a `\ud800`
# escape decodes to one in Python).
ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=12)
# The field names the translators look for, so that generated objects reach their branches.
FIELD_NAMES = sorted(
    {
        *("id", "name", "status", "state", "health", "enabled", "disabled", "paused", "schema"),
        *("service", "group_id", "succeeded_at", "failed_at", "sync_frequency", "tasks"),
        *("warnings", "setup_state", "sync_state", "update_state", "rescheduled_for", "data"),
        *("items", "next_cursor", "nextCursor", "cursor", "is_active", "sync_status", "meta"),
        *("cursors", "next", "integration_slug", "end_user", "relink_needed_at", "total"),
        *("last_sync_start_time", "next_sync_start_time", "consumer_id", "connections"),
        *("service_id", "unified_api", "last_refresh_failed_at", "credentials_expire_at"),
        *("auth_type", "connector_name", "connector_config_id", "customer_id", "stage"),
        *("display_name", "authType", "connectors", "credentials", "action", "trigger"),
        *("credential", "errors", "expiresAt", "authSchemeConfig", "authSchemeConfigs"),
        *("validationMessages", "severity"),
    }
)
KEYS = st.sampled_from(FIELD_NAMES) | ANY_TEXT
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.floats(allow_nan=True, allow_infinity=True)
    | ANY_TEXT
    | st.sampled_from(["2024-12-01T10:00:00Z", "1733097600000", "²", "9" * 400, "", "0"])
    | st.sampled_from(["\ud800", "a\udfffb", 'é\n"\\', "\u2028", "1e999"])
)
JSON = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=6),
    max_leaves=30,
)


def _vendor_tests(vendor: str) -> ModuleType:
    """tests/vendors/test_<vendor>.py: each declares FUZZ_FIXTURES and read_any(data)."""
    return importlib.import_module(f"tests.vendors.test_{vendor}")


# Every registered vendor: a new one without FUZZ_FIXTURES and read_any fails here, loudly.
FIXTURES: dict[str, list[str]] = {v: _vendor_tests(v).FUZZ_FIXTURES for v in REGISTRY}
PIPELINES: dict[str, Callable[[Any], PollResult]] = {v: _vendor_tests(v).read_any for v in REGISTRY}


def check_any_json(vendor: str, data: Any) -> None:
    """Connectors or a VendorError; the connectors render and parse back whole."""
    try:
        result = PIPELINES[vendor](data)
    except VendorError:
        return
    assert all(isinstance(c, Connector) and c.connector_id for c in result.connectors)
    assert all(isinstance(e, CatalogEntry) and e.connector_id for e in result.catalog)
    assert all(isinstance(c.health, Health) for c in result.connectors)
    account = make_config([SPECS[vendor].account("http://127.0.0.1:1")]).accounts[0]
    snapshot, _ = build_snapshot(account, REGISTRY[vendor].adapter.states, result, FIXED_NOW)
    snapshot = Snapshot(vendor, "a", snapshot.states, snapshot.connectors, snapshot.catalog)
    families = {f.name: f for f in text_string_to_metric_families(render([_status(snapshot)]))}
    ids = {s.labels["connector_id"] for s in families["connector_info"].samples}
    assert ids == {c.connector_id for c in snapshot.connectors}
    health = [s for s in families["connector_health"].samples if s.value == 1]
    assert len(health) == len(snapshot.connectors)  # exactly one current health each


def _status(snapshot: Snapshot) -> AccountStatus:
    status = status_of(snapshot)
    status.polls_total = 1
    return status


@pytest.mark.parametrize("vendor", sorted(PIPELINES))
@EXAMPLES
@given(data=JSON)
def test_any_json_gives_connectors_or_a_vendor_error(vendor: str, data: Any) -> None:
    check_any_json(vendor, data)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _paths(value, (*prefix, i))
    return out


def _mutate(
    draw: st.DrawFn, doc: Any, path: tuple[Any, ...], values: st.SearchStrategy[Any]
) -> None:
    """Remove what `doc` holds at `path` (a dict key, half the time) or replace it with one of
    `values`."""
    parent = doc
    for part in path[:-1]:
        parent = parent[part]
    if isinstance(parent, dict) and draw(st.booleans()):
        del parent[path[-1]]
    else:
        parent[path[-1]] = draw(values)


@st.composite
def mutated_fixture(draw: st.DrawFn, vendor: str) -> Any:
    """A vendor fixture with a few of its values replaced by arbitrary JSON, or removed."""
    doc = copy.deepcopy(fixture_json(vendor, draw(st.sampled_from(FIXTURES[vendor]))))
    for _ in range(draw(st.integers(1, 4))):
        paths = _paths(doc)
        path = draw(st.sampled_from(paths))
        if not path:
            return draw(JSON)
        _mutate(draw, doc, path, JSON)
    return doc


@pytest.mark.parametrize("vendor", sorted(PIPELINES))
@EXAMPLES
@given(data=st.data())
def test_mutated_fixtures_give_connectors_or_a_vendor_error(vendor: str, data: Any) -> None:
    check_any_json(vendor, data.draw(mutated_fixture(vendor)))


@EXAMPLES
@given(value=ANY_TEXT | st.sampled_from(["²", "1" * 5000, "Wed, 21 Oct 2015 07:28:00 GMT"]))
def test_retry_after_is_seconds_or_none(value: str) -> None:
    seconds = parse_retry_after(value, now=FIXED_NOW)
    assert seconds is None or (isinstance(seconds, float) and seconds >= 0)


# --- exposition -----------------------------------------------------------------------
LABEL_TEXT = st.text(
    st.characters(exclude_categories=["Cs"]) | st.sampled_from(['"', "\\", "\n", "%", "{", "}"]),
    max_size=20,
)


@EXAMPLES
@given(
    account=LABEL_TEXT.filter(bool),
    connectors=st.lists(
        st.builds(
            Connector,
            connector_id=LABEL_TEXT.filter(bool),
            name=LABEL_TEXT,
            integration=LABEL_TEXT,
            group=LABEL_TEXT,
            end_user=LABEL_TEXT,
            health=st.sampled_from(Health),
            last_success=st.none() | st.floats(1, 4e9),
        ),
        max_size=5,
        unique_by=lambda c: c.connector_id,
    ),
    catalog=st.lists(
        st.builds(CatalogEntry, connector_id=LABEL_TEXT.filter(bool), name=LABEL_TEXT),
        max_size=3,
        unique_by=lambda e: e.connector_id,
    ),
)
def test_label_values_round_trip_through_both_parsers(
    account: str, connectors: list[Connector], catalog: list[CatalogEntry]
) -> None:
    snapshot = Snapshot(
        "fivetran",
        account,
        REGISTRY["fivetran"].adapter.states,
        tuple(sorted(connectors, key=lambda c: c.connector_id)),
        tuple(sorted(catalog, key=lambda e: e.connector_id)),
    )
    want = {
        c.connector_id: {
            "vendor": "fivetran",
            "account": account,
            "connector_id": c.connector_id,
            "name": c.name,
            "integration": c.integration,
            "group": c.group,
            "end_user": c.end_user,
        }
        for c in connectors
    }
    want_catalog = {e.connector_id: e.name for e in catalog}
    for openmetrics, parse in ((False, text_string_to_metric_families), (True, parse_openmetrics)):
        text = render([_status(snapshot)], openmetrics=openmetrics)
        families = {f.name: f for f in parse(text)}
        got = {s.labels["connector_id"]: s.labels for s in families["connector_info"].samples}
        assert got == want
        got_catalog = {
            s.labels["connector_id"]: s.labels["name"]
            for s in families["connector_catalog_info"].samples
        }
        assert got_catalog == want_catalog
        ages = families["connector_last_success_age_seconds"].samples
        assert {s.labels["connector_id"] for s in ages} == {
            c.connector_id for c in connectors if c.last_success is not None
        }
        success = families["connector_exporter_poll_success"].samples
        assert [s.labels["account"] for s in success] == [account]


# --- config -----------------------------------------------------------------------------
VALID_CONFIG: dict[str, Any] = {
    "poll_interval": "1m",
    "poll_timeout": "30s",
    "request_timeout": "10s",
    "max_retries": 2,
    # One account per vendor, as its simulator would be polled.
    "accounts": [spec.account("http://127.0.0.1:1") for spec in SPECS.values()],
}
CONFIG_KEYS = st.sampled_from(
    [
        *VALID_CONFIG,
        *("listen_address", "log_level", "log_format", "vendor", "name", "base_url"),
        *("include", "exclude", "api_key_file", "token_file", "endpoint", "categories"),
    ]
)
YAML_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=10)
    | st.sampled_from(["${NOPE}", "5m", "0s", "-1", ".inf", "1e400", "[", "(?P<", "http://x"])
)
YAML_VALUES = st.recursive(
    YAML_SCALARS,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(CONFIG_KEYS | st.text(max_size=5), children, max_size=5)
    ),
    max_leaves=20,
)


@st.composite
def mutated_config(draw: st.DrawFn) -> str:
    doc = copy.deepcopy(VALID_CONFIG)
    for _ in range(draw(st.integers(1, 3))):
        _mutate(draw, doc, draw(st.sampled_from(_paths(doc)[1:])), YAML_VALUES)
    return yaml.safe_dump(doc)


def _assert_valid_or_problems(text: str) -> None:
    outcome: Config | ConfigError
    try:
        outcome = parse_config(text, env={}, base_dir=Path("/nonexistent"))
    except ConfigError as err:
        outcome = err
    if isinstance(outcome, ConfigError):
        assert outcome.problems, "a ConfigError lists at least one problem"
        assert all(str(p) for p in outcome.problems)
        return
    config = outcome
    # What passes validation can be run: finite, positive durations.
    for seconds in (config.poll_interval, config.poll_timeout, config.request_timeout):
        assert math.isfinite(seconds) and seconds > 0
    for account in config.accounts:
        assert account.poll_interval is None or math.isfinite(account.poll_interval)


@EXAMPLES
@given(text=mutated_config())
def test_mutated_configs_are_valid_or_listed_problems(text: str) -> None:
    _assert_valid_or_problems(text)


@EXAMPLES
@given(
    text=st.one_of(
        YAML_VALUES.map(yaml.safe_dump),
        st.text(max_size=200),
        st.lists(st.sampled_from(["accounts:", "- ", "  vendor: x", ": :", "&a", "*a", "!!"])).map(
            "\n".join
        ),
    )
)
def test_any_yaml_is_valid_or_listed_problems(text: str) -> None:
    _assert_valid_or_problems(text)


BROKEN_CONFIGS = {
    "not-yaml.yml": "accounts: [\n",
    "not-a-mapping.yml": "- 1\n- 2\n",
    "unknown-vendor.yml": "accounts: [{vendor: nope, name: x, token: SENTINEL-cfg-1}]\n",
    "bad-types.yml": "poll_interval: forever\nmax_retries: 99\naccounts: 7\n",
    "bad-account.yml": (
        "accounts:\n  - vendor: fivetran\n    name: ''\n    api_key: SENTINEL-cfg-2\n"
        "    api_secret_file: /nonexistent/secret\n    include: ['(']\n    extra: 1\n"
    ),
    "empty.yml": "",
    "binary.yml": "accounts: !!binary aGVsbG8=\n",
}


@pytest.mark.parametrize("name", sorted(BROKEN_CONFIGS))
def test_check_config_exits_2_with_problems_never_a_traceback(name: str, tmp_path: Path) -> None:
    path = tmp_path / name
    path.write_text(BROKEN_CONFIGS[name])
    result = cli("check-config", "--config", str(path))
    assert result.returncode == 2, result.stderr
    assert "invalid configuration" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert "SENTINEL" not in result.stderr + result.stdout

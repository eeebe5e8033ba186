"""Golden exposition: the exact bytes /metrics serves for the seed-shaped fixtures."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from exporter.model import PollResult
from exporter.vendors import bindbee, fivetran
from tests.conftest import assert_golden, fixture_json, golden_status, make_config, render


def fivetran_text() -> str:
    config = make_config(
        [{"vendor": "fivetran", "name": "prod", "api_key": "k", "api_secret": "s"}]
    )
    items, _ = fivetran.parse_page(fixture_json("fivetran", "connections.json"))
    result = PollResult(connectors=tuple(fivetran.translate(items)))
    return render([golden_status(config.accounts[0], fivetran.STATES, result)])


def bindbee_text() -> str:
    config = make_config([{"vendor": "bindbee", "name": "hr", "token": "t"}])
    connectors = []
    for category in ("hris", "ats", "lms"):
        items, _ = bindbee.parse_page(fixture_json("bindbee", f"{category}.json"))
        connectors += bindbee.translate(items, category)
    result = PollResult(connectors=tuple(connectors))
    return render([golden_status(config.accounts[0], bindbee.STATES, result)])


def test_fivetran_golden() -> None:
    assert_golden("fivetran.metrics.txt", fivetran_text())


def test_bindbee_golden() -> None:
    assert_golden("bindbee.metrics.txt", bindbee_text())


def test_golden_output_parses_and_statesets_are_one_hot() -> None:
    for text in (fivetran_text(), bindbee_text()):
        families = {f.name: f for f in text_string_to_metric_families(text)}
        health: dict[str, float] = {}
        for sample in families["connector_health"].samples:
            health[sample.labels["connector_id"]] = (
                health.get(sample.labels["connector_id"], 0) + sample.value
            )
        assert health and all(v == 1 for v in health.values())
        for name in ("connector_setup_state", "connector_sync_state"):
            per: dict[str, float] = {}
            for sample in families[name].samples:
                per[sample.labels["connector_id"]] = (
                    per.get(sample.labels["connector_id"], 0) + sample.value
                )
            assert all(v == 1 for v in per.values()), name


def test_null_fields_produce_no_series_never_zero_timestamps() -> None:
    text = fivetran_text()
    sparse = [line for line in text.splitlines() if 'connector_id="ft_sparse"' in line]
    names = {line.split("{")[0] for line in sparse}
    assert names == {
        "connector_info",
        "connector_health",
        "connector_paused",
        "connector_relink_needed",
    }
    assert not any(line.endswith(" 0.0") and "timestamp" in line for line in text.splitlines())

"""Golden exposition: what the fixtures render to is well formed (the bytes themselves are
compared per vendor by tests/vendors/test_contract.py)."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter.vendors import REGISTRY
from tests.vendors.helpers import golden_text


@pytest.mark.parametrize("vendor", REGISTRY)
def test_golden_output_parses_and_statesets_are_one_hot(vendor: str) -> None:
    families = {f.name: f for f in text_string_to_metric_families(golden_text(vendor))}
    states = REGISTRY[vendor].adapter.states
    for name, known in (
        ("connector_health", ("health",)),
        ("connector_setup_state", states.setup),
        ("connector_sync_state", states.sync),
    ):
        if not known:
            assert not families[name].samples, name  # the vendor has no such field
            continue
        per: dict[str, float] = {}
        for sample in families[name].samples:
            cid = sample.labels["connector_id"]
            per[cid] = per.get(cid, 0) + sample.value
        assert per and all(v == 1 for v in per.values()), name


def test_null_fields_produce_no_series_never_zero_timestamps() -> None:
    text = golden_text("fivetran")
    sparse = [line for line in text.splitlines() if 'connector_id="ft_sparse"' in line]
    names = {line.split("{")[0] for line in sparse}
    assert names == {
        "connector_info",
        "connector_health",
        "connector_paused",
        "connector_relink_needed",
    }
    assert not any(line.endswith(" 0.0") and "timestamp" in line for line in text.splitlines())

"""grafana/dashlib.py: the health palette follows the exporter's Health enum and the status page's
severity order, and the committed dashboards show the states in that order."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import pytest

from exporter.model import SEVERITY, Health
from tests.grafana.dashboards import committed, grafana_module, panels

dashlib = grafana_module("dashlib")
DASHBOARDS = committed()
# What the dashboards must show, straight from the exporter: healthy, then most urgent first.
ORDER = [str(h) for h in (Health.HEALTHY, *SEVERITY)]


def test_every_health_state_has_a_colour_and_a_place_in_the_order() -> None:
    assert set(dashlib.HEALTH_COLORS) == set(Health)
    assert [name for name, _ in dashlib.HEALTH] == ORDER
    assert sorted(ORDER) == sorted(str(h) for h in Health)
    assert dict(dashlib.HEALTH) == {str(h): c for h, c in dashlib.HEALTH_COLORS.items()}
    assert list(dashlib.HEALTH_CODE) == ORDER
    assert list(dashlib.HEALTH_CODE.values()) == list(range(1, len(ORDER) + 1))


class _Grown(StrEnum):
    """Health with one more state, as the model might grow."""

    HEALTHY = "healthy"
    BROKEN = "broken"
    SUSPENDED = "suspended"


def test_palette_refuses_a_state_without_colour_or_place() -> None:
    colors = {_Grown.HEALTHY: "green", _Grown.BROKEN: "red"}
    order = (_Grown.HEALTHY, _Grown.BROKEN)
    with pytest.raises(ValueError, match="suspended"):
        dashlib.health_palette(order, colors, _Grown)  # no colour, no place
    with pytest.raises(ValueError, match="do not cover"):
        dashlib.health_palette(order, {**colors, _Grown.SUSPENDED: "blue"}, _Grown)  # no place
    full = {**colors, _Grown.SUSPENDED: "blue"}
    with pytest.raises(ValueError, match="do not cover"):  # a state twice
        dashlib.health_palette((*order, _Grown.BROKEN, _Grown.SUSPENDED), full, _Grown)
    assert dashlib.health_palette((*order, _Grown.SUSPENDED), full, _Grown) == (
        ("healthy", "green"),
        ("broken", "red"),
        ("suspended", "blue"),
    )


def _by_title(name: str) -> dict[str, dict[str, Any]]:
    return {p["title"]: p for p in panels(DASHBOARDS[name])}


def test_committed_dashboards_show_health_in_severity_order() -> None:
    overview = _by_title("connector-fleet-overview.json")
    for title in ("Connectors by health", "Connectors per health state"):
        overrides = overview[title]["fieldConfig"]["overrides"]
        assert [o["matcher"]["options"] for o in overrides] == ORDER, title
        colors = [o["properties"][0]["value"]["fixedColor"] for o in overrides]
        assert colors == [dashlib.HEALTH_COLORS[Health(n)] for n in ORDER], title
    matrix = overview["Health per vendor and account"]["transformations"][1]["options"]
    assert sorted(matrix["indexByName"], key=matrix["indexByName"].get)[1:] == ORDER
    table = overview["Connectors not healthy"]["fieldConfig"]["overrides"][0]
    health_text = table["properties"][0]["value"][0]["options"]
    assert {k: v["color"] for k, v in health_text.items()} == {
        str(h): c for h, c in dashlib.HEALTH_COLORS.items()
    }
    timeline = _by_title("connector-detail.json")["Health"]
    codes = timeline["fieldConfig"]["defaults"]["mappings"][0]["options"]
    assert [codes[str(i)]["text"] for i in range(1, len(ORDER) + 1)] == ORDER

"""The one definition of every metric family against what users read: the README's table."""

from __future__ import annotations

import re
from pathlib import Path

from exporter.families import ALL, BY_NAME, CONNECTOR, sample_names

README = Path(__file__).resolve().parents[1] / "README.md"


def documented() -> set[str]:
    """Metric names in the first column of the README's "## Metrics" table."""
    section = README.read_text().split("\n## Metrics\n", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            first = line.split(" | ")[0]
            names.update(re.findall(r"`([a-z_]+)(?:\{[^`]*\})?`", first))
    return names


def test_readme_metrics_table_lists_exactly_the_defined_families() -> None:
    defined = {name for family in ALL for name in sample_names(family)}
    table = documented()
    assert table, "no metrics table found in the README"
    assert sorted(defined - table) == [], "defined but not documented in the README"
    assert sorted(table - defined) == [], "documented in the README but not defined"


def test_every_family_is_defined_once_and_made_one_way() -> None:
    assert len(BY_NAME) == len(ALL)
    for family in CONNECTOR:
        assert (family.lines is None) != (not family.age_of), family.name
        assert family.name.startswith("connector_") and not family.name.endswith("_total")

"""The Grafana dashboards of connector-exporter, as code (grafana-foundation-sdk).

    python grafana/generate.py          # rewrites grafana/*.json
    python grafana/generate.py --check  # exit 1 when a committed file differs

One module per dashboard (fleet_overview, connector_detail, exporter_health) built from the
shared pieces of dashlib. Every query reads only the exporter's metrics (SPEC §5, §6), the
recording rules of alerts/connector-recording.rules.yml, the process metrics every exporter
serves, and `ALERTS` (Prometheus's series of the shipped alerting rules). Panel ids and query
refIds are numbered here, so the output is byte-stable; tests/grafana/ checks it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# grafana/ is no package (the Helm chart packages the folder through a symlink): its modules
# import one another by plain name whether this file runs as a script or is loaded by the
# tests, and leave no __pycache__ behind for the chart to pick up.
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
sys.dont_write_bytecode = True

import connector_detail  # noqa: E402
import exporter_health  # noqa: E402
import fleet_overview  # noqa: E402
from dashlib import DATASOURCE  # noqa: E402
from grafana_foundation_sdk.builders import dashboard as db  # noqa: E402
from grafana_foundation_sdk.cog.encoder import JSONEncoder  # noqa: E402
from grafana_foundation_sdk.models import dashboard as dm  # noqa: E402

DASHBOARDS: dict[str, Callable[[], db.Dashboard]] = {
    "connector-fleet-overview.json": fleet_overview.build,
    "connector-detail.json": connector_detail.build,
    "connector-exporter-health.json": exporter_health.build,
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

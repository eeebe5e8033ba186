"""The simulators' fleets: the curated ones (this folder's `<vendor>.yaml`, data) and the
generator of large ones.

A curated file lists entries of plain YAML, times relative to the fleet's `now` written
`!hours N` / `!days N`; each simulator turns an entry into a connector with its own builder.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from typing import Any, TypeVar

import yaml

from exporter.simulator.base import DAY, HOUR, At, resolve


class _FleetLoader(yaml.SafeLoader):
    """YAML's safe subset plus `!hours N` and `!days N`: `At` N hours / days from `now`."""


def _offset(unit: float) -> Callable[[yaml.SafeLoader, yaml.Node], At]:
    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> At:
        if not isinstance(node, yaml.ScalarNode):
            raise yaml.constructor.ConstructorError(
                None, None, "expected a number", node.start_mark
            )
        return At(float(loader.construct_scalar(node)) * unit)

    return construct


_FleetLoader.add_constructor("!hours", _offset(HOUR))
_FleetLoader.add_constructor("!days", _offset(DAY))


@functools.cache
def _fleet_file(vendor: str) -> list[dict[str, Any]]:
    text = resources.files(__name__).joinpath(f"{vendor}.yaml").read_text()
    # a SafeLoader with two more scalar tags: it builds plain data and At values only
    entries: list[dict[str, Any]] = yaml.load(text, _FleetLoader)  # noqa: S506
    return entries


def curated(vendor: str, now: float) -> list[dict[str, Any]]:
    """The entries of `<vendor>.yaml`, a curated fleet, their times resolved at `now`."""
    return [resolve(entry, now) for entry in _fleet_file(vendor)]


# A generated fleet's items cycle through this many kinds: kind 0 and those past the vendor's
# table of variants are healthy, kind k takes its (k-1)th variant.
VARIANT_CYCLE = 20
T = TypeVar("T")


def generate(
    size: int,
    now: float,
    variants: Sequence[Mapping[str, Any]],
    make: Callable[[int, dict[str, Any]], T],
) -> list[T]:
    """`size` items `make(i, overrides)`, a steady share of each of `variants` (the overrides
    of one problem state each, `At` timestamps relative to `now`), the rest without any."""
    out = []
    for i in range(size):
        kind = i % VARIANT_CYCLE
        overrides = resolve(variants[kind - 1], now) if 0 < kind <= len(variants) else {}
        out.append(make(i, overrides))
    return out

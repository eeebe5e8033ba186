"""The vendor registry: every module here that declares `VENDOR` is a vendor, nothing else to edit.

Adding a vendor means adding `exporter/vendors/<vendor>.py` (its account model, adapter and pure
translation) and `exporter/simulator/<vendor>.py`; config, daemon and tests find it here.
"""

from __future__ import annotations

import importlib
import pkgutil

from exporter.vendors.base import Vendor

_NOT_VENDORS = frozenset({"base", "events", "fields"})


def _discover() -> dict[str, Vendor]:
    found: dict[str, Vendor] = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name in _NOT_VENDORS:
            continue
        vendor = getattr(importlib.import_module(f"{__name__}.{info.name}"), "VENDOR", None)
        if not isinstance(vendor, Vendor):
            raise TypeError(f"{__name__}.{info.name} declares no VENDOR")
        if vendor.name != info.name:
            raise TypeError(f"{__name__}.{info.name} declares vendor {vendor.name!r}")
        found[vendor.name] = vendor
    return dict(sorted(found.items()))


REGISTRY: dict[str, Vendor] = _discover()

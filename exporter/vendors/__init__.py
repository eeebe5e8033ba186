"""Vendor adapters, one module each; adding a vendor means adding it here."""

from __future__ import annotations

from typing import Any

from exporter.vendors.apideck import ApideckAdapter
from exporter.vendors.base import Adapter
from exporter.vendors.bindbee import BindbeeAdapter
from exporter.vendors.fivetran import FivetranAdapter
from exporter.vendors.openint import OpenintAdapter
from exporter.vendors.versori import VersoriAdapter

ADAPTERS: dict[str, type[Adapter[Any]]] = {
    adapter.vendor: adapter
    for adapter in (FivetranAdapter, BindbeeAdapter, ApideckAdapter, OpenintAdapter, VersoriAdapter)
}

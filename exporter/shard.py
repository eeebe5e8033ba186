"""`--shard INDEX/COUNT`: which accounts this process polls when the fleet is split."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

_SHARD = re.compile(r"^(?:.*?-)?(\d+)/(\d+)$")


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    def owns(self, vendor: str, account: str) -> bool:
        return shard_of(vendor, account, self.count) == self.index


def shard_of(vendor: str, account: str, count: int) -> int:
    """The shard an account belongs to: a stable hash, the same in every process and release.

    Python's hash() is salted per process, so a cryptographic digest is used instead.
    """
    digest = hashlib.sha256(f"{vendor}\x00{account}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % count


def parse_shard(value: str) -> Shard:
    """`INDEX/COUNT`; INDEX may be a pod name ending in its ordinal, e.g. `exporter-2/3`.

    Accepting the pod name lets a StatefulSet pass `$(POD_NAME)/N` without a shell wrapper.
    """
    match = _SHARD.match(value.strip())
    if not match:
        raise ValueError(f"expected INDEX/COUNT (e.g. 0/3 or my-pod-0/3), got {value!r}")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard index must be in 0..COUNT-1 and COUNT >= 1, got {value!r}")
    return Shard(index, count)

"""`--shard INDEX/COUNT`: parsing, pod-name ordinals, stable ownership."""

from __future__ import annotations

import pytest

from exporter.shard import Shard, parse_shard, shard_of


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0/1", Shard(0, 1)),
        ("2/3", Shard(2, 3)),
        ("exporter-2/3", Shard(2, 3)),
        (" 1/2 ", Shard(1, 2)),
    ],
)
def test_parse(text: str, expected: Shard) -> None:
    assert parse_shard(text) == expected


@pytest.mark.parametrize("text", ["", "1", "3/3", "0/0", "a/b", "exporter/3", "1/2/3"])
def test_parse_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=r"INDEX|COUNT"):
        parse_shard(text)


def test_every_account_has_exactly_one_owner() -> None:
    shards = [Shard(i, 5) for i in range(5)]
    for n in range(200):
        owners = [s.index for s in shards if s.owns("vendor", f"account-{n}")]
        assert owners == [shard_of("vendor", f"account-{n}", 5)]


def test_one_shard_owns_everything() -> None:
    assert all(Shard(0, 1).owns("v", f"a{i}") for i in range(50))

"""The spliced gzip stream is what zlib and gzip readers expect, byte for byte in content."""

from __future__ import annotations

import gzip
import random
import zlib

import httpx
import pytest

from exporter.deflate import (
    Piece,
    Run,
    Splice,
    crc32_combine,
    gzip_length,
    gzip_stream,
)


@pytest.mark.parametrize("sizes", [[0], [1], [5, 0, 7], [1000, 1, 65536, 3], [200_000, 17]])
def test_spliced_stream_round_trips(sizes: list[int]) -> None:
    rng = random.Random(sum(sizes))
    parts = [bytes(rng.choice(b'abc{}="\n ') for _ in range(n)) for n in sizes]
    pieces = [Piece(p) for p in parts]
    body = b"".join(gzip_stream(pieces))
    assert len(body) == gzip_length(pieces)
    assert gzip.decompress(body) == b"".join(parts)
    # one member: a single-member reader (as in httpx) sees everything
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    assert d.decompress(body) == b"".join(parts) and d.eof and d.unused_data == b""
    decoder = httpx._decoders.GZipDecoder()
    assert decoder.decode(body) + decoder.flush() == b"".join(parts)


def test_crc_combine_matches_zlib() -> None:
    rng = random.Random(7)
    for _ in range(50):
        a = rng.randbytes(rng.randrange(0, 3000))
        b = rng.randbytes(rng.randrange(0, 3000))
        combined = crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b))
        assert combined == zlib.crc32(a + b)


def test_runs_splice_like_their_pieces() -> None:
    rng = random.Random(3)
    parts = [rng.randbytes(n) for n in (0, 10, 5000, 0, 77)]
    runs: list[Splice] = [
        Run(Piece.frozen(p, keep_plain=i % 2 == 0) for i, p in enumerate(parts[:3])),
        Piece(b""),
        Run(Piece(p) for p in parts[3:]),
    ]
    body = b"".join(gzip_stream(runs))
    assert len(body) == gzip_length(runs)
    assert gzip.decompress(body) == b"".join(parts)
    assert b"".join(x for r in runs for x in r.plain_parts()) == b"".join(parts)


def test_dropped_plain_text_inflates_in_bounded_parts() -> None:
    rng = random.Random(11)
    text = bytes(rng.choice(b'abc{}="\n ') for _ in range(3_000_000))
    piece = Piece.frozen(text, keep_plain=False)
    parts = list(piece.plain_parts())
    assert b"".join(parts) == text
    assert len(parts) >= 3 and max(len(p) for p in parts) <= 1024 * 1024
    assert b"".join(Run([piece, Piece(b"tail")]).plain_parts()) == text + b"tail"

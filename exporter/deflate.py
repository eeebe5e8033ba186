"""One gzip stream from pieces compressed ahead of time.

/metrics bodies are mostly static between polls, and compressing tens of megabytes on every
scrape would cost more than everything else together. Each piece is compressed once as raw
deflate ending in a full flush (byte-aligned, no back-references into the next piece), so
pieces concatenate into a single valid deflate stream; the gzip CRC-32 of the whole is combined
from the pieces' CRCs with zlib's own algorithm (crc32_combine: multiplication by x^(8n) modulo
the CRC polynomial). Multi-member gzip would be simpler, but several HTTP clients (httpx, curl)
read only the first member.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property

LEVEL = 1  # /metrics text compresses ~30x even at the fastest level
_POLY = 0xEDB88320  # CRC-32 (reflected), as zlib
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # deflate, no name, no mtime, OS unknown
FINAL_BLOCK = b"\x03\x00"  # an empty fixed-Huffman block with BFINAL set


def _multmodp(a: int, b: int) -> int:
    """a(x) * b(x) modulo the CRC polynomial, in zlib's reflected bit order."""
    m = 1 << 31
    p = 0
    while True:
        if a & m:
            p ^= b
            if not a & (m - 1):
                break
        m >>= 1
        b = (b >> 1) ^ _POLY if b & 1 else b >> 1
    return p


def _x2n_table() -> list[int]:
    table = []
    p = 1 << 30  # x^1
    for _ in range(32):
        table.append(p)
        p = _multmodp(p, p)
    return table


_X2N = _x2n_table()


def shift_for(length: int) -> int:
    """x^(8 * length) modulo the polynomial: what crc32_combine multiplies the first CRC by."""
    p = 1 << 31  # x^0
    k = 3
    while length:
        if length & 1:
            p = _multmodp(_X2N[k & 31], p)
        length >>= 1
        k += 1
    return p


def crc32_combine(crc1: int, crc2: int, shift2: int) -> int:
    """CRC-32 of A+B from crc(A), crc(B) and shift_for(len(B))."""
    return _multmodp(shift2, crc1) ^ crc2


def deflate_piece(data: bytes) -> bytes:
    compressor = zlib.compressobj(LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush(zlib.Z_FULL_FLUSH)


@dataclass(frozen=True, eq=False)
class Piece:
    """A run of exposition bytes, with what a gzip stream needs to splice it in."""

    plain: bytes

    @cached_property
    def deflated(self) -> bytes:
        return deflate_piece(self.plain)

    @cached_property
    def crc(self) -> int:
        return zlib.crc32(self.plain)

    @cached_property
    def shift(self) -> int:
        return shift_for(len(self.plain))

    def prepare(self) -> Piece:
        """Compute everything now (at poll time, off the scrape path) and return self."""
        _ = self.deflated, self.crc, self.shift
        return self


def gzip_stream(pieces: Iterable[Piece]) -> Iterator[bytes]:
    """The pieces as one gzip stream, yielded in parts (header, each piece, trailer)."""
    yield GZIP_HEADER
    crc = 0
    size = 0
    for piece in pieces:
        if not piece.plain:
            continue
        yield piece.deflated
        crc = crc32_combine(crc, piece.crc, piece.shift)
        size += len(piece.plain)
    yield FINAL_BLOCK
    yield struct.pack("<II", crc & 0xFFFFFFFF, size & 0xFFFFFFFF)

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

LEVEL = 1  # /metrics text compresses ~30x even at the fastest level
_POLY = 0xEDB88320  # CRC-32 (reflected), as zlib
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # deflate, no name, no mtime, OS unknown
FINAL_BLOCK = b"\x03\x00"  # an empty fixed-Huffman block with BFINAL set
GZIP_OVERHEAD = len(GZIP_HEADER) + len(FINAL_BLOCK) + 8


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


class Piece:
    """A run of exposition bytes, with what a gzip stream needs to splice it in.

    Computed lazily (for what a scrape renders) or at once with `Piece.frozen` (at poll time).
    A frozen piece may drop its plain text to save memory; `plain` then inflates it again.
    """

    __slots__ = ("_crc", "_deflated", "_plain", "_shift", "size")

    def __init__(self, plain: bytes) -> None:
        self._plain: bytes | None = plain
        self._deflated: bytes | None = None
        self._crc: int | None = None
        self._shift: int | None = None
        self.size = len(plain)

    @classmethod
    def frozen(cls, plain: bytes, *, keep_plain: bool = True) -> Piece:
        piece = cls(plain)
        _ = piece.deflated, piece.crc, piece.shift
        if not keep_plain:
            piece._plain = None
        return piece

    @property
    def inflates(self) -> bool:
        """Whether reading `plain` costs a decompression (its text was dropped)."""
        return self._plain is None

    @property
    def plain(self) -> bytes:
        if self._plain is not None:
            return self._plain
        assert self._deflated is not None
        return zlib.decompressobj(-zlib.MAX_WBITS).decompress(self._deflated)

    @property
    def deflated(self) -> bytes:
        if self._deflated is None:
            self._deflated = deflate_piece(self.plain)
        return self._deflated

    @property
    def crc(self) -> int:
        if self._crc is None:
            self._crc = zlib.crc32(self.plain)
        return self._crc

    @property
    def shift(self) -> int:
        if self._shift is None:
            self._shift = shift_for(self.size)
        return self._shift

    def plain_parts(self) -> list[bytes]:
        return [self.plain]

    def deflated_parts(self) -> list[bytes]:
        return [self.deflated]


class Run:
    """Consecutive pieces spliced once: one CRC combine per scrape instead of one per piece."""

    __slots__ = ("_deflated", "crc", "pieces", "shift", "size")

    def __init__(self, pieces: Iterable[Piece]) -> None:
        self.pieces = [p for p in pieces if p.size]
        self.size = sum(p.size for p in self.pieces)
        crc = 0
        for piece in self.pieces:
            crc = crc32_combine(crc, piece.crc, piece.shift)
        self.crc = crc
        self.shift = shift_for(self.size)
        self._deflated = [p.deflated for p in self.pieces]

    @property
    def inflates(self) -> bool:
        return any(p.inflates for p in self.pieces)

    def plain_parts(self) -> Iterator[bytes]:
        return (p.plain for p in self.pieces)  # lazily: dropped plain text inflates per piece

    def deflated_parts(self) -> list[bytes]:
        return self._deflated


Splice = Piece | Run


def gzip_length(items: Iterable[Splice]) -> int:
    """The length of gzip_stream(items), without producing it."""
    return GZIP_OVERHEAD + sum(len(d) for i in items if i.size for d in i.deflated_parts())


def gzip_stream(items: Iterable[Splice]) -> Iterator[bytes]:
    """The pieces as one gzip stream, yielded in parts (header, each piece, trailer)."""
    yield GZIP_HEADER
    crc = 0
    size = 0
    for item in items:
        if not item.size:
            continue
        yield from item.deflated_parts()
        crc = crc32_combine(crc, item.crc, item.shift)
        size += item.size
    yield FINAL_BLOCK
    yield struct.pack("<II", crc & 0xFFFFFFFF, size & 0xFFFFFFFF)

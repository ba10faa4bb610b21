"""Parallel gzip encoding: one standard gzip member compressed by a pool of threads.

The design follows pigz: the input is cut into fixed-size blocks, each block is deflated on its
own thread primed with the previous block's last 32 KiB as dictionary and ended with a sync
flush (so blocks concatenate into one valid deflate stream), and the per-block CRC-32s are
merged with ``crc32_combine``. The result is a single ordinary gzip member that every reader
(GNU gzip, Python's ``gzip``/``tarfile``, zlib-based tools) decodes.

zlib-ng is used when importable (it is several times faster than stdlib zlib at equal levels and
releases the GIL while compressing); stdlib zlib is the fallback, with a pure-Python
``crc32_combine`` because the stdlib does not expose one.
"""

from __future__ import annotations

import struct
import zlib
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, BinaryIO

from homeport.errors import InternalFailure

# Matches pigz's window priming; deflate cannot reference further back anyway.
WINDOW_SIZE = 32 * 1024
DEFAULT_BLOCK_SIZE = 1024 * 1024
# An empty final stored/static block: terminates the deflate stream after the sync-flushed blocks.
_FINAL_EMPTY_BLOCK = b"\x03\x00"

_SAMPLE_COUNT = 8
_SAMPLE_SIZE = 4096


@dataclass(frozen=True)
class Codec:
    """The deflate/CRC primitives one encoder uses; lets tests force the stdlib fallback."""

    name: str
    compressobj: Callable[..., Any]
    compress: Callable[..., bytes]
    crc32: Callable[..., int]
    crc32_combine: Callable[[int, int, int], int]


def _gf2_times(mat: list[int], vec: int) -> int:
    total = 0
    i = 0
    while vec:
        if vec & 1:
            total ^= mat[i]
        vec >>= 1
        i += 1
    return total


def _gf2_square(mat: list[int]) -> list[int]:
    return [_gf2_times(mat, mat[n]) for n in range(32)]


def crc32_combine_py(crc1: int, crc2: int, len2: int) -> int:
    """zlib's ``crc32_combine`` (GF(2) matrix method) for the stdlib fallback."""
    if len2 <= 0:
        return crc1
    odd = [0xEDB88320] + [1 << n for n in range(31)]
    even = _gf2_square(odd)
    odd = _gf2_square(even)
    while True:
        even = _gf2_square(odd)
        if len2 & 1:
            crc1 = _gf2_times(even, crc1)
        len2 >>= 1
        if not len2:
            break
        odd = _gf2_square(even)
        if len2 & 1:
            crc1 = _gf2_times(odd, crc1)
        len2 >>= 1
        if not len2:
            break
    return crc1 ^ crc2


STDLIB_CODEC = Codec("zlib", zlib.compressobj, zlib.compress, zlib.crc32, crc32_combine_py)


def _load_default_codec() -> Codec:
    try:
        from zlib_ng import zlib_ng
    except ImportError:  # pragma: no cover - zlib-ng is a declared dependency
        return STDLIB_CODEC
    return Codec("zlib-ng", zlib_ng.compressobj, zlib_ng.compress, zlib_ng.crc32, zlib_ng.crc32_combine)


DEFAULT_CODEC = _load_default_codec()


def _looks_incompressible(codec: Codec, data: memoryview, level: int) -> bool:
    """True when spread-out samples of ``data`` do not shrink at all at ``level``.

    Deflate at any level ends up emitting stored blocks for random/already-compressed data,
    but only after a full (slow) match search; skipping that search is where most of the
    speed on mixed model folders comes from. A block is stored only if *every* sample fails to
    shrink, so a block that is partly text is still compressed.
    """
    n = len(data)
    if n < 4 * _SAMPLE_COUNT * _SAMPLE_SIZE:
        return False
    stride = (n - _SAMPLE_SIZE) // (_SAMPLE_COUNT - 1)
    sample = b"".join(data[i * stride : i * stride + _SAMPLE_SIZE] for i in range(_SAMPLE_COUNT))
    return len(codec.compress(sample, level, -15)) >= len(sample)


def compress_block(codec: Codec, level: int, data: memoryview, zdict: bytes | None) -> tuple[bytes, int, int]:
    """Deflate one block into a sync-flushed raw deflate fragment; return it with CRC and length."""
    crc = codec.crc32(data)
    if level == 0 or _looks_incompressible(codec, data, level):
        comp = codec.compressobj(0, zlib.DEFLATED, -15)
    elif zdict:
        comp = codec.compressobj(level, zlib.DEFLATED, -15, 8, zlib.Z_DEFAULT_STRATEGY, zdict)
    else:
        comp = codec.compressobj(level, zlib.DEFLATED, -15)
    out = comp.compress(data) + comp.flush(zlib.Z_SYNC_FLUSH)
    return out, crc, len(data)


def _gzip_header(level: int) -> bytes:
    # mtime 0 keeps output reproducible; XFL per RFC 1952 (2 = max compression, 4 = fastest).
    xfl = 2 if level == 9 else 4 if level == 1 else 0
    return struct.pack("<BBBBIBB", 0x1F, 0x8B, 8, 0, 0, xfl, 255)


class ParallelGzipWriter:
    """Streams blocks handed to :meth:`submit` into ``out`` as one gzip member.

    Blocks are compressed on ``threads`` worker threads while the caller keeps producing; the
    caller's thread writes finished blocks in order. At most ``2 * threads`` blocks are in
    flight, which bounds memory to a few block sizes.
    """

    def __init__(self, out: BinaryIO, level: int, threads: int, codec: Codec = DEFAULT_CODEC) -> None:
        if not 0 <= level <= 9:
            raise ValueError(f"compression level must be 0..9, got {level}")
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self._out = out
        self._level = level
        self._codec = codec
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="pgzip")
        self._pending: deque[Future[tuple[bytes, int, int]]] = deque()
        self._max_pending = 2 * threads
        self._prev_tail: bytes | None = None
        self._crc = 0
        self._size = 0
        self._closed = False
        self.bytes_written = 0
        self._write(_gzip_header(level))

    def _write(self, data: bytes) -> None:
        self._out.write(data)
        self.bytes_written += len(data)

    def _drain_one(self) -> None:
        out, crc, length = self._pending.popleft().result()
        self._crc = self._codec.crc32_combine(self._crc, crc, length)
        self._size += length
        self._write(out)

    def submit(self, block: bytes | bytearray) -> None:
        """Queue ``block`` for compression; the writer takes ownership (do not mutate it after)."""
        if self._closed:
            raise InternalFailure("ParallelGzipWriter used after close")
        if not block:
            return
        view = memoryview(block)
        while len(self._pending) >= self._max_pending:
            self._drain_one()
        fut = self._pool.submit(compress_block, self._codec, self._level, view, self._prev_tail)
        self._pending.append(fut)
        self._prev_tail = bytes(view[-WINDOW_SIZE:]) if self._level else None

    def close(self) -> int:
        """Finish the stream (final block + CRC/ISIZE trailer); return total compressed bytes."""
        if self._closed:
            return self.bytes_written
        try:
            while self._pending:
                self._drain_one()
            self._write(_FINAL_EMPTY_BLOCK)
            self._write(struct.pack("<II", self._crc & 0xFFFFFFFF, self._size & 0xFFFFFFFF))
        finally:
            self.abort()
        return self.bytes_written

    def abort(self) -> None:
        """Stop without finishing the stream (the output is then not a valid gzip file)."""
        self._closed = True
        for fut in self._pending:
            fut.cancel()
        self._pending.clear()
        self._pool.shutdown(wait=True)

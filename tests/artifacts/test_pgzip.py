"""The parallel gzip encoder: one valid gzip member, with either codec, at any block layout."""

from __future__ import annotations

import gzip
import io
import os
import random
import zlib

import pytest

from homeport.artifacts import pgzip
from homeport.errors import InternalFailure


def _text(n: int) -> bytes:
    rng = random.Random(7)
    words = [b"loss", b"epoch", b"0.125", b"label", b"cat", b"dog", b"42"]
    out = bytearray()
    while len(out) < n:
        out += b",".join(rng.choice(words) for _ in range(6)) + b"\n"
    return bytes(out[:n])


def _encode(blocks: list[bytes], level: int, threads: int, codec: pgzip.Codec) -> bytes:
    buf = io.BytesIO()
    writer = pgzip.ParallelGzipWriter(buf, level, threads, codec)
    for block in blocks:
        writer.submit(bytearray(block))
    total = writer.close()
    assert total == len(buf.getvalue())
    return buf.getvalue()


def test_crc32_combine_fallback_matches_zlib() -> None:
    rng = random.Random(3)
    for len_a, len_b in [(0, 0), (1, 0), (0, 1), (5, 7), (1000, 1), (65536, 12345), (3, 1 << 20)]:
        a, b = rng.randbytes(len_a), rng.randbytes(len_b)
        combined = pgzip.crc32_combine_py(zlib.crc32(a), zlib.crc32(b), len(b))
        assert combined == zlib.crc32(a + b)


@pytest.mark.parametrize("codec", [pgzip.DEFAULT_CODEC, pgzip.STDLIB_CODEC], ids=lambda c: c.name)
@pytest.mark.parametrize("level", [0, 1, 6, 9])
def test_blocks_form_one_valid_gzip_member(codec: pgzip.Codec, level: int) -> None:
    payload = _text(700_000) + os.urandom(400_000) + _text(300_001)
    size = 256 * 1024
    blocks = [payload[i : i + size] for i in range(0, len(payload), size)]

    data = _encode(blocks, level, threads=3, codec=codec)

    assert gzip.decompress(data) == payload
    # Exactly one member: a raw inflate of the body consumes everything up to the 8-byte trailer.
    d = zlib.decompressobj(-15)
    assert d.decompress(data[10:]) == payload
    assert d.eof and len(d.unused_data) == 8


def test_empty_stream_is_valid_gzip() -> None:
    assert gzip.decompress(_encode([], 6, 2, pgzip.DEFAULT_CODEC)) == b""


def test_incompressible_detection() -> None:
    codec = pgzip.DEFAULT_CODEC
    random_block = memoryview(os.urandom(1024 * 1024))
    text_block = memoryview(_text(1024 * 1024))
    mixed = memoryview(os.urandom(900_000) + _text(148_576))
    assert pgzip._looks_incompressible(codec, random_block, 6)
    assert pgzip._looks_incompressible(codec, random_block, 1)
    assert not pgzip._looks_incompressible(codec, text_block, 6)
    # A text tail in one sample is enough to compress the block normally.
    assert not pgzip._looks_incompressible(codec, mixed, 6)


def test_writer_rejects_bad_arguments_and_use_after_close() -> None:
    with pytest.raises(ValueError):
        pgzip.ParallelGzipWriter(io.BytesIO(), 10, 1)
    with pytest.raises(ValueError):
        pgzip.ParallelGzipWriter(io.BytesIO(), 6, 0)
    writer = pgzip.ParallelGzipWriter(io.BytesIO(), 6, 1)
    writer.close()
    with pytest.raises(InternalFailure):
        writer.submit(b"late")

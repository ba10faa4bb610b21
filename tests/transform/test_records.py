"""Record splitting, mini-batching and output assembly for batch transform (homeport.transform.records).

Fixtures are built with the module's own encoders, cross-checked against small writers written
here from the format specifications (dmlc-core RecordIO, TensorFlow TFRecord) and against the
published CRC-32C test vectors, so an encoder bug cannot hide a matching decoder bug.
"""

from __future__ import annotations

import gzip
import io
import struct
import tracemalloc
import zlib
from collections.abc import Callable

import pytest

from homeport.transform import recordio, records
from homeport.transform.records import (
    Batch,
    ByteSource,
    InputFormatError,
    RecordError,
    RecordTooLarge,
    assemble,
    assemble_parts,
    batches,
    joiner_for,
    open_input,
    split_records,
    stream_chunks,
    streams_whole_object,
)

MIB = 1024 * 1024
MAGIC = struct.pack("<I", 0xCED7230A)


# ---------------------------------------------------------------------------------------------
# Helpers


class ReadOnly:
    """A source with nothing but read(), returning at most ``step`` bytes a call (short reads)."""

    def __init__(self, data: bytes, step: int = 7) -> None:
        self._data = io.BytesIO(data)
        self._step = step

    def read(self, size: int = -1, /) -> bytes:
        if size < 0:
            return self._data.read()
        return self._data.read(min(size, self._step))


class GeneratedLines:
    """``total`` bytes of CSV-like lines of varying length, made on the fly (never held whole)."""

    def __init__(self, total: int) -> None:
        lines = []
        size = 0
        n = 0
        while size < MIB:
            line = b"%d," % n + b"x" * (20 + (n * 37) % 300) + b"\n"
            lines.append(line)
            size += len(line)
            n += 1
        self.block = b"".join(lines)
        self.lines_per_block = n
        assert total % len(self.block) == 0 or total < len(self.block)
        self.total = total
        self.served = 0

    def read(self, size: int = -1, /) -> bytes:
        remaining = self.total - self.served
        if size < 0 or size > remaining:
            size = remaining
        at = self.served % len(self.block)
        data = self.block[at : at + size]
        self.served += len(data)
        return data


def gen_total(blocks: int) -> tuple[int, int]:
    """(bytes, lines) of ``blocks`` repetitions of GeneratedLines' block."""
    probe = GeneratedLines(0)
    return blocks * len(probe.block), blocks * probe.lines_per_block


class GzipOnTheFly:
    """The gzip compression of another source, produced as it is read."""

    def __init__(self, source: GeneratedLines) -> None:
        self._source = source
        self._compressor = zlib.compressobj(1, zlib.DEFLATED, 31)  # 31: gzip container
        self._out = bytearray()
        self._done = False

    def read(self, size: int = -1, /) -> bytes:
        while not self._done and (size < 0 or len(self._out) < size):
            data = self._source.read(256 * 1024)
            if data:
                self._out += self._compressor.compress(data)
            else:
                self._out += self._compressor.flush()
                self._done = True
        if size < 0:
            size = len(self._out)
        chunk = bytes(self._out[:size])
        del self._out[:size]
        return chunk


def lines_of(
    data: bytes, split_type: str | None = "Line", *, chunk_size: int = MIB, max_record_bytes: int = 0
) -> list[bytes]:
    source = io.BytesIO(data)
    return list(split_records(source, split_type, chunk_size=chunk_size, max_record_bytes=max_record_bytes))


# Independent writers, from the format descriptions rather than from homeport's encoders.


def simple_recordio(payload: bytes) -> bytes:
    """One single-part RecordIO record (payload must not hold the magic at an aligned offset)."""
    pad = (4 - len(payload) % 4) % 4
    return struct.pack("<II", 0xCED7230A, len(payload)) + payload + b"\0" * pad


def simple_tfrecord(data: bytes) -> bytes:
    def masked(b: bytes) -> int:
        crc = recordio.crc32c_py(b)
        return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) % (1 << 32)

    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", masked(length)) + data + struct.pack("<I", masked(data))


# ---------------------------------------------------------------------------------------------
# Line


def test_line_records_have_no_newline_and_a_final_unterminated_line_counts() -> None:
    assert lines_of(b"a,1\nb,2\nc,3\n") == [b"a,1", b"b,2", b"c,3"]
    assert lines_of(b"a,1\nb,2\nc,3") == [b"a,1", b"b,2", b"c,3"]


def test_line_keeps_blank_lines_and_carriage_returns() -> None:
    assert lines_of(b"a\n\nb\r\n\n") == [b"a", b"", b"b\r", b""]
    assert lines_of(b"\n") == [b""]


def test_line_records_spanning_read_chunks() -> None:
    data = b"".join(b"record-%d-" % n + b"y" * (n % 11) + b"\n" for n in range(200))
    expected = data.split(b"\n")[:-1]
    for chunk_size in (1, 2, 3, 5, 64, 4096):
        assert lines_of(data, chunk_size=chunk_size) == expected
    # Short reads from the source too.
    got = list(split_records(ReadOnly(data, step=3), "Line"))
    assert got == expected


def test_empty_input_has_no_records_for_every_split_type() -> None:
    for split_type in ("None", "Line", "RecordIO", "TFRecord"):
        assert lines_of(b"", split_type) == []
        assert list(batches(iter([]), "MultiRecord", MIB, joiner_for(split_type))) == []


def test_line_gzip_input_single_and_multi_member() -> None:
    data = b"".join(b"%d,%d\n" % (n, n * n) for n in range(5000))
    compressed = gzip.compress(data[:20000]) + gzip.compress(data[20000:])
    source = open_input(ReadOnly(compressed, step=1000), "Gzip", uri="s3://in/x.csv.gz")
    got = list(split_records(source, "Line", chunk_size=777))
    assert got == data.split(b"\n")[:-1]


def test_gzip_source_with_readinto_is_read_directly() -> None:
    data = b"one\ntwo\n"
    source = open_input(io.BytesIO(gzip.compress(data)), "Gzip")
    assert list(split_records(source, "Line")) == [b"one", b"two"]


def test_corrupt_and_truncated_gzip_raise_input_format_error() -> None:
    data = b"".join(b"line %d\n" % n for n in range(20000))
    good = gzip.compress(data)
    truncated = good[: len(good) // 2]
    corrupt = good[:30] + bytes(b ^ 0x5A for b in good[30:60]) + good[60:]
    for bad in (truncated, corrupt, b"this is not gzip at all, just text\n"):
        source = open_input(ReadOnly(bad, step=4096), "Gzip", uri="s3://in/bad.gz")
        with pytest.raises(InputFormatError, match=r"s3://in/bad\.gz is not a valid gzip stream") as info:
            list(split_records(source, "Line"))
        assert isinstance(info.value, RecordError)
        assert info.value.offset >= 0


def test_open_input_passthrough_and_unknown_compression() -> None:
    raw = io.BytesIO(b"x")
    assert open_input(raw, "None") is raw
    assert open_input(raw, None) is raw
    with pytest.raises(ValueError, match="CompressionType"):
        open_input(raw, "Zip")


def test_unknown_split_type() -> None:
    with pytest.raises(ValueError, match="SplitType"):
        split_records(io.BytesIO(b""), "Csv")


# ---------------------------------------------------------------------------------------------
# None


def test_split_none_is_the_whole_object() -> None:
    data = bytes(range(256)) * 1000
    assert lines_of(data, "None", chunk_size=1000) == [data]
    assert lines_of(data, None) == [data]


def test_split_none_over_the_limit_stops_reading_early() -> None:
    source = GeneratedLines(gen_total(50)[0])
    with pytest.raises(RecordTooLarge, match=r"^Record 1 \(bytes > \d+\) of input s3://b/big exceeds"):
        list(split_records(source, "None", max_record_bytes=2 * MIB, uri="s3://b/big"))
    assert source.served <= 3 * MIB  # not the 50 MiB object


def test_stream_chunks_streams_the_object() -> None:
    data = bytes(range(256)) * 999
    chunks = list(stream_chunks(io.BytesIO(data), 1000))
    assert b"".join(chunks) == data
    assert max(map(len, chunks)) == 1000
    assert list(stream_chunks(io.BytesIO(b""))) == []
    with pytest.raises(ValueError):
        list(stream_chunks(io.BytesIO(data), 0))


def test_streams_whole_object_rules() -> None:
    assert streams_whole_object("None", "SingleRecord", 0)
    assert streams_whole_object(None, "MultiRecord", 0)
    assert streams_whole_object("Line", "MultiRecord", 0)
    assert streams_whole_object("RecordIO", "MULTI_RECORD", 0)
    assert not streams_whole_object("Line", "SingleRecord", 0)
    assert not streams_whole_object("None", "MultiRecord", 6 * MIB)
    assert not streams_whole_object("Line", "MultiRecord", 6 * MIB)


# ---------------------------------------------------------------------------------------------
# RecordIO


def test_recordio_encoder_matches_an_independent_writer() -> None:
    for payload in (b"", b"a", b"ab", b"abc", b"abcd", b"abcde", bytes(range(256)) * 3, b"x" + MAGIC):
        assert recordio.encode_recordio(payload) == simple_recordio(payload)


def test_recordio_encoder_cuts_at_aligned_magic_like_dmlc() -> None:
    payload = b"abcd" + MAGIC + b"efgh12"

    def header(cflag: int, length: int) -> bytes:
        return struct.pack("<II", 0xCED7230A, (cflag << 29) | length)

    expected = header(1, 4) + b"abcd" + header(3, 6) + b"efgh12" + b"\0\0"
    assert recordio.encode_recordio(payload) == expected
    # Magic at the very start, twice in a row, and at the end: empty parts, flags 1, 2, 2, 3.
    payload = MAGIC + b"wxyz" + MAGIC + MAGIC + b"tail" + MAGIC
    framed = recordio.encode_recordio(payload)
    flags = []
    pos = 0
    while pos < len(framed):
        _, cflag, length = recordio.parse_recordio_header(framed[pos : pos + 8])
        flags.append(cflag)
        pos += 8 + recordio.padded(length)
    assert flags == [1, 2, 2, 2, 3]
    assert recordio.recordio_payload(framed) == payload


def test_split_recordio_yields_full_framed_records_including_multi_part() -> None:
    payloads = [b"first", MAGIC + b"multi" + b"\0\0\0" + MAGIC + b"part", b"", b"z" * 1001, b"abcd" + MAGIC]
    framed = [recordio.encode_recordio(p) for p in payloads]
    data = b"".join(framed)
    for chunk_reader in (io.BytesIO(data), ReadOnly(data, step=5)):
        got = list(split_records(chunk_reader, "RecordIO"))
        assert got == framed
    assert [recordio.recordio_payload(r) for r in lines_of(data, "RecordIO")] == payloads


def test_recordio_gzip() -> None:
    payloads = [b"%d" % n * (n % 50) for n in range(300)]
    data = b"".join(map(recordio.encode_recordio, payloads))
    source = open_input(io.BytesIO(gzip.compress(data)), "Gzip")
    got = list(split_records(source, "RecordIO"))
    assert [recordio.recordio_payload(r) for r in got] == payloads


def test_recordio_corruption_names_the_byte_offset() -> None:
    good = recordio.encode_recordio(b"hello") + recordio.encode_recordio(b"world!")
    second = len(recordio.encode_recordio(b"hello"))  # 16
    bad_magic = good[:second] + b"\x00\x00\x00\x00" + good[second + 4 :]
    with pytest.raises(InputFormatError, match=rf"bad magic number 0x00000000 .* at byte offset {second}"):
        lines_of(bad_magic, "RecordIO")
    with pytest.raises(
        InputFormatError, match=r"truncated: record 2 at byte offset 16 declares 6 bytes"
    ) as info:
        lines_of(good[:-3], "RecordIO")
    assert info.value.offset == 16
    with pytest.raises(InputFormatError, match=r"truncated: record 2 has a 3-byte header at byte offset 16"):
        lines_of(good[: second + 3], "RecordIO")


def test_recordio_bad_continuation_sequences() -> None:
    def part(cflag: int, data: bytes) -> bytes:
        return (
            recordio.recordio_header(cflag, len(data))
            + data
            + b"\0" * (recordio.padded(len(data)) - len(data))
        )

    # A middle part with no start.
    with pytest.raises(InputFormatError, match=r"continuation flag 2 at byte offset 0"):
        lines_of(part(2, b"abcd"), "RecordIO")
    # A start followed by a full record.
    with pytest.raises(InputFormatError, match=r"continuation flag 0 at byte offset 12"):
        lines_of(part(1, b"abcd") + part(0, b"efgh"), "RecordIO")
    # A multi-part record the input ends inside.
    with pytest.raises(InputFormatError, match=r"multi-part record 1 starting at byte offset 0 has no final"):
        lines_of(part(1, b"abcd") + part(2, b"efgh"), "RecordIO")


# ---------------------------------------------------------------------------------------------
# TFRecord and CRC-32C


@pytest.mark.parametrize("crc", [recordio.crc32c, recordio.crc32c_py])
def test_crc32c_known_vectors(crc: Callable[[bytes], int]) -> None:
    # The common check value, then RFC 3720 appendix B.4.
    func = crc
    assert func(b"123456789") == 0xE3069283
    assert func(b"") == 0
    assert func(bytes(32)) == 0x8A9136AA
    assert func(b"\xff" * 32) == 0x62A8AB43
    assert func(bytes(range(32))) == 0x46DD794E
    assert func(bytes(range(31, -1, -1))) == 0x113FDB5C


def test_crc32c_continues_across_pieces() -> None:
    data = bytes(range(256)) * 5
    assert recordio.crc32c_py(data[700:], recordio.crc32c_py(data[:700])) == recordio.crc32c_py(data)
    assert recordio.CRC32C_BACKEND in ("google-crc32c", "crc32c", "python")


def test_tfrecord_encoder_matches_an_independent_writer() -> None:
    for data in (b"", b"x", bytes(range(256)) * 4):
        assert recordio.encode_tfrecord(data) == simple_tfrecord(data)


def test_split_tfrecord_yields_framed_records_and_checks_crcs() -> None:
    items = [b"", b"example-%d" % 1, bytes(range(256)) * 20, b"last"]
    framed = [recordio.encode_tfrecord(d) for d in items]
    data = b"".join(framed)
    assert lines_of(data, "TFRecord") == framed
    assert list(split_records(ReadOnly(data, step=9), "TFRecord")) == framed
    assert [recordio.tfrecord_payload(r) for r in framed] == items
    gz = open_input(io.BytesIO(gzip.compress(data)), "Gzip")
    assert list(split_records(gz, "TFRecord")) == framed


def test_tfrecord_data_corruption_names_the_record_and_offset() -> None:
    first = recordio.encode_tfrecord(b"good record")
    second = bytearray(recordio.encode_tfrecord(b"this one gets a flipped bit"))
    second[12 + 5] ^= 0x01
    data = first + bytes(second)
    crc_at = len(first) + 12 + len(b"this one gets a flipped bit")
    with pytest.raises(
        InputFormatError,
        match=rf"s3://b/t\.tfrecord is corrupt: data CRC mismatch for record 2 at byte offset {len(first)} "
        rf"\(CRC at byte offset {crc_at}",
    ) as info:
        list(split_records(io.BytesIO(data), "TFRecord", uri="s3://b/t.tfrecord"))
    assert info.value.offset == len(first)


def test_tfrecord_length_corruption() -> None:
    data = bytearray(recordio.encode_tfrecord(b"abc") * 2)
    data[19 + 2] ^= 0x80  # the second record's length field (each record is 12 + 3 + 4 bytes)
    with pytest.raises(InputFormatError, match=r"length CRC mismatch for record 2 at byte offset 19"):
        lines_of(bytes(data), "TFRecord")


def test_tfrecord_truncation() -> None:
    data = recordio.encode_tfrecord(b"0123456789") * 2
    with pytest.raises(
        InputFormatError, match=r"record 2 at byte offset 26 needs 26 bytes but the input ends after 20"
    ):
        lines_of(data[:-6], "TFRecord")
    with pytest.raises(InputFormatError, match=r"record 2 at byte offset 26 has 5 of its 12 header bytes"):
        lines_of(data[: 26 + 5], "TFRecord")
    with pytest.raises(InputFormatError, match=r"needs 26 bytes but the input ends after 24"):
        lines_of(data[:24], "TFRecord")


def test_tfrecord_too_large_is_refused_from_its_header() -> None:
    data = recordio.encode_tfrecord(b"x" * 5000)
    source = ReadOnly(data, step=len(data))
    with pytest.raises(RecordTooLarge, match=r"^Record 1 \(bytes 5000\) of input <uri> exceeds"):
        list(split_records(source, "TFRecord", max_record_bytes=4096))
    assert source.read(-1) == data[12:]  # only the header was read


# ---------------------------------------------------------------------------------------------
# Batching


def test_multirecord_line_batch_is_the_original_lines() -> None:
    data = b"a,1\nbb,2\n\nccc,3\r\n"
    recs = lines_of(data)
    (batch,) = batches(recs, "MultiRecord", MIB, joiner_for("Line"))
    assert batch == Batch(data, 4, 0)
    # A final line without a newline gets one, so the batch is well formed.
    (batch,) = batches(lines_of(b"x\ny"), "MultiRecord", MIB, split_type="Line")
    assert batch.data == b"x\ny\n" and batch.count == 2


def test_multirecord_packing_exact_fit_and_one_over() -> None:
    recs = [b"aaaa", b"bbbb", b"cccc", b"dddd", b"eeee"]  # 5 bytes each with the newline
    got = list(batches(recs, "MultiRecord", 10, joiner_for("Line")))
    assert got == [Batch(b"aaaa\nbbbb\n", 2, 0), Batch(b"cccc\ndddd\n", 2, 2), Batch(b"eeee\n", 1, 4)]
    assert all(b.size == 10 for b in got[:2])  # exact fit stays in the batch
    got = list(batches(recs, "MultiRecord", 9, joiner_for("Line")))
    assert [b.count for b in got] == [1, 1, 1, 1, 1]  # one byte short: each second record spills over
    got = list(batches(recs, "MultiRecord", 11, joiner_for("Line")))
    assert [b.data for b in got] == [b"aaaa\nbbbb\n", b"cccc\ndddd\n", b"eeee\n"]


def test_multirecord_never_splits_a_record_and_keeps_order() -> None:
    recs = [b"r%d" % n * (n % 13 + 1) for n in range(500)]
    got = list(batches(recs, "MULTI_RECORD", 100, joiner_for("Line")))
    assert all(b.size <= 100 for b in got)
    assert b"".join(b.data for b in got) == b"".join(r + b"\n" for r in recs)
    assert sum(b.count for b in got) == 500
    assert [b.first for b in got] == [sum(b.count for b in got[:i]) for i in range(len(got))]
    # Greedy: the next record would not have fit into any batch.
    for batch, following in zip(got, got[1:], strict=False):
        assert batch.size + len(recs[following.first]) + 1 > 100


def test_record_too_large_names_the_record_and_limit() -> None:
    recs = [b"ok", b"x" * (6 * MIB), b"ok"]
    with pytest.raises(RecordTooLarge) as info:
        list(batches(recs, "MultiRecord", 6 * MIB, joiner_for("Line"), uri="s3://bucket/in/data.csv"))
    assert (
        str(info.value)
        == f"Record 2 (bytes {6 * MIB + 1}) of input s3://bucket/in/data.csv exceeds MaxPayloadInMB (6 MB)"
    )
    assert (info.value.number, info.value.size, info.value.max_payload_bytes) == (2, 6 * MIB + 1, 6 * MIB)
    with pytest.raises(
        RecordTooLarge, match=r"^Record 2 \(bytes 6291457\) of input <uri> exceeds MaxPayloadInMB \(6 MB\)$"
    ):
        list(batches(recs, "SingleRecord", 6 * MIB, joiner_for("Line")))
    with pytest.raises(RecordTooLarge, match=r"MaxPayloadInMB \(0\.000976562 MB = 1024 bytes\)"):
        list(batches([b"y" * 1024], "SingleRecord", 1024, joiner_for("Line")))


def test_split_records_stops_at_an_oversized_line_without_buffering_it() -> None:
    source = GeneratedLines(0)
    source.block = b"z" * MIB  # one endless line
    source.total = 100 * MIB
    with pytest.raises(
        RecordTooLarge, match=r"^Record 1 \(bytes > \d+\) of input s3://b/k exceeds MaxPayloadInMB \(1 MB\)"
    ):
        list(split_records(source, "Line", max_record_bytes=MIB, uri="s3://b/k"))
    assert source.served <= 3 * MIB
    with pytest.raises(RecordTooLarge, match=r"^Record 3 \(bytes 11\) of input <uri>"):
        lines_of(b"a\nb\n" + b"c" * 11 + b"\nd\n", max_record_bytes=10)


def test_singlerecord_line_and_whole_object() -> None:
    got = list(batches(lines_of(b"a\nb\n\nc"), "SingleRecord", 4, joiner_for("Line")))
    assert got == [Batch(b"a\n", 1, 0), Batch(b"b\n", 1, 1), Batch(b"\n", 1, 2), Batch(b"c\n", 1, 3)]
    blob = bytes(range(256))
    assert list(batches(lines_of(blob, "None"), "MultiRecord", MIB, joiner_for("None"))) == [
        Batch(blob, 1, 0)
    ]
    assert list(batches([blob], "SingleRecord", 0, joiner_for("None"))) == [Batch(blob, 1, 0)]


def test_binary_singlerecord_removes_framing_and_multirecord_keeps_it() -> None:
    payloads = [b"alpha", b"beta" + MAGIC + b"gamma", b"d" * 33]
    data = b"".join(map(recordio.encode_recordio, payloads))
    single = list(batches(lines_of(data, "RecordIO"), "SingleRecord", MIB, joiner_for("RecordIO")))
    assert [b.data for b in single] == payloads
    (multi,) = batches(lines_of(data, "RecordIO"), "MultiRecord", MIB, joiner_for("RecordIO"))
    assert multi.data == data and multi.count == 3
    tf_items = [b"one", b"two" * 100]
    tf_data = b"".join(map(recordio.encode_tfrecord, tf_items))
    single = list(batches(lines_of(tf_data, "TFRecord"), "SingleRecord", MIB, split_type="TFRecord"))
    assert [b.data for b in single] == tf_items
    multi_batches = list(batches(lines_of(tf_data, "TFRecord"), "MultiRecord", 320, split_type="TFRecord"))
    assert [b.count for b in multi_batches] == [1, 1]
    # Each MultiRecord batch is itself a valid stream of the format.
    assert lines_of(multi_batches[1].data, "TFRecord") == [recordio.encode_tfrecord(tf_items[1])]


def test_binary_size_limit_counts_what_is_sent() -> None:
    framed = recordio.encode_tfrecord(b"p" * 100)  # 116 bytes framed, 100 unwrapped
    assert list(batches([framed], "SingleRecord", 100, split_type="TFRecord")) == [Batch(b"p" * 100, 1, 0)]
    with pytest.raises(RecordTooLarge, match=r"Record 1 \(bytes 116\)"):
        list(batches([framed], "MultiRecord", 115, split_type="TFRecord"))


def test_zero_limit() -> None:
    big = [b"q" * (7 * MIB)]
    assert [b.count for b in batches(big, "SingleRecord", 0, joiner_for("Line"))] == [1]
    with pytest.raises(ValueError, match="stream_chunks"):
        list(batches(big, "MultiRecord", 0, joiner_for("Line")))


def test_strategy_and_parameter_validation() -> None:
    assert records.normalize_strategy("SINGLE_RECORD") == "SingleRecord"
    assert records.normalize_strategy("MultiRecord") == "MultiRecord"
    with pytest.raises(ValueError, match="BatchStrategy"):
        list(batches([b"x"], "Batch", 10, joiner_for("Line")))
    with pytest.raises(ValueError):
        list(batches([b"x"], "MultiRecord", -1, joiner_for("Line")))
    assert records.max_payload_bytes(6) == 6 * MIB
    assert records.max_payload_bytes(0) == 0


# ---------------------------------------------------------------------------------------------
# Flat memory on a large input


def _consume_with_peak(
    source: ByteSource, split_type: str = "Line", limit: int = 6 * MIB
) -> tuple[int, int, int, int]:
    """(peak traced bytes, batches, records, bytes) for split + MultiRecord batching of ``source``."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        n_batches = n_records = n_bytes = 0
        recs = split_records(source, split_type, max_record_bytes=limit, uri="s3://b/big.csv")
        for batch in batches(recs, "MultiRecord", limit, joiner_for(split_type)):
            assert batch.size <= limit
            n_batches += 1
            n_records += batch.count
            n_bytes += batch.size
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak, n_batches, n_records, n_bytes


def _crc_of(source: GeneratedLines) -> int:
    crc = 0
    for chunk in stream_chunks(source):
        crc = zlib.crc32(chunk, crc)
    return crc


def test_200mb_line_input_is_batched_with_flat_memory() -> None:
    total, lines = gen_total(200)
    assert total >= 200 * MIB
    peak, n_batches, n_records, n_bytes = _consume_with_peak(GeneratedLines(total))
    assert n_records == lines
    assert n_bytes == total  # every byte, every newline, nothing added
    assert n_batches >= total // (6 * MIB)
    assert peak < 20 * MIB, f"peak traced allocation {peak / MIB:.1f} MiB"


def test_200mb_line_input_batches_equal_the_input_bytes() -> None:
    total, _ = gen_total(200)
    crc = 0
    for batch in batches(
        split_records(GeneratedLines(total), "Line"), "MultiRecord", 6 * MIB, split_type="Line"
    ):
        crc = zlib.crc32(batch.data, crc)
    assert crc == _crc_of(GeneratedLines(total))


def test_gzip_line_input_is_batched_with_flat_memory() -> None:
    total, lines = gen_total(60)
    source = open_input(GzipOnTheFly(GeneratedLines(total)), "Gzip", uri="s3://b/big.csv.gz")
    peak, _, n_records, n_bytes = _consume_with_peak(source)
    assert (n_records, n_bytes) == (lines, total)
    assert peak < 20 * MIB, f"peak traced allocation {peak / MIB:.1f} MiB"


def test_streaming_a_whole_object_keeps_memory_flat() -> None:
    total, _ = gen_total(200)
    source = GeneratedLines(total)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        crc = 0
        size = 0
        for chunk in stream_chunks(source):
            crc = zlib.crc32(chunk, crc)
            size += len(chunk)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert size == total
    assert crc == _crc_of(GeneratedLines(total))
    assert peak < 20 * MIB


# ---------------------------------------------------------------------------------------------
# Assembly


def test_assemble_line_appends_a_newline_after_every_response() -> None:
    outputs = [b"0.1", b"0.2\n0.3", b"0.4\n", b""]
    assert assemble(outputs, "Line") == b"0.1\n0.2\n0.3\n0.4\n\n\n"
    assert b"".join(assemble_parts(iter(outputs), "Line")) == assemble(outputs, "Line")


def test_assemble_none_concatenates() -> None:
    outputs = [b"\x00\x01", b"", b"{}", b"\n"]
    assert assemble(outputs, "None") == b"\x00\x01{}\n"
    assert assemble(outputs, None) == b"\x00\x01{}\n"
    assert assemble([], "Line") == b""
    with pytest.raises(ValueError, match="AssembleWith"):
        assemble(outputs, "Json")

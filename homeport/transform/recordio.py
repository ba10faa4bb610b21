"""Framing of the two binary record formats batch transform splits: MXNet RecordIO and TFRecord.

Pure functions, no I/O: encoders (used to build test data and by anything that must write these
formats), header decoders, the masked CRC-32C that TFRecord uses, and the "unwrap" functions that
turn one framed record into its bare payload. The streaming readers that cut an object into framed
records live in :mod:`homeport.transform.records`.

MXNet RecordIO (dmlc-core ``recordio.h``): every part is ``uint32 magic 0xced7230a`` (little
endian), ``uint32 lrec`` whose upper 3 bits are the continuation flag and lower 29 bits the part's
length, the part's bytes, then zero padding to a multiple of 4. The writer cuts a record wherever
its payload holds the magic number at a 4-byte-aligned offset: the magic is dropped, the pieces go
out as parts flagged 1 (first), 2 (middle), 3 (last), and the reader joins them putting the magic
back between pieces. Flag 0 is a record in one part.

TFRecord (TensorFlow ``record_writer.cc``): ``uint64 length``, ``uint32 masked_crc32c(length
bytes)``, the data, ``uint32 masked_crc32c(data)``, all little endian, no padding.

CRC-32C: the ``google-crc32c`` or ``crc32c`` package is used when installed (hardware CRC, GB/s);
otherwise a table-driven pure-Python fallback, correct but slow (a few MB/s), so only TFRecord
inputs pay for it.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

RECORDIO_MAGIC = 0xCED7230A
RECORDIO_MAGIC_BYTES = struct.pack("<I", RECORDIO_MAGIC)
RECORDIO_HEADER_SIZE = 8
# The length field has 29 bits; dmlc's writer refuses anything larger.
RECORDIO_MAX_PART = (1 << 29) - 1

CFLAG_FULL = 0
CFLAG_START = 1
CFLAG_MIDDLE = 2
CFLAG_END = 3

TFRECORD_HEADER_SIZE = 12  # uint64 length + uint32 masked CRC of the length
TFRECORD_FOOTER_SIZE = 4  # uint32 masked CRC of the data

_HEADER = struct.Struct("<II")
_TF_LENGTH = struct.Struct("<Q")
_U32 = struct.Struct("<I")
_MASK_DELTA = 0xA282EAD8


# ---------------------------------------------------------------------------------------------
# CRC-32C (Castagnoli)


def _make_table() -> list[int]:
    table = []
    for n in range(256):
        crc = n
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _make_table()


def crc32c_py(data: bytes, crc: int = 0) -> int:
    """CRC-32C of ``data`` continuing from ``crc``, in pure Python (the reference and fallback)."""
    crc ^= 0xFFFFFFFF
    table = _TABLE  # a local name: this loop runs once per byte
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _pick_crc32c() -> tuple[str, Callable[[bytes], int]]:
    try:
        import google_crc32c

        # Its pure-Python fallback is no faster than ours; only the C build is worth taking.
        if getattr(google_crc32c, "implementation", "c") == "c":
            return "google-crc32c", lambda data: int(google_crc32c.value(data))
    except ImportError:
        pass
    try:
        import crc32c as crc32c_pkg

        return "crc32c", lambda data: int(crc32c_pkg.crc32c(data))
    except ImportError:
        pass
    return "python", crc32c_py


#: Which CRC-32C implementation :func:`crc32c` uses: "google-crc32c", "crc32c" or "python".
CRC32C_BACKEND, _crc32c = _pick_crc32c()


def crc32c(data: bytes) -> int:
    """CRC-32C of ``data`` with the fastest implementation installed."""
    return _crc32c(data)


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC: rotate right by 15 bits and add a constant (so a CRC of CRCs differs)."""
    crc = _crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


# ---------------------------------------------------------------------------------------------
# RecordIO


def recordio_header(cflag: int, length: int) -> bytes:
    """The 8-byte header of one RecordIO part."""
    if not 0 <= cflag <= 3:
        raise ValueError(f"RecordIO continuation flag must be 0..3, not {cflag}")
    if not 0 <= length <= RECORDIO_MAX_PART:
        raise ValueError(f"RecordIO part length must be 0..{RECORDIO_MAX_PART}, not {length}")
    return _HEADER.pack(RECORDIO_MAGIC, (cflag << 29) | length)


def parse_recordio_header(header: bytes) -> tuple[int, int, int]:
    """``(magic, cflag, length)`` of an 8-byte part header (the caller checks the magic)."""
    magic, lrec = _HEADER.unpack(header)
    return magic, lrec >> 29, lrec & RECORDIO_MAX_PART


def padded(length: int) -> int:
    """``length`` rounded up to RecordIO's 4-byte alignment."""
    return (length + 3) & ~3


def encode_recordio(payload: bytes) -> bytes:
    """Frame one record the way dmlc-core's ``RecordIOWriter::WriteRecord`` does.

    A payload holding the magic number at an aligned offset becomes a multi-part record (flags
    1, 2..., 3) with those magic bytes dropped; :func:`recordio_payload` puts them back.
    """
    if len(payload) > RECORDIO_MAX_PART:
        raise ValueError(f"RecordIO records are limited to {RECORDIO_MAX_PART} bytes, not {len(payload)}")
    out = bytearray()
    start = 0
    for i in range(0, len(payload) - len(payload) % 4, 4):
        if payload[i : i + 4] == RECORDIO_MAGIC_BYTES:
            out += recordio_header(CFLAG_START if start == 0 else CFLAG_MIDDLE, i - start)
            out += payload[start:i]  # aligned offsets: no padding inside a record
            start = i + 4
    last = payload[start:]
    out += recordio_header(CFLAG_END if start else CFLAG_FULL, len(last))
    out += last
    out += bytes(padded(len(last)) - len(last))
    return bytes(out)


def recordio_payload(framed: bytes) -> bytes:
    """The payload of one framed RecordIO record (all its parts), as dmlc's reader returns it.

    Header and padding are removed; the parts of a multi-part record are joined with the magic
    number between them. Raises ValueError when ``framed`` is not exactly one well-formed record.
    """
    pieces: list[bytes] = []
    pos = 0
    while pos < len(framed):
        if pos + RECORDIO_HEADER_SIZE > len(framed):
            raise ValueError(f"RecordIO header truncated at byte {pos}")
        magic, cflag, length = parse_recordio_header(framed[pos : pos + RECORDIO_HEADER_SIZE])
        if magic != RECORDIO_MAGIC:
            raise ValueError(f"bad RecordIO magic 0x{magic:08x} at byte {pos}")
        expected_first = not pieces
        if (cflag in (CFLAG_FULL, CFLAG_START)) != expected_first:
            raise ValueError(f"unexpected RecordIO continuation flag {cflag} at byte {pos}")
        start = pos + RECORDIO_HEADER_SIZE
        pos = start + padded(length)
        if pos > len(framed):
            raise ValueError(f"RecordIO part at byte {start - RECORDIO_HEADER_SIZE} truncated")
        pieces.append(framed[start : start + length])
        if cflag in (CFLAG_FULL, CFLAG_END):
            if pos != len(framed):
                raise ValueError(f"bytes after the end of the RecordIO record at byte {pos}")
            return RECORDIO_MAGIC_BYTES.join(pieces)
    raise ValueError("RecordIO record has no final part")


# ---------------------------------------------------------------------------------------------
# TFRecord


def tfrecord_header(length: int) -> bytes:
    """The 12-byte header of a TFRecord of ``length`` data bytes."""
    raw = _TF_LENGTH.pack(length)
    return raw + _U32.pack(masked_crc32c(raw))


def parse_tfrecord_header(header: bytes) -> tuple[int, int, int]:
    """``(length, stored_crc, computed_crc)`` of a 12-byte TFRecord header."""
    raw = header[:8]
    (length,) = _TF_LENGTH.unpack(raw)
    (stored,) = _U32.unpack(header[8:12])
    return length, stored, masked_crc32c(raw)


def tfrecord_footer(data: bytes) -> bytes:
    return _U32.pack(masked_crc32c(data))


def encode_tfrecord(data: bytes) -> bytes:
    """Frame one TFRecord (what ``tf.io.TFRecordWriter.write`` emits for an uncompressed file)."""
    return tfrecord_header(len(data)) + data + tfrecord_footer(data)


def tfrecord_payload(framed: bytes) -> bytes:
    """The data of one framed TFRecord (header and CRCs removed; the reader already checked them)."""
    if len(framed) < TFRECORD_HEADER_SIZE + TFRECORD_FOOTER_SIZE:
        raise ValueError(f"a TFRecord is at least 16 bytes, not {len(framed)}")
    (length,) = _TF_LENGTH.unpack(framed[:8])
    if TFRECORD_HEADER_SIZE + length + TFRECORD_FOOTER_SIZE != len(framed):
        raise ValueError(f"TFRecord length field {length} does not match its {len(framed)} framed bytes")
    return framed[TFRECORD_HEADER_SIZE:-TFRECORD_FOOTER_SIZE]


def unpack_u32(raw: bytes) -> int:
    (value,) = _U32.unpack(raw)
    return int(value)

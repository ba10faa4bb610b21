"""Streaming record splitting, mini-batching and output assembly for batch transform.

One input object flows through here as a stream, never whole (except where SageMaker itself sends
the whole object in one request, SplitType None):

    source = open_input(store.open_read(uri), compression_type, uri=str(uri))   # CompressionType
    if streams_whole_object(split_type, strategy, max_payload):                   # MaxPayloadInMB 0
        send_chunked(stream_chunks(source))
    else:
        records = split_records(source, split_type, max_record_bytes=max_payload, uri=str(uri))
        for batch in batches(records, strategy, max_payload, joiner_for(split_type), uri=str(uri)):
            responses.append(invoke(batch.data))
    out = assemble_parts(responses, assemble_with)                                # AssembleWith

Decisions, each following SageMaker (API reference of CreateTransformJob / TransformInput /
TransformOutput, and the SDK's local mode where the API reference is silent):

* **Line** records are yielded *without* their ``\\n``; the Line joiner puts one ``\\n`` after
  every record, so a MultiRecord batch is exactly the original lines joined with ``\\n`` plus a
  trailing ``\\n``, and a SingleRecord request is one line plus ``\\n`` (local mode's splitter
  keeps each line's newline; we also give the last line one when the object lacks it). Only
  ``\\n`` splits: a ``\\r`` before it stays in the record, so CRLF lines go out unchanged. Blank
  lines are records (local mode sends them too; dropping them would misalign 1:1 outputs).
* **RecordIO / TFRecord** records are yielded fully framed. MultiRecord batches are those framed
  bytes concatenated (a valid RecordIO / TFRecord stream); SingleRecord requests carry the bare
  payload: "padding is removed if BatchStrategy is SingleRecord, not removed if MultiRecord"
  (TransformInput.SplitType). A multi-part RecordIO record (flags 1, 2..., 3) is one record: its
  parts stay together, and unwrapped its pieces are joined with the magic number between them, as
  dmlc-core's reader does.
* **Size limits** apply to the bytes actually sent: a Line record counts with its ``\\n``, a
  MultiRecord binary record with its framing, a SingleRecord binary record without. A record
  that alone exceeds MaxPayloadInMB fails the object with :class:`RecordTooLarge`; MaxPayloadInMB
  is in MiB (the inference toolkit turns it into ``mb * 1024 * 1024``). ``0`` means no limit: a
  whole-object request (SplitType None, or MultiRecord) is then streamed with
  :func:`stream_chunks`, and SingleRecord requests are sent unlimited, one record each.
* **Empty input** (after decompression) yields no records, whatever the SplitType, so no request
  is made and the ``.out`` object is empty.
* **AssembleWith Line** puts ``\\n`` after every response, even one that already ends with a
  newline ("add a newline character at the end of every transformed record"; local mode writes
  ``b"\\n"`` after each response unconditionally). **None** concatenates the responses as they are.

Byte offsets in error messages count the decompressed stream.
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, cast

from homeport.transform import recordio
from homeport.transform.recordio import (
    CFLAG_END,
    CFLAG_FULL,
    CFLAG_MIDDLE,
    CFLAG_START,
    RECORDIO_HEADER_SIZE,
    RECORDIO_MAGIC,
    TFRECORD_FOOTER_SIZE,
    TFRECORD_HEADER_SIZE,
)

MIB = 1024 * 1024
#: Stands for the object's URI in error messages when the caller passed none (replace it later).
URI_PLACEHOLDER = "<uri>"
#: How much one read of the input asks for: big enough for few Python-level calls, small enough
#: that a reader holds little beyond the batch it is building.
DEFAULT_CHUNK_SIZE = MIB
# read_exact never asks a source for more than this at once, so a corrupt length field cannot
# make one read() allocate gigabytes before the truncation is noticed.
_MAX_READ = 8 * MIB

SPLIT_TYPES = ("None", "Line", "RecordIO", "TFRecord")
COMPRESSION_TYPES = ("None", "Gzip")
ASSEMBLE_WITH = ("None", "Line")
SINGLE_RECORD = "SingleRecord"
MULTI_RECORD = "MultiRecord"
# The API spelling and the container-side spelling (SAGEMAKER_BATCH_STRATEGY, /execution-parameters).
_STRATEGIES = {
    "SingleRecord": SINGLE_RECORD,
    "SINGLE_RECORD": SINGLE_RECORD,
    "MultiRecord": MULTI_RECORD,
    "MULTI_RECORD": MULTI_RECORD,
}


class ByteSource(Protocol):
    """What the splitters read from: a binary file-like object (``read(n)``, ``b""`` at the end)."""

    def read(self, size: int = -1, /) -> bytes: ...


# ---------------------------------------------------------------------------------------------
# Errors


class RecordError(Exception):
    """An input object cannot be turned into requests; the message is a job FailureReason."""


class InputFormatError(RecordError, ValueError):
    """The input is corrupt or truncated for its SplitType/CompressionType (``offset`` names where)."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


class RecordTooLarge(RecordError, ValueError):
    """One record alone exceeds MaxPayloadInMB.

    ``number`` is 1-based. ``size`` is the request size the record needs when :func:`batches`
    raises, its content size when :func:`split_records` stops early, and, when ``exact`` is
    False, the bytes read before reading stopped (the record is larger still).
    """

    def __init__(
        self, number: int, size: int, max_payload_bytes: int, uri: str, *, exact: bool = True
    ) -> None:
        shown = f"bytes {size}" if exact else f"bytes > {size}"
        limit = _format_mb(max_payload_bytes)
        super().__init__(f"Record {number} ({shown}) of input {uri} exceeds MaxPayloadInMB ({limit})")
        self.number = number
        self.size = size
        self.max_payload_bytes = max_payload_bytes
        self.uri = uri
        self.exact = exact


def _format_mb(limit: int) -> str:
    if limit % MIB == 0:
        return f"{limit // MIB} MB"
    return f"{limit / MIB:.6g} MB = {limit} bytes"


# ---------------------------------------------------------------------------------------------
# Parameters


def max_payload_bytes(max_payload_in_mb: int) -> int:
    """MaxPayloadInMB in bytes (MiB, as the inference toolkit and local mode compute it); 0 stays 0."""
    if max_payload_in_mb < 0:
        raise ValueError(f"MaxPayloadInMB must be >= 0, not {max_payload_in_mb}")
    return max_payload_in_mb * MIB


def normalize_split_type(split_type: str | None) -> str:
    value = "None" if split_type is None else split_type
    if value not in SPLIT_TYPES:
        raise ValueError(f"unknown SplitType {split_type!r}; expected one of {', '.join(SPLIT_TYPES)}")
    return value


def normalize_strategy(strategy: str) -> str:
    """``"SingleRecord"`` or ``"MultiRecord"`` from either spelling (``SINGLE_RECORD`` too)."""
    try:
        return _STRATEGIES[strategy]
    except KeyError:
        raise ValueError(
            f"unknown BatchStrategy {strategy!r}; expected SingleRecord or MultiRecord"
        ) from None


def streams_whole_object(split_type: str | None, strategy: str, max_payload_bytes: int) -> bool:
    """True when the object goes to the container as one chunked request (:func:`stream_chunks`).

    That is MaxPayloadInMB 0 ("transmitted using HTTP chunked encoding") with a request that
    would hold the whole object anyway: SplitType None, or MultiRecord (no limit packs every
    record into one request, which is the object itself).
    """
    if max_payload_bytes:
        return False
    return normalize_split_type(split_type) == "None" or normalize_strategy(strategy) == MULTI_RECORD


# ---------------------------------------------------------------------------------------------
# Input


class _ReadintoAdapter:
    """Gives a read()-only source the readinto() that zlib-ng's gzip reader calls."""

    def __init__(self, source: ByteSource) -> None:
        self._source = source

    def read(self, size: int = -1, /) -> bytes:
        return self._source.read(size)

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self._source.read(len(view))
        view[: len(data)] = data
        return len(data)


class _GzipSource:
    """A streaming gzip decoder whose corruption errors become :class:`InputFormatError`."""

    def __init__(self, raw: ByteSource, uri: str) -> None:
        fileobj: Any = raw if hasattr(raw, "readinto") else _ReadintoAdapter(raw)
        try:
            from zlib_ng import gzip_ng, zlib_ng
        except ImportError:  # pragma: no cover - zlib-ng is a declared dependency
            self._file: Any = gzip.GzipFile(fileobj=fileobj, mode="rb")
            self._errors: tuple[type[BaseException], ...] = (EOFError, gzip.BadGzipFile, zlib.error)
        else:
            # zlib-ng inflates several times faster than zlib (4x on CSV here); same format and errors.
            self._file = gzip_ng.GzipFile(fileobj=fileobj, mode="rb")
            self._errors = (
                EOFError,
                gzip.BadGzipFile,
                zlib.error,
                cast("type[BaseException]", zlib_ng.error),
            )
        self._uri = uri
        self._delivered = 0

    def read(self, size: int = -1, /) -> bytes:
        try:
            data: bytes = self._file.read(size)
        except self._errors as exc:
            raise InputFormatError(
                f"input {self._uri} is not a valid gzip stream (CompressionType Gzip): {exc} "
                f"(after {self._delivered} decompressed bytes)",
                self._delivered,
            ) from exc
        self._delivered += len(data)
        return data

    def close(self) -> None:
        """Release the decoder (the raw stream stays open: its opener closes it)."""
        self._file.close()


def open_input(raw: ByteSource, compression_type: str | None, *, uri: str = URI_PLACEHOLDER) -> ByteSource:
    """The decompressed byte stream of one input object (CompressionType None or Gzip).

    Gzip is decoded as it is read (multi-member files included), so memory does not grow with the
    object. A corrupt or truncated gzip stream raises :class:`InputFormatError` from ``read``.
    """
    value = "None" if compression_type is None else compression_type
    if value == "None":
        return raw
    if value == "Gzip":
        return _GzipSource(raw, uri)
    raise ValueError(f"unknown CompressionType {compression_type!r}; expected None or Gzip")


class _Reader:
    """Counts the bytes read (for error offsets) and reads exact sizes across short reads."""

    def __init__(self, source: ByteSource) -> None:
        self._source = source
        self.offset = 0

    def read(self, size: int) -> bytes:
        data = self._source.read(size) or b""
        self.offset += len(data)
        return data

    def read_exact(self, size: int) -> bytes:
        """``size`` bytes, or fewer only at the end of the input."""
        first = self.read(min(size, _MAX_READ))
        if len(first) == size or not first:
            return first
        parts = bytearray(first)
        while len(parts) < size:
            data = self.read(min(size - len(parts), _MAX_READ))
            if not data:
                break
            parts += data
        return bytes(parts)


def stream_chunks(stream: ByteSource, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[bytes]:
    """The object as consecutive chunks of at most ``chunk_size`` bytes (MaxPayloadInMB 0)."""
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be positive, not {chunk_size}")
    while True:
        data = stream.read(chunk_size)
        if not data:
            return
        yield data


# ---------------------------------------------------------------------------------------------
# Splitting


def split_records(
    stream: ByteSource,
    split_type: str | None,
    *,
    max_record_bytes: int = 0,
    uri: str = URI_PLACEHOLDER,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> Iterator[bytes]:
    """The records of one (decompressed) input object, in order.

    * ``"None"``: the whole object as one record (nothing for an empty object).
    * ``"Line"``: each line without its ``\\n``; a final line without one is a record too.
    * ``"RecordIO"``: each record with its full RecordIO framing (all parts of a multi-part record).
    * ``"TFRecord"``: each record with its full framing; both CRCs are checked.

    ``max_record_bytes`` (normally the MaxPayloadInMB limit; 0 = none) stops reading a record as
    soon as its content alone exceeds it and raises :class:`RecordTooLarge`, so a 1 GB line or
    object is never buffered just to be rejected. :func:`batches` applies the exact limit.
    Corruption or truncation raises :class:`InputFormatError` naming the byte offset.
    """
    kind = normalize_split_type(split_type)
    if max_record_bytes < 0:
        raise ValueError(f"max_record_bytes must be >= 0, not {max_record_bytes}")
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be positive, not {chunk_size}")
    reader = _Reader(stream)
    if kind == "Line":
        return _split_lines(reader, max_record_bytes, uri, chunk_size)
    if kind == "RecordIO":
        return _split_recordio(reader, max_record_bytes, uri)
    if kind == "TFRecord":
        return _split_tfrecord(reader, max_record_bytes, uri)
    return _whole_object(reader, max_record_bytes, uri, chunk_size)


def _whole_object(reader: _Reader, limit: int, uri: str, chunk_size: int) -> Iterator[bytes]:
    parts: list[bytes] = []
    total = 0
    while data := reader.read(chunk_size):
        parts.append(data)
        total += len(data)
        if limit and total > limit:
            raise RecordTooLarge(1, total, limit, uri, exact=False)
    if total:
        yield b"".join(parts)


def _split_lines(reader: _Reader, limit: int, uri: str, chunk_size: int) -> Iterator[bytes]:
    pending: list[bytes] = []  # pieces of a line that started in an earlier chunk
    pending_size = 0
    number = 0
    while chunk := reader.read(chunk_size):
        lines = chunk.split(b"\n")
        tail = lines.pop()  # the bytes after the chunk's last newline: an unfinished line
        if lines:
            if pending:
                pending.append(lines[0])
                lines[0] = b"".join(pending)
                pending = []
                pending_size = 0
            for line in lines:
                number += 1
                if limit and len(line) > limit:
                    raise RecordTooLarge(number, len(line), limit, uri)
                yield line
        if tail:
            pending.append(tail)
            pending_size += len(tail)
            if limit and pending_size > limit:
                raise RecordTooLarge(number + 1, pending_size, limit, uri, exact=False)
    if pending:
        yield b"".join(pending)


def _split_recordio(reader: _Reader, limit: int, uri: str) -> Iterator[bytes]:
    number = 0
    while True:
        start = reader.offset
        header = reader.read_exact(RECORDIO_HEADER_SIZE)
        if not header:
            return
        number += 1
        parts: list[bytes] = []
        payload_size = 0
        part_offset = start
        while True:
            if len(header) < RECORDIO_HEADER_SIZE:
                raise InputFormatError(
                    f"RecordIO input {uri} is truncated: record {number} has a {len(header)}-byte header "
                    f"at byte offset {part_offset}",
                    part_offset,
                )
            magic, cflag, length = recordio.parse_recordio_header(header)
            if magic != RECORDIO_MAGIC:
                raise InputFormatError(
                    f"RecordIO input {uri} is corrupt: bad magic number 0x{magic:08x} (expected "
                    f"0x{RECORDIO_MAGIC:08x}) at byte offset {part_offset} (record {number})",
                    part_offset,
                )
            allowed = (CFLAG_FULL, CFLAG_START) if not parts else (CFLAG_MIDDLE, CFLAG_END)
            if cflag not in allowed:
                raise InputFormatError(
                    f"RecordIO input {uri} is corrupt: continuation flag {cflag} at byte offset "
                    f"{part_offset} where {' or '.join(map(str, allowed))} must be (record {number})",
                    part_offset,
                )
            # Unwrapped, the parts are joined with the magic number between them.
            payload_size += length + (4 if parts else 0)
            last = cflag in (CFLAG_FULL, CFLAG_END)
            if limit and payload_size > limit:
                raise RecordTooLarge(number, payload_size, limit, uri, exact=last)
            body = reader.read_exact(recordio.padded(length))
            if len(body) < recordio.padded(length):
                raise InputFormatError(
                    f"RecordIO input {uri} is truncated: record {number} at byte offset {part_offset} "
                    f"declares {length} bytes (padded {recordio.padded(length)}) but the input ends "
                    f"after {len(body)}",
                    part_offset,
                )
            parts.append(header)
            parts.append(body)
            if last:
                break
            part_offset = reader.offset
            header = reader.read_exact(RECORDIO_HEADER_SIZE)
            if not header:
                raise InputFormatError(
                    f"RecordIO input {uri} is truncated: multi-part record {number} starting at byte "
                    f"offset {start} has no final part",
                    part_offset,
                )
        yield b"".join(parts)


def _split_tfrecord(reader: _Reader, limit: int, uri: str) -> Iterator[bytes]:
    number = 0
    while True:
        start = reader.offset
        header = reader.read_exact(TFRECORD_HEADER_SIZE)
        if not header:
            return
        number += 1
        if len(header) < TFRECORD_HEADER_SIZE:
            raise InputFormatError(
                f"TFRecord input {uri} is truncated: record {number} at byte offset {start} has "
                f"{len(header)} of its {TFRECORD_HEADER_SIZE} header bytes",
                start,
            )
        length, stored, computed = recordio.parse_tfrecord_header(header)
        if stored != computed:
            raise InputFormatError(
                f"TFRecord input {uri} is corrupt: length CRC mismatch for record {number} at byte "
                f"offset {start} (stored 0x{stored:08x}, computed 0x{computed:08x})",
                start,
            )
        if limit and length > limit:
            raise RecordTooLarge(number, length, limit, uri)
        data = reader.read_exact(length)
        footer = reader.read_exact(TFRECORD_FOOTER_SIZE) if len(data) == length else b""
        if len(footer) < TFRECORD_FOOTER_SIZE:
            have = TFRECORD_HEADER_SIZE + len(data) + len(footer)
            raise InputFormatError(
                f"TFRecord input {uri} is truncated: record {number} at byte offset {start} needs "
                f"{TFRECORD_HEADER_SIZE + length + TFRECORD_FOOTER_SIZE} bytes but the input ends "
                f"after {have}",
                start,
            )
        stored = recordio.unpack_u32(footer)
        computed = recordio.masked_crc32c(data)
        if stored != computed:
            crc_offset = start + TFRECORD_HEADER_SIZE + length
            raise InputFormatError(
                f"TFRecord input {uri} is corrupt: data CRC mismatch for record {number} at byte "
                f"offset {start} (CRC at byte offset {crc_offset}: stored 0x{stored:08x}, "
                f"computed 0x{computed:08x})",
                start,
            )
        yield b"".join((header, data, footer))


# ---------------------------------------------------------------------------------------------
# Batching


@dataclass(frozen=True)
class Joiner:
    """How records of one SplitType become a request body.

    ``terminator`` follows every record in a request (``\\n`` for Line). ``unwrap`` turns one
    framed binary record into its bare payload for a SingleRecord request (padding removed).
    """

    terminator: bytes = b""
    unwrap: Callable[[bytes], bytes] | None = None

    def single(self, record: bytes) -> bytes:
        """The body of a SingleRecord request carrying ``record``."""
        if self.unwrap is not None:
            return self.unwrap(record)
        return record + self.terminator if self.terminator else record


LINE_JOINER = Joiner(terminator=b"\n")
WHOLE_JOINER = Joiner()
RECORDIO_JOINER = Joiner(unwrap=recordio.recordio_payload)
TFRECORD_JOINER = Joiner(unwrap=recordio.tfrecord_payload)
_JOINERS = {
    "None": WHOLE_JOINER,
    "Line": LINE_JOINER,
    "RecordIO": RECORDIO_JOINER,
    "TFRecord": TFRECORD_JOINER,
}


def joiner_for(split_type: str | None) -> Joiner:
    """The :class:`Joiner` matching :func:`split_records` for ``split_type``."""
    return _JOINERS[normalize_split_type(split_type)]


@dataclass(frozen=True)
class Batch:
    """One request: its body ``data``, made of ``count`` consecutive records, the first of which
    is record ``first`` (0-based) of the object."""

    data: bytes
    count: int
    first: int

    @property
    def size(self) -> int:
        return len(self.data)


def batches(
    records: Iterable[bytes],
    strategy: str,
    max_payload_bytes: int,
    joiner: Joiner | None = None,
    *,
    split_type: str | None = None,
    uri: str = URI_PLACEHOLDER,
) -> Iterator[Batch]:
    """Group ``records`` into request bodies per BatchStrategy.

    ``joiner`` says how records become a body; without one, ``joiner_for(split_type)`` (give the
    SplitType the records were split with).

    SingleRecord: one record per batch (binary records unwrapped, Line records with their ``\\n``).
    MultiRecord: as many consecutive records as fit in ``max_payload_bytes``, each followed by the
    joiner's terminator, framing kept; records are never split. A record that does not fit alone
    raises :class:`RecordTooLarge`. ``max_payload_bytes`` 0 means no limit, which only
    SingleRecord can honour without holding the object: MultiRecord with 0 raises ValueError
    (stream the object with :func:`stream_chunks`; see :func:`streams_whole_object`).
    """
    mode = normalize_strategy(strategy)
    if joiner is None:
        joiner = joiner_for(split_type)
    limit = max_payload_bytes
    if limit < 0:
        raise ValueError(f"max_payload_bytes must be >= 0, not {limit}")
    if mode == SINGLE_RECORD:
        for index, record in enumerate(records):
            body = joiner.single(record)
            if limit and len(body) > limit:
                raise RecordTooLarge(index + 1, len(body), limit, uri)
            yield Batch(body, 1, index)
        return
    if not limit:
        raise ValueError(
            "MultiRecord with MaxPayloadInMB 0 sends the whole object in one streamed request: "
            "use stream_chunks() (see streams_whole_object())"
        )
    terminator = joiner.terminator
    # BytesIO, not bytearray: getvalue() hands its buffer over without a copy when the BytesIO is
    # dropped right after, so a batch costs its own size once instead of twice at the hand-off.
    buffer = io.BytesIO()
    filled = 0
    count = 0
    first = 0
    for index, record in enumerate(records):
        size = len(record) + len(terminator)
        if size > limit:
            raise RecordTooLarge(index + 1, size, limit, uri)
        if filled + size > limit:
            data = buffer.getvalue()
            buffer = io.BytesIO()
            yield Batch(data, count, first)
            del data
            filled = 0
            count = 0
        if not count:
            first = index
        buffer.write(record)
        if terminator:
            buffer.write(terminator)
        filled += size
        count += 1
    if count:
        yield Batch(buffer.getvalue(), count, first)


# ---------------------------------------------------------------------------------------------
# Output


def assemble_parts(outputs: Iterable[bytes], assemble_with: str | None) -> Iterator[bytes]:
    """The ``.out`` object as a stream of pieces, responses in request order (for multipart upload).

    AssembleWith Line: every response followed by ``\\n`` (always: see the module notes).
    None: the responses concatenated as they are.
    """
    value = "None" if assemble_with is None else assemble_with
    if value not in ASSEMBLE_WITH:
        raise ValueError(f"unknown AssembleWith {assemble_with!r}; expected None or Line")
    for output in outputs:
        if output:
            yield output
        if value == "Line":
            yield b"\n"


def assemble(outputs: Iterable[bytes], assemble_with: str | None) -> bytes:
    """The whole ``.out`` object in memory (small outputs; :func:`assemble_parts` streams)."""
    return b"".join(assemble_parts(outputs, assemble_with))


def line_batches(
    stream: ByteSource, max_payload_bytes: int, *, uri: str = URI_PLACEHOLDER
) -> Iterator[Batch]:
    """Line + MultiRecord without per-record work: the same batches as ``batches(split_records(…))``.

    Each batch is the longest run of whole lines (each with its ``\\n``) that fits in
    ``max_payload_bytes``, cut straight out of the data instead of splitting every line and
    packing it back one at a time: the common CSV case costs a few bytes-level scans per batch
    rather than Python work per record. A last line without ``\\n`` gets one, as in
    :func:`split_records`. Memory stays below two batches.
    """
    limit = max_payload_bytes
    if limit <= 0:
        raise ValueError("line_batches needs a positive max_payload_bytes")
    buffer = bytearray()
    first = 0
    eof = False
    while not eof or buffer:
        if not eof and len(buffer) < limit:
            data = stream.read(limit)
            if data:
                buffer += data
                continue
            eof = True
            if buffer and not buffer.endswith(b"\n"):
                buffer += b"\n"
            continue
        if len(buffer) <= limit and eof:
            cut = len(buffer)
        else:
            cut = buffer.rfind(b"\n", 0, limit) + 1
            if cut == 0:  # not one whole line fits
                end = buffer.find(b"\n")
                size = end + 1 if end >= 0 else len(buffer)
                raise RecordTooLarge(first + 1, size, limit, uri, exact=end >= 0)
        piece = bytes(buffer[:cut])
        del buffer[:cut]
        count = piece.count(b"\n")
        yield Batch(piece, count, first)
        first += count

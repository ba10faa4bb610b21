"""AWS event-stream messages (``application/vnd.amazon.eventstream``) for InvokeEndpointWithResponseStream.

A message is::

    total length (u32) | headers length (u32) | CRC32 of those 8 bytes (u32)
    headers: name length (u8) | name | type 7 = string | value length (u16) | value   (repeated)
    payload
    CRC32 of everything before (u32)

all big-endian. SageMaker Runtime's ``ResponseStream`` union has the events ``PayloadPart``
(``{Bytes: blob, eventpayload}``: the payload is the raw bytes) and the exceptions
``ModelStreamError`` and ``InternalStreamFailure`` (JSON payloads with their members), which
botocore turns into ``EventStreamError`` with the exception type as its code.

Concurrency model: pure functions on bytes, safe from any thread.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Sequence

# botocore refuses messages with a payload above 24 MiB; larger data is cut into several parts
# (still one PayloadPart event each), well below that limit.
MAX_PART = 16 * 1024 * 1024

_PRELUDE = struct.Struct(">II")
_CRC = struct.Struct(">I")
_LENGTH16 = struct.Struct(">H")
_STRING = b"\x07"  # header value type: UTF-8 string with a 2-byte length


def encode_headers(headers: Sequence[tuple[str, str]]) -> bytes:
    parts: list[bytes] = []
    for name, value in headers:
        raw_name, raw_value = name.encode("utf-8"), value.encode("utf-8")
        if len(raw_name) > 255 or len(raw_value) > 65535:
            raise ValueError(f"event-stream header {name!r} is too long")
        parts += (bytes((len(raw_name),)), raw_name, _STRING, _LENGTH16.pack(len(raw_value)), raw_value)
    return b"".join(parts)


def encode_message(encoded_headers: bytes, payload: bytes) -> bytes:
    """One message from already encoded headers (see :func:`encode_headers`) and a payload."""
    total = 12 + len(encoded_headers) + len(payload) + 4
    prelude = _PRELUDE.pack(total, len(encoded_headers))
    start = prelude + _CRC.pack(zlib.crc32(prelude))
    crc = zlib.crc32(payload, zlib.crc32(encoded_headers, zlib.crc32(start)))
    return b"".join((start, encoded_headers, payload, _CRC.pack(crc)))


_PAYLOAD_PART_HEADERS = encode_headers(
    (
        (":event-type", "PayloadPart"),
        (":content-type", "application/octet-stream"),
        (":message-type", "event"),
    )
)


def payload_part(data: bytes) -> bytes:
    """A ``PayloadPart`` event carrying ``data`` (several, back to back, above :data:`MAX_PART`)."""
    if len(data) <= MAX_PART:
        return encode_message(_PAYLOAD_PART_HEADERS, data)
    view = memoryview(data)
    parts = (bytes(view[i : i + MAX_PART]) for i in range(0, len(data), MAX_PART))
    return b"".join(encode_message(_PAYLOAD_PART_HEADERS, part) for part in parts)


def _exception(exception_type: str, members: dict[str, str]) -> bytes:
    headers = encode_headers(
        (
            (":exception-type", exception_type),
            (":content-type", "application/json"),
            (":message-type", "exception"),
        )
    )
    return encode_message(headers, json.dumps(members).encode("utf-8"))


def model_stream_error(message: str, error_code: str) -> bytes:
    """A ``ModelStreamError`` exception message: the model's stream failed part way."""
    return _exception("ModelStreamError", {"Message": message, "ErrorCode": error_code})


def internal_stream_failure(message: str) -> bytes:
    """An ``InternalStreamFailure`` exception message: the stream failed on Homeport's side."""
    return _exception("InternalStreamFailure", {"Message": message})

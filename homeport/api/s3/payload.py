"""Request bodies: streamed in chunks, aws-chunked bodies decoded, integrity checked.

Clients send a body as is (``x-amz-content-sha256`` is its SHA-256, or ``UNSIGNED-PAYLOAD``),
or in the ``aws-chunked`` encoding (``x-amz-content-sha256: STREAMING-...``, or
``Content-Encoding: aws-chunked``): ``<hex size>[;chunk-signature=<sig>]\\r\\n<data>\\r\\n``...,
a zero-size chunk, then trailer lines such as ``x-amz-checksum-crc32:<base64>`` (named by
``x-amz-trailer``) and an empty line. ``x-amz-decoded-content-length`` is the decoded size.
Chunk and trailer signatures are not verified (no signature is); every checksum the client
sends (Content-MD5, a hex x-amz-content-sha256, x-amz-checksum-crc32/crc32c/sha1/sha256 as a
header or a trailer) is, and a mismatch fails the request without storing anything.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import zlib
from collections.abc import AsyncIterator, Callable
from typing import Protocol

import google_crc32c
from starlette.concurrency import run_in_threadpool

from homeport.api.s3.errors import (
    S3Error,
    bad_digest,
    incomplete_body,
    invalid_argument,
    invalid_digest,
    sha256_mismatch,
)
from homeport.api.s3.request import S3Request

# Bytes gathered from the connection before one hand-off to a worker thread (hash + write).
FLUSH_BYTES = 1024 * 1024
_MAX_LINE = 8192
_HEX64 = re.compile(r"[0-9a-fA-F]{64}\Z")


class ClientGone(Exception):
    """The client disconnected before the whole body arrived."""


def _invalid_chunk(message: str) -> S3Error:
    return S3Error("InvalidRequest", f"The aws-chunked request body is malformed: {message}", 400)


class AwsChunkedDecoder:
    """Incremental decoder of the aws-chunked encoding; feed() any slices of the body."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._state = "size"
        self._remaining = 0
        self.trailers: dict[str, str] = {}

    def _line(self) -> bytes | None:
        at = self._buffer.find(b"\r\n")
        if at < 0:
            if len(self._buffer) > _MAX_LINE:
                raise _invalid_chunk("a chunk header or trailer line is too long")
            return None
        line = bytes(self._buffer[:at])
        del self._buffer[: at + 2]
        return line

    def feed(self, data: bytes) -> bytes:
        """The decoded bytes that ``data`` completes (possibly none)."""
        self._buffer += data
        out = bytearray()
        while True:
            if self._state == "size":
                line = self._line()
                if line is None:
                    break
                size_text = line.split(b";", 1)[0].strip()
                try:
                    size = int(size_text, 16)
                except ValueError:
                    raise _invalid_chunk(f"bad chunk size {size_text[:20]!r}") from None
                if size < 0:
                    raise _invalid_chunk("negative chunk size")
                if size == 0:
                    self._state = "trailer"
                else:
                    self._remaining = size
                    self._state = "data"
            elif self._state == "data":
                if not self._buffer:
                    break
                take = min(self._remaining, len(self._buffer))
                out += self._buffer[:take]
                del self._buffer[:take]
                self._remaining -= take
                if self._remaining == 0:
                    self._state = "data-end"
            elif self._state == "data-end":
                if len(self._buffer) < 2:
                    break
                if self._buffer[:2] != b"\r\n":
                    raise _invalid_chunk("chunk data is not followed by CRLF")
                del self._buffer[:2]
                self._state = "size"
            elif self._state == "trailer":
                line = self._line()
                if line is None:
                    break
                if not line.strip():
                    self._state = "done"
                    continue
                name, sep, value = line.partition(b":")
                if not sep:
                    raise _invalid_chunk("bad trailer line")
                self.trailers[name.decode("latin-1").strip().lower()] = value.decode("latin-1").strip()
            else:  # done: anything after the final empty line is ignored
                self._buffer.clear()
                break
        return bytes(out)

    def finish(self) -> None:
        if self._state == "trailer" and not self._buffer:
            self._state = "done"  # tolerate a missing final empty line
        if self._state != "done":
            raise incomplete_body()


class _Hasher(Protocol):
    def update(self, data: bytes) -> None: ...

    def b64digest(self) -> str: ...


class _Crc:
    def __init__(self, fn: Callable[[int, bytes], int]) -> None:
        self._fn = fn
        self._crc = 0

    def update(self, data: bytes) -> None:
        self._crc = self._fn(self._crc, data)

    def b64digest(self) -> str:
        return base64.b64encode(self._crc.to_bytes(4, "big")).decode()


class _Hash:
    def __init__(self, name: str) -> None:
        self._hash = hashlib.new(name)

    def update(self, data: bytes) -> None:
        self._hash.update(data)

    def b64digest(self) -> str:
        return base64.b64encode(self._hash.digest()).decode()


_ALGORITHMS: dict[str, Callable[[], _Hasher]] = {
    "crc32": lambda: _Crc(lambda crc, data: zlib.crc32(data, crc)),
    "crc32c": lambda: _Crc(lambda crc, data: int(google_crc32c.extend(crc, data))),
    "sha1": lambda: _Hash("sha1"),
    "sha256": lambda: _Hash("sha256"),
}
_CHECKSUM_HEADER = "x-amz-checksum-"


class Payload:
    """One request body: ``chunks()`` yields its decoded bytes, ``update()`` hashes them (call
    it from a worker thread for big bodies), ``verify()`` checks every checksum at the end."""

    def __init__(self, request: S3Request) -> None:
        headers = request.headers
        self._request = request
        content_sha256 = headers.get("x-amz-content-sha256", "")
        encoding = headers.get("content-encoding", "")
        self.chunked = content_sha256.startswith("STREAMING-") or "aws-chunked" in encoding.lower()
        self._expected_size = _int_header(
            headers, "x-amz-decoded-content-length" if self.chunked else "content-length"
        )
        self.size = 0
        self.trailers: dict[str, str] = {}
        self._md5_expected: bytes | None = None
        if "content-md5" in headers:
            try:
                self._md5_expected = base64.b64decode(headers["content-md5"], validate=True)
            except (binascii.Error, ValueError):
                raise invalid_digest() from None
            if len(self._md5_expected) != 16:
                raise invalid_digest()
        self._md5 = hashlib.md5(usedforsecurity=False) if self._md5_expected is not None else None
        self._sha256_expected = (
            content_sha256.lower() if _HEX64.match(content_sha256) and not self.chunked else None
        )
        self._sha256 = hashlib.sha256() if self._sha256_expected else None
        wanted = {name[len(_CHECKSUM_HEADER) :] for name in headers if name.startswith(_CHECKSUM_HEADER)}
        wanted.discard("algorithm")
        wanted.discard("type")
        self._trailer_names = {
            name.strip().lower() for name in headers.get("x-amz-trailer", "").split(",") if name.strip()
        }
        wanted |= {
            name[len(_CHECKSUM_HEADER) :] for name in self._trailer_names if name.startswith(_CHECKSUM_HEADER)
        }
        self._hashers = {
            algorithm: _ALGORITHMS[algorithm]() for algorithm in wanted if algorithm in _ALGORITHMS
        }

    async def chunks(self) -> AsyncIterator[bytes]:
        """The decoded body, as it arrives; IncompleteBody if it is shorter than announced."""
        decoder = AwsChunkedDecoder() if self.chunked else None
        receive = self._request.receive
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone()
            body: bytes = message.get("body", b"")
            data = decoder.feed(body) if decoder is not None else body
            if data:
                self.size += len(data)
                yield data
            if not message.get("more_body", False):
                break
        if decoder is not None:
            decoder.finish()
            self.trailers = decoder.trailers
        if self._expected_size is not None and self.size != self._expected_size:
            raise incomplete_body()

    def update(self, data: bytes) -> None:
        if self._md5 is not None:
            self._md5.update(data)
        if self._sha256 is not None:
            self._sha256.update(data)
        for hasher in self._hashers.values():
            hasher.update(data)

    def verify(self) -> list[tuple[bytes, bytes]]:
        """Raise on any mismatch; the verified x-amz-checksum-* headers, to echo in the response."""
        if self._md5 is not None and self._md5.digest() != self._md5_expected:
            raise bad_digest()
        if self._sha256 is not None and self._sha256.hexdigest() != self._sha256_expected:
            raise sha256_mismatch()
        echoed = []
        for algorithm, hasher in self._hashers.items():
            name = _CHECKSUM_HEADER + algorithm
            expected = self.trailers.get(name) or self._request.headers.get(name)
            if expected is None:
                if name in self._trailer_names:
                    raise invalid_argument(f"The trailer {name} announced by x-amz-trailer was not sent.")
                continue
            if hasher.b64digest() != expected.strip():
                raise bad_digest(f"{algorithm.upper()} checksum")
            echoed.append((name.encode(), expected.strip().encode()))
        return echoed

    async def read_all(self, limit: int) -> bytes:
        """The whole (small) body, verified; EntityTooLarge-like InvalidRequest past ``limit``."""
        data = bytearray()
        async for chunk in self.chunks():
            data += chunk
            if len(data) > limit:
                raise S3Error("InvalidRequest", f"The request body is larger than {limit} bytes.", 400)
        body = bytes(data)
        self.update(body)
        self.verify()
        return body

    async def stream_to(self, write: Callable[[bytes], None]) -> list[tuple[bytes, bytes]]:
        """Feed the body to ``write`` in ~1 MiB pieces, hashing and writing in a worker thread;
        the verified checksum headers."""

        def consume(piece: bytes) -> None:
            self.update(piece)
            write(piece)

        buffer = bytearray()
        async for data in self.chunks():
            buffer += data
            if len(buffer) >= FLUSH_BYTES:
                piece = bytes(buffer)
                buffer.clear()
                await run_in_threadpool(consume, piece)
        if buffer:
            await run_in_threadpool(consume, bytes(buffer))
        return self.verify()


def _int_header(headers: dict[str, str], name: str) -> int | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        raise invalid_argument(f"{name} must be a number", name, value) from None
    if number < 0:
        raise invalid_argument(f"{name} must not be negative", name, value)
    return number

"""Sending S3 responses over ASGI: headers every response carries, XML documents, errors, and
object bodies streamed from an open file in bounded pieces."""

from __future__ import annotations

from collections.abc import Sequence
from typing import BinaryIO
from xml.etree.ElementTree import Element

from starlette.concurrency import run_in_threadpool

from homeport.api.runtime_api import Send
from homeport.api.s3 import xml
from homeport.api.s3.errors import S3Error
from homeport.api.s3.request import S3Request

Headers = list[tuple[bytes, bytes]]
STREAM_CHUNK = 1024 * 1024


class ObjectShrank(OSError):
    """An object's file got shorter while it was being sent (rewritten in place around the store)."""


def _common(request_id: str) -> Headers:
    rid = request_id.encode()
    return [(b"x-amz-request-id", rid), (b"x-amz-id-2", rid)]


async def send_response(
    send: Send,
    request: S3Request,
    status: int,
    headers: Sequence[tuple[bytes, bytes]] = (),
    body: bytes = b"",
    content_length: int | None = None,
) -> None:
    """A whole response. ``content_length`` overrides len(body) (HEAD answers a GET's length)."""
    out = _common(request.request_id) + list(headers)
    if status != 304:
        out.append((b"content-length", str(len(body) if content_length is None else content_length).encode()))
    await send({"type": "http.response.start", "status": status, "headers": out})
    await send({"type": "http.response.body", "body": b"" if request.method == "HEAD" else body})


async def send_xml(
    send: Send,
    request: S3Request,
    root: Element,
    status: int = 200,
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    await send_response(
        send, request, status, [(b"content-type", xml.XML_CONTENT_TYPE), *headers], xml.to_bytes(root)
    )


async def send_error(send: Send, request_id: str, method: str, error: S3Error) -> None:
    headers = _common(request_id) + error.headers
    if method == "HEAD":  # S3 answers HEAD errors with the status alone
        headers.append((b"content-length", b"0"))
        await send({"type": "http.response.start", "status": error.status, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
        return
    body = xml.error_body(error, request_id)
    headers += [(b"content-type", xml.XML_CONTENT_TYPE), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def send_file(
    send: Send, request: S3Request, status: int, headers: Headers, handle: BinaryIO, start: int, length: int
) -> None:
    """Stream ``length`` bytes of ``handle`` from ``start``; reads happen in worker threads."""
    out = _common(request.request_id) + headers + [(b"content-length", str(length).encode())]
    await send({"type": "http.response.start", "status": status, "headers": out})
    if request.method == "HEAD" or length == 0:
        await send({"type": "http.response.body", "body": b""})
        return
    if start:
        await run_in_threadpool(handle.seek, start)
    remaining = length
    while remaining > 0:
        chunk = await run_in_threadpool(handle.read, min(STREAM_CHUNK, remaining))
        if not chunk:
            # The file shrank under us (rewritten in place around the store): the promised
            # length cannot be met, so end without completing and the connection is dropped.
            raise ObjectShrank(f"/{request.bucket}/{request.key} shrank while being sent")
        remaining -= len(chunk)
        await send({"type": "http.response.body", "body": chunk, "more_body": remaining > 0})

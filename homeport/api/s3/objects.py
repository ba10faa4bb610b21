"""Object operations: PutObject, GetObject, HeadObject, DeleteObject, DeleteObjects, CopyObject.

Bodies are streamed: an upload goes chunk by chunk into a temp file of the store (hashed and
written in worker threads) and is published with one rename once every checksum matched; a
download is read from the open file in 1 MiB pieces, so neither is ever held in memory.
"""

from __future__ import annotations

import contextlib

from starlette.concurrency import run_in_threadpool

from homeport.api.runtime_api import Send
from homeport.api.s3 import xml
from homeport.api.s3.buckets import require_bucket
from homeport.api.s3.context import S3Context, object_uri
from homeport.api.s3.errors import (
    S3Error,
    entity_too_large,
    invalid_argument,
    invalid_request,
    malformed_xml,
    no_such_key,
    not_implemented,
)
from homeport.api.s3.headers import (
    attributes_from,
    byte_range,
    copy_source,
    not_modified,
    object_headers,
    override_headers,
)
from homeport.api.s3.payload import Payload
from homeport.api.s3.request import S3Request
from homeport.api.s3.response import send_file, send_response, send_xml
from homeport.errors import NoSuchObject, ObjectStoreError
from homeport.storage.base import InvalidObjectName, NoSuchBucket, ObjectInfo, S3Uri

MAX_PUT_SIZE = 5 * 1024**3  # S3's largest single PUT (and part)
MAX_DELETE_KEYS = 1000
_DELETE_BODY_LIMIT = 4 * 1024 * 1024


def check_size(request: S3Request) -> None:
    """A body's announced size: present (S3's 411 MissingContentLength) and at most 5 GiB."""
    chunked = "chunked" in request.headers.get("transfer-encoding", "").lower()
    if "content-length" not in request.headers and not chunked:
        raise S3Error("MissingContentLength", "You must provide the Content-Length HTTP header.", 411)
    for name in ("x-amz-decoded-content-length", "content-length"):
        value = request.headers.get(name)
        if value is not None and value.isdigit() and int(value) > MAX_PUT_SIZE:
            raise entity_too_large(MAX_PUT_SIZE)


def _check_version(request: S3Request) -> None:
    version = request.query.get("versionId")
    if version is not None and version != "null":
        raise invalid_argument("Invalid version id specified", "versionId", version)


async def put_object(ctx: S3Context, request: S3Request, send: Send) -> None:
    check_size(request)
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None and if_none_match.strip() != "*":
        raise not_implemented("If-None-Match other than '*' on PutObject")
    if "if-match" in request.headers:
        raise not_implemented("If-Match on PutObject")
    attributes = attributes_from(request.headers)
    payload = Payload(request)
    writer = await run_in_threadpool(ctx.objects.writer, object_uri(request), attributes)
    try:
        echoed = await payload.stream_to(writer.write)
        info = await run_in_threadpool(lambda: writer.commit(if_absent=if_none_match is not None))
    finally:
        writer.abort()  # no-op once committed
    await send_response(send, request, 200, [(b"etag", xml.quoted(info.etag).encode()), *echoed])


async def get_object(ctx: S3Context, request: S3Request, send: Send) -> None:
    _check_version(request)
    handle, info, attributes = await run_in_threadpool(ctx.objects.open_object, object_uri(request))
    try:
        headers = object_headers(info, attributes)
        if not_modified(request.headers, info):
            await send_response(send, request, 304, headers[:2])
            return
        if request.method == "GET":
            headers = override_headers(headers, request.query)
        span = byte_range(request.headers.get("range"), info.size)
        if span is None:
            await send_file(send, request, 200, headers, handle, 0, info.size)
            return
        start, end = span
        headers.append((b"content-range", f"bytes {start}-{end}/{info.size}".encode()))
        await send_file(send, request, 206, headers, handle, start, end - start + 1)
    finally:
        handle.close()


async def delete_object(ctx: S3Context, request: S3Request, send: Send) -> None:
    _check_version(request)
    await require_bucket(ctx, request)
    # A key no object can have here is deleted successfully, as any absent key is.
    with contextlib.suppress(InvalidObjectName):
        await run_in_threadpool(ctx.objects.delete, object_uri(request))
    await send_response(send, request, 204)


async def delete_objects(ctx: S3Context, request: S3Request, send: Send) -> None:
    body = await Payload(request).read_all(_DELETE_BODY_LIMIT)
    root = xml.parse(body, "Delete")
    quiet = (xml.text(root, "Quiet") or "").strip().lower() == "true"
    keys = []
    for element in root.findall("Object"):
        key = xml.text(element, "Key")
        if not key:
            raise malformed_xml()
        keys.append((key, xml.text(element, "VersionId")))
    if not keys or len(keys) > MAX_DELETE_KEYS:
        raise malformed_xml()
    await require_bucket(ctx, request)

    def delete_all() -> list[tuple[str, str | None, S3Error | None]]:
        results: list[tuple[str, str | None, S3Error | None]] = []
        for key, version in keys:
            if version is not None and version != "null":
                results.append((key, version, invalid_argument("Invalid version id specified")))
                continue
            try:
                ctx.objects.delete(S3Uri(request.bucket, key))
            except InvalidObjectName:
                pass
            except ObjectStoreError as exc:
                results.append((key, version, S3Error("InternalError", exc.message, 500)))
                continue
            results.append((key, version, None))
        return results

    result = xml.document("DeleteResult")
    for key, version, error in await run_in_threadpool(delete_all):
        if error is None:
            if not quiet:
                deleted = xml.add(result, "Deleted")
                xml.add(deleted, "Key", key)
                if version is not None:
                    xml.add(deleted, "VersionId", version)
        else:
            failed = xml.add(result, "Error")
            xml.add(failed, "Key", key)
            if version is not None:
                xml.add(failed, "VersionId", version)
            xml.add(failed, "Code", error.code)
            xml.add(failed, "Message", error.message)
    await send_xml(send, request, result)


async def copy_object(ctx: S3Context, request: S3Request, send: Send) -> None:
    source = copy_source(request.headers)
    dest = object_uri(request)
    directive = request.headers.get("x-amz-metadata-directive", "COPY").upper()
    if directive not in ("COPY", "REPLACE"):
        raise invalid_argument("Unknown metadata directive.", "x-amz-metadata-directive", directive)
    if source == dest and directive == "COPY":
        raise invalid_request(
            "This copy request is illegal because it is trying to copy an object to itself without "
            "changing the object's metadata, storage class, website redirect location or encryption "
            "attributes."
        )
    attributes = attributes_from(request.headers) if directive == "REPLACE" else None
    await require_bucket(ctx, request)

    def check(info: ObjectInfo) -> None:
        if not_modified(request.headers, info, prefix="x-amz-copy-source-"):
            raise S3Error(
                "PreconditionFailed",
                "At least one of the pre-conditions you specified did not hold",
                412,
                Condition="x-amz-copy-source-If-None-Match/If-Modified-Since",
            )

    try:
        info = await run_in_threadpool(ctx.objects.copy_object, source, dest, attributes, check)
    except NoSuchBucket:
        raise S3Error(
            "NoSuchBucket", "The specified bucket does not exist", 404, BucketName=source.bucket
        ) from None
    except NoSuchObject:
        raise no_such_key(source.bucket, source.key) from None
    result = xml.document("CopyObjectResult")
    xml.add(result, "LastModified", xml.iso8601(info.last_modified))
    xml.add(result, "ETag", xml.quoted(info.etag))
    await send_xml(send, request, result)

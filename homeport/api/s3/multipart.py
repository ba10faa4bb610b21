"""Multipart uploads: CreateMultipartUpload, UploadPart, UploadPartCopy, CompleteMultipartUpload,
AbortMultipartUpload, ListParts, ListMultipartUploads.

Parts live in a hidden staging folder of the bucket (never listed); completing joins them into
one temp file and publishes it with one rename. The object's ETag is S3's: the md5 of the
parts' binary md5s, then "-<part count>".
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool

from homeport.api.runtime_api import Send
from homeport.api.s3 import xml
from homeport.api.s3.buckets import require_bucket
from homeport.api.s3.context import S3Context, object_uri
from homeport.api.s3.errors import (
    S3Error,
    invalid_argument,
    malformed_xml,
    no_such_key,
)
from homeport.api.s3.headers import attributes_from, copy_range, copy_source, not_modified
from homeport.api.s3.listing import Encoding, max_keys
from homeport.api.s3.objects import check_size
from homeport.api.s3.payload import Payload
from homeport.api.s3.request import S3Request
from homeport.api.s3.response import send_response, send_xml
from homeport.errors import NoSuchObject
from homeport.storage.base import NoSuchBucket, PartInfo, UploadInfo
from homeport.storage.local import MAX_PART_NUMBER

_COMPLETE_BODY_LIMIT = 8 * 1024 * 1024


def _part_number(request: S3Request) -> int:
    value = request.query.get("partNumber", "")
    if not value.isdigit() or not 1 <= int(value) <= MAX_PART_NUMBER:
        raise invalid_argument(
            f"Part number must be an integer between 1 and {MAX_PART_NUMBER}, inclusive", "partNumber", value
        )
    return int(value)


def _upload_id(request: S3Request) -> str:
    return request.query.get("uploadId", "")


async def create_multipart_upload(ctx: S3Context, request: S3Request, send: Send) -> None:
    attributes = attributes_from(request.headers)
    upload = await run_in_threadpool(ctx.objects.create_upload, object_uri(request), attributes)
    root = xml.document("InitiateMultipartUploadResult")
    xml.add(root, "Bucket", request.bucket)
    xml.add(root, "Key", request.key)
    xml.add(root, "UploadId", upload.upload_id)
    await send_xml(send, request, root)


async def upload_part(ctx: S3Context, request: S3Request, send: Send) -> None:
    number = _part_number(request)
    check_size(request)
    payload = Payload(request)
    writer = await run_in_threadpool(
        ctx.objects.part_writer, object_uri(request), _upload_id(request), number
    )
    try:
        echoed = await payload.stream_to(writer.write)
        part = await run_in_threadpool(writer.commit)
    finally:
        writer.abort()
    await send_response(send, request, 200, [(b"etag", xml.quoted(part.etag).encode()), *echoed])


async def upload_part_copy(ctx: S3Context, request: S3Request, send: Send) -> None:
    number = _part_number(request)
    source = copy_source(request.headers)
    uri, upload_id = object_uri(request), _upload_id(request)

    def copy() -> PartInfo:
        try:
            handle, info, _ = ctx.objects.open_object(source)
        except NoSuchBucket:
            raise S3Error(
                "NoSuchBucket", "The specified bucket does not exist", 404, BucketName=source.bucket
            ) from None
        except NoSuchObject:
            raise no_such_key(source.bucket, source.key) from None
        with handle:
            if not_modified(request.headers, info, prefix="x-amz-copy-source-"):
                raise S3Error(
                    "PreconditionFailed", "At least one of the pre-conditions you specified did not hold", 412
                )
            start, length = copy_range(request.headers.get("x-amz-copy-source-range"), info.size)
            writer = ctx.objects.part_writer(uri, upload_id, number)
            with writer:
                handle.seek(start)
                writer.copy_from(handle, length)
                return writer.commit()

    part = await run_in_threadpool(copy)
    root = xml.document("CopyPartResult")
    xml.add(root, "LastModified", xml.iso8601(part.last_modified))
    xml.add(root, "ETag", xml.quoted(part.etag))
    await send_xml(send, request, root)


async def complete_multipart_upload(ctx: S3Context, request: S3Request, send: Send) -> None:
    body = await Payload(request).read_all(_COMPLETE_BODY_LIMIT)
    root = xml.parse(body, "CompleteMultipartUpload")
    parts: list[tuple[int, str]] = []
    for element in root.findall("Part"):
        number, etag = xml.text(element, "PartNumber"), xml.text(element, "ETag")
        if number is None or not number.strip().isdigit() or etag is None:
            raise malformed_xml()
        parts.append((int(number), etag))
    if not parts:
        raise malformed_xml()
    info = await run_in_threadpool(
        ctx.objects.complete_upload, object_uri(request), _upload_id(request), parts
    )
    result = xml.document("CompleteMultipartUploadResult")
    xml.add(result, "Location", f"{request.base_url}/{request.bucket}/{request.key}")
    xml.add(result, "Bucket", request.bucket)
    xml.add(result, "Key", request.key)
    xml.add(result, "ETag", xml.quoted(info.etag))
    await send_xml(send, request, result)


async def abort_multipart_upload(ctx: S3Context, request: S3Request, send: Send) -> None:
    await run_in_threadpool(ctx.objects.abort_upload, object_uri(request), _upload_id(request))
    await send_response(send, request, 204)


def _add_people(parent: xml.Element) -> None:
    xml.add_owner(parent, "Initiator")
    xml.add_owner(parent, "Owner")


async def list_parts(ctx: S3Context, request: S3Request, send: Send) -> None:
    upload_id = _upload_id(request)
    marker_text = request.query.get("part-number-marker", "0") or "0"
    if not marker_text.isdigit():
        raise invalid_argument("part-number-marker must be a number", "part-number-marker", marker_text)
    marker = int(marker_text)
    count = max_keys(request, "max-parts")
    upload, parts = await run_in_threadpool(ctx.objects.list_parts, object_uri(request), upload_id)
    remaining = [part for part in parts if part.number > marker]
    shown, truncated = remaining[:count], len(remaining) > count
    root = xml.document("ListPartsResult")
    xml.add(root, "Bucket", request.bucket)
    xml.add(root, "Key", upload.key)
    xml.add(root, "UploadId", upload.upload_id)
    _add_people(root)
    xml.add(root, "StorageClass", "STANDARD")
    xml.add(root, "PartNumberMarker", marker)
    xml.add(root, "NextPartNumberMarker", shown[-1].number if shown else marker)
    xml.add(root, "MaxParts", count)
    xml.add(root, "IsTruncated", truncated)
    for part in shown:
        element = xml.add(root, "Part")
        xml.add(element, "PartNumber", part.number)
        xml.add(element, "LastModified", xml.iso8601(part.last_modified))
        xml.add(element, "ETag", xml.quoted(part.etag))
        xml.add(element, "Size", part.size)
    await send_xml(send, request, root)


async def list_multipart_uploads(ctx: S3Context, request: S3Request, send: Send) -> None:
    query = request.query
    encode = Encoding(request)
    prefix, delimiter = query.get("prefix", ""), query.get("delimiter", "")
    key_marker, id_marker = query.get("key-marker", ""), query.get("upload-id-marker", "")
    count = max_keys(request, "max-uploads")
    await require_bucket(ctx, request)
    uploads = await run_in_threadpool(ctx.objects.list_uploads, request.bucket)
    candidates = [upload for upload in uploads if upload.key.startswith(prefix)]
    if key_marker:
        # After the marker key; with an upload-id-marker also the marker key's later uploads.
        at = next(
            (
                i
                for i, u in enumerate(candidates)
                if id_marker and (u.key, u.upload_id) == (key_marker, id_marker)
            ),
            None,
        )
        candidates = [
            u
            for i, u in enumerate(candidates)
            if u.key > key_marker or (at is not None and u.key == key_marker and i > at)
        ]
    entries: list[UploadInfo | str] = []
    for upload in candidates:
        if delimiter:
            cut = upload.key.find(delimiter, len(prefix))
            if cut >= 0:
                common = upload.key[: cut + len(delimiter)]
                if common != key_marker and (not entries or entries[-1] != common):
                    entries.append(common)
                continue
        entries.append(upload)
    shown, truncated = entries[:count], len(entries) > count
    root = xml.document("ListMultipartUploadsResult")
    xml.add(root, "Bucket", request.bucket)
    xml.add(root, "KeyMarker", encode(key_marker))
    xml.add(root, "UploadIdMarker", id_marker)
    if truncated and shown:
        last = shown[-1]
        xml.add(root, "NextKeyMarker", encode(last if isinstance(last, str) else last.key))
        xml.add(root, "NextUploadIdMarker", "" if isinstance(last, str) else last.upload_id)
    if delimiter:
        xml.add(root, "Delimiter", encode(delimiter))
    xml.add(root, "Prefix", encode(prefix))
    xml.add(root, "MaxUploads", count)
    xml.add(root, "IsTruncated", truncated)
    if encode.type:
        xml.add(root, "EncodingType", encode.type)
    for entry in shown:
        if isinstance(entry, str):
            continue
        element = xml.add(root, "Upload")
        xml.add(element, "Key", encode(entry.key))
        xml.add(element, "UploadId", entry.upload_id)
        _add_people(element)
        xml.add(element, "StorageClass", "STANDARD")
        xml.add(element, "Initiated", xml.iso8601(entry.initiated))
    for entry in shown:
        if isinstance(entry, str):
            xml.add(xml.add(root, "CommonPrefixes"), "Prefix", encode(entry))
    await send_xml(send, request, root)

"""ListObjectsV2 and ListObjects (v1): prefix, delimiter (CommonPrefixes), max-keys, paging
(continuation tokens, start-after, marker), fetch-owner, and encoding-type=url.

The store yields keys and common prefixes in key order after a given string; a page's last
entry is where the next page starts, so a continuation token is that entry, base64url-encoded.
"""

from __future__ import annotations

import base64
import binascii
from itertools import islice
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool

from homeport.api.runtime_api import Send
from homeport.api.s3 import xml
from homeport.api.s3.context import S3Context
from homeport.api.s3.errors import invalid_argument
from homeport.api.s3.request import S3Request
from homeport.api.s3.response import send_xml
from homeport.storage.base import ObjectInfo

MAX_KEYS = 1000

Entries = list[ObjectInfo | str]


def encode_token(marker: str) -> str:
    return base64.urlsafe_b64encode(marker.encode("utf-8", "surrogateescape")).decode()


def decode_token(token: str) -> str:
    try:
        raw = base64.b64decode(token.encode("ascii"), altchars=b"-_", validate=True)
        return raw.decode("utf-8", "surrogateescape")
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise invalid_argument(
            "The continuation token provided is incorrect", "continuation-token", token
        ) from None


def max_keys(request: S3Request, name: str = "max-keys", limit: int = MAX_KEYS) -> int:
    value = request.query.get(name)
    if value is None or value == "":
        return limit
    try:
        number = int(value)
    except ValueError:
        raise invalid_argument(
            f"Provided {name} not an integer or within integer range", name, value
        ) from None
    if number < 0:
        raise invalid_argument(f"Argument {name} must be an integer between 0 and 2147483647", name, value)
    return min(number, limit)


class Encoding:
    """encoding-type=url: names in the response are URL-encoded (clients decode them)."""

    def __init__(self, request: S3Request) -> None:
        self.type = request.query.get("encoding-type")
        if self.type is not None and self.type != "url":
            raise invalid_argument("Invalid Encoding Method specified in Request", "encoding-type", self.type)

    def __call__(self, value: str) -> str:
        return quote(value, safe="/", errors="surrogateescape") if self.type else value


def page(
    ctx: S3Context, bucket: str, prefix: str, delimiter: str, after: str, count: int
) -> tuple[Entries, bool]:
    """Up to ``count`` entries after ``after``, and whether more follow (runs in a worker thread)."""
    entries = list(islice(ctx.objects.list_entries(bucket, prefix, delimiter, after), count + 1))
    return entries[:count], len(entries) > count


def _add_entries(root: xml.Element, entries: Entries, encode: Encoding, owner: bool) -> None:
    prefixes = []
    for entry in entries:
        if isinstance(entry, str):
            prefixes.append(entry)
            continue
        contents = xml.add(root, "Contents")
        xml.add(contents, "Key", encode(entry.key))
        xml.add(contents, "LastModified", xml.iso8601(entry.last_modified))
        xml.add(contents, "ETag", xml.quoted(entry.etag))
        xml.add(contents, "Size", entry.size)
        xml.add(contents, "StorageClass", "STANDARD")
        if owner:
            xml.add_owner(contents)
    for prefix in prefixes:
        xml.add(xml.add(root, "CommonPrefixes"), "Prefix", encode(prefix))


def _marker(entry: ObjectInfo | str) -> str:
    return entry if isinstance(entry, str) else entry.key


async def list_objects_v2(ctx: S3Context, request: S3Request, send: Send) -> None:
    query = request.query
    encode = Encoding(request)
    prefix, delimiter = query.get("prefix", ""), query.get("delimiter", "")
    count = max_keys(request)
    token = query.get("continuation-token")
    start_after = query.get("start-after", "")
    after = decode_token(token) if token is not None else start_after
    entries, truncated = await run_in_threadpool(page, ctx, request.bucket, prefix, delimiter, after, count)
    root = xml.document("ListBucketResult")
    xml.add(root, "Name", request.bucket)
    xml.add(root, "Prefix", encode(prefix))
    if delimiter:
        xml.add(root, "Delimiter", encode(delimiter))
    xml.add(root, "MaxKeys", count)
    if encode.type:
        xml.add(root, "EncodingType", encode.type)
    xml.add(root, "KeyCount", len(entries))
    xml.add(root, "IsTruncated", truncated)
    if token is not None:
        xml.add(root, "ContinuationToken", token)
    if truncated and entries:
        xml.add(root, "NextContinuationToken", encode_token(_marker(entries[-1])))
    if "start-after" in query:
        xml.add(root, "StartAfter", encode(start_after))
    _add_entries(root, entries, encode, query.get("fetch-owner") == "true")
    await send_xml(send, request, root)


async def list_objects(ctx: S3Context, request: S3Request, send: Send) -> None:
    query = request.query
    encode = Encoding(request)
    prefix, delimiter = query.get("prefix", ""), query.get("delimiter", "")
    marker = query.get("marker", "")
    count = max_keys(request)
    entries, truncated = await run_in_threadpool(page, ctx, request.bucket, prefix, delimiter, marker, count)
    root = xml.document("ListBucketResult")
    xml.add(root, "Name", request.bucket)
    xml.add(root, "Prefix", encode(prefix))
    xml.add(root, "Marker", encode(marker))
    # S3 sends NextMarker only with a delimiter; without one, clients use the last key.
    if truncated and delimiter and entries:
        xml.add(root, "NextMarker", encode(_marker(entries[-1])))
    xml.add(root, "MaxKeys", count)
    if delimiter:
        xml.add(root, "Delimiter", encode(delimiter))
    xml.add(root, "IsTruncated", truncated)
    if encode.type:
        xml.add(root, "EncodingType", encode.type)
    _add_entries(root, entries, encode, owner=True)
    await send_xml(send, request, root)

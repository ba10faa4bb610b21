"""HTTP headers of objects: attributes taken from a write, headers of a read, conditional
requests (If-Match & co.), byte ranges, and the copy source of CopyObject/UploadPartCopy."""

from __future__ import annotations

import email.utils
import re
from collections.abc import Mapping
from urllib.parse import unquote

from homeport.api.s3 import xml
from homeport.api.s3.errors import (
    S3Error,
    invalid_argument,
    invalid_range,
    metadata_too_large,
    precondition_failed,
)
from homeport.storage.base import ObjectAttributes, ObjectInfo, S3Uri

META_PREFIX = "x-amz-meta-"
# Standard headers S3 stores with an object and returns on GET/HEAD.
STORED_HEADERS = ("cache-control", "content-disposition", "content-encoding", "content-language", "expires")
DEFAULT_CONTENT_TYPE = "binary/octet-stream"
MAX_METADATA_BYTES = 2048
# GET parameters that override a response header, as S3's response-* query parameters do.
RESPONSE_OVERRIDES = {
    "response-content-type": "content-type",
    "response-content-language": "content-language",
    "response-expires": "expires",
    "response-cache-control": "cache-control",
    "response-content-disposition": "content-disposition",
    "response-content-encoding": "content-encoding",
}
_RANGE = re.compile(r"bytes=(\d*)-(\d*)\Z")


def attributes_from(headers: Mapping[str, str]) -> ObjectAttributes:
    """Content-Type, x-amz-meta-* and the stored standard headers of a write request."""
    metadata = {
        name[len(META_PREFIX) :]: value for name, value in headers.items() if name.startswith(META_PREFIX)
    }
    if sum(len(name) + len(value) for name, value in metadata.items()) > MAX_METADATA_BYTES:
        raise metadata_too_large()
    stored = {}
    for name in STORED_HEADERS:
        value = headers.get(name)
        if value is None:
            continue
        if name == "content-encoding":  # aws-chunked describes the transfer, not the object
            value = ",".join(
                part for part in (p.strip() for p in value.split(",")) if part and part != "aws-chunked"
            )
            if not value:
                continue
        stored[name] = value
    return ObjectAttributes(headers.get("content-type"), metadata, stored)


def object_headers(info: ObjectInfo, attributes: ObjectAttributes) -> list[tuple[bytes, bytes]]:
    headers = [
        (b"etag", xml.quoted(info.etag).encode()),
        (b"last-modified", xml.http_date(info.last_modified).encode()),
        (b"accept-ranges", b"bytes"),
        (b"content-type", (attributes.content_type or DEFAULT_CONTENT_TYPE).encode("latin-1", "replace")),
    ]
    for name, value in attributes.headers.items():
        headers.append((name.encode("latin-1", "replace"), value.encode("latin-1", "replace")))
    for name, value in attributes.metadata.items():
        headers.append(
            ((META_PREFIX + name).encode("latin-1", "replace"), value.encode("latin-1", "replace"))
        )
    return headers


def override_headers(
    headers: list[tuple[bytes, bytes]], query: Mapping[str, str]
) -> list[tuple[bytes, bytes]]:
    """Apply GetObject's response-* query parameters."""
    overrides = {
        target.encode(): query[param] for param, target in RESPONSE_OVERRIDES.items() if param in query
    }
    if not overrides:
        return headers
    kept = [(name, value) for name, value in headers if name not in overrides]
    return kept + [(name, value.encode("latin-1", "replace")) for name, value in overrides.items()]


def _etags(value: str) -> set[str]:
    return {part.strip().removeprefix("W/").strip('"') for part in value.split(",") if part.strip()}


def _date(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _matches(value: str, etag: str) -> bool:
    tags = _etags(value)
    return "*" in tags or etag in tags


def not_modified(headers: Mapping[str, str], info: ObjectInfo, prefix: str = "") -> bool:
    """Evaluate If-Match/If-Unmodified-Since (412 PreconditionFailed) and If-None-Match/
    If-Modified-Since (True: answer 304) as S3 does; ``prefix`` "x-amz-copy-source-" for copies."""
    modified = int(info.last_modified)
    if_match = headers.get(prefix + "if-match")
    if if_match is not None:
        if not _matches(if_match, info.etag):
            raise precondition_failed(f"{prefix}If-Match")
    else:
        since = _date(headers.get(prefix + "if-unmodified-since"))
        if since is not None and modified > since:
            raise precondition_failed(f"{prefix}If-Unmodified-Since")
    if_none_match = headers.get(prefix + "if-none-match")
    if if_none_match is not None:
        return _matches(if_none_match, info.etag)
    since = _date(headers.get(prefix + "if-modified-since"))
    return since is not None and modified <= since


def byte_range(value: str | None, size: int) -> tuple[int, int] | None:
    """(start, inclusive end) of a ``Range: bytes=a-b | a- | -n`` header, or None for the whole
    object (no header, or one S3 ignores: several ranges, bad syntax); InvalidRange (416) when
    no byte of the object is in it."""
    if not value:
        return None
    match = _RANGE.match(value.strip())
    if match is None or not (match[1] or match[2]):
        return None
    if match[1]:
        start = int(match[1])
        end = int(match[2]) if match[2] else size - 1
        if match[2] and end < start:
            return None
        if start >= size:
            raise invalid_range(size, value)
        return start, min(end, size - 1)
    suffix = int(match[2])
    if suffix == 0 or size == 0:
        raise invalid_range(size, value)
    return max(0, size - suffix), size - 1


def copy_source(headers: Mapping[str, str]) -> S3Uri:
    """The ``x-amz-copy-source`` header: ``[/]bucket/key[?versionId=null]``, URL-encoded."""
    raw = headers.get("x-amz-copy-source", "")
    path, _, params = raw.partition("?")
    if params:
        version = params.removeprefix("versionId=")
        if version == params or version != "null":
            raise invalid_argument(
                "Versioning is not supported by Homeport's S3 API.", "x-amz-copy-source", raw
            )
    bucket, _, key = unquote(path).removeprefix("/").partition("/")
    if not bucket or not key:
        raise invalid_argument(
            "Copy Source must mention the source bucket and key: sourcebucket/sourcekey",
            "x-amz-copy-source",
            raw,
        )
    return S3Uri(bucket, key)


def copy_range(value: str | None, size: int) -> tuple[int, int]:
    """UploadPartCopy's ``x-amz-copy-source-range: bytes=a-b`` -> (start, length)."""
    if value is None:
        return 0, size
    match = _RANGE.match(value.strip())
    if (
        match is None
        or not match[1]
        or not match[2]
        or int(match[2]) < int(match[1])
        or int(match[2]) >= size
    ):
        raise S3Error(
            "InvalidArgument",
            f"Range specified is not valid for source object of size: {size}",
            400,
            ArgumentName="x-amz-copy-source-range",
            ArgumentValue=value,
        )
    start, end = int(match[1]), int(match[2])
    return start, end - start + 1

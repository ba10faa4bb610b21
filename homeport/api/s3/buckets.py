"""Bucket operations: ListBuckets, CreateBucket, HeadBucket, DeleteBucket, GetBucketLocation."""

from __future__ import annotations

import re

from starlette.concurrency import run_in_threadpool

from homeport.api.runtime_api import Send
from homeport.api.s3 import xml
from homeport.api.s3.context import S3Context
from homeport.api.s3.errors import (
    bucket_already_owned,
    invalid_argument,
    invalid_bucket_name,
    no_such_bucket,
)
from homeport.api.s3.payload import Payload
from homeport.api.s3.request import S3Request
from homeport.api.s3.response import send_response, send_xml
from homeport.storage.base import BucketAlreadyExists

_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\Z")
_IP_ADDRESS = re.compile(r"\d+\.\d+\.\d+\.\d+\Z")
_SMALL_BODY = 64 * 1024


def valid_new_bucket_name(name: str) -> bool:
    """S3's naming rules for new general-purpose buckets."""
    return (
        _BUCKET_NAME.match(name) is not None
        and ".." not in name
        and ".-" not in name
        and "-." not in name
        and not _IP_ADDRESS.match(name)
        and not name.startswith(("xn--", "sthree-"))
        and not name.endswith(("-s3alias", "--ol-s3"))
    )


async def require_bucket(ctx: S3Context, request: S3Request) -> None:
    if not await run_in_threadpool(ctx.objects.bucket_exists, request.bucket):
        raise no_such_bucket(request.bucket)


async def list_buckets(ctx: S3Context, request: S3Request, send: Send) -> None:
    buckets = await run_in_threadpool(ctx.objects.list_buckets)
    prefix = request.query.get("prefix", "")
    after = request.query.get("continuation-token", "")
    buckets = [b for b in buckets if b.name.startswith(prefix) and b.name > after]
    limit = request.query.get("max-buckets")
    truncated = False
    if limit is not None:
        try:
            count = int(limit)
        except ValueError:
            raise invalid_argument("max-buckets must be a number", "max-buckets", limit) from None
        if not 1 <= count <= 10000:
            raise invalid_argument("max-buckets must be between 1 and 10000", "max-buckets", limit)
        truncated = len(buckets) > count
        buckets = buckets[:count]
    root = xml.document("ListAllMyBucketsResult")
    xml.add_owner(root)
    listed = xml.add(root, "Buckets")
    for bucket in buckets:
        entry = xml.add(listed, "Bucket")
        xml.add(entry, "Name", bucket.name)
        xml.add(entry, "CreationDate", xml.iso8601(bucket.created))
        xml.add(entry, "BucketRegion", ctx.region)
    if truncated:
        xml.add(root, "ContinuationToken", buckets[-1].name)
    if prefix:
        xml.add(root, "Prefix", prefix)
    await send_xml(send, request, root)


async def create_bucket(ctx: S3Context, request: S3Request, send: Send) -> None:
    if not valid_new_bucket_name(request.bucket):
        raise invalid_bucket_name(request.bucket)
    body = await Payload(request).read_all(_SMALL_BODY)
    if body.strip():
        config = xml.parse(body, "CreateBucketConfiguration")
        xml.text(config, "LocationConstraint")  # any location is accepted: there is one store
    try:
        await run_in_threadpool(lambda: ctx.objects.create_bucket(request.bucket, exist_ok=False))
    except BucketAlreadyExists:
        raise bucket_already_owned(request.bucket) from None
    await send_response(send, request, 200, [(b"location", f"/{request.bucket}".encode())])


async def head_bucket(ctx: S3Context, request: S3Request, send: Send) -> None:
    await require_bucket(ctx, request)
    await send_response(send, request, 200, [(b"x-amz-bucket-region", ctx.region.encode())])


async def delete_bucket(ctx: S3Context, request: S3Request, send: Send) -> None:
    await run_in_threadpool(ctx.objects.delete_bucket, request.bucket)
    await send_response(send, request, 204)


async def get_bucket_location(ctx: S3Context, request: S3Request, send: Send) -> None:
    await require_bucket(ctx, request)
    root = xml.document("LocationConstraint")
    if ctx.region != "us-east-1":  # S3 answers an empty constraint for us-east-1
        root.text = ctx.region
    await send_xml(send, request, root)

"""The S3 ASGI application and the dispatcher that puts it beside the SageMaker API.

``build_s3_app(objects, region)`` serves S3's REST API (path-style ``/{bucket}/{key}`` and
virtual-hosted ``{bucket}.localhost``) over a LocalObjectStore. ``with_s3(app, s3_app)`` sends
the HTTP requests signed for the "s3" service (SigV4 credential scope) to ``s3_app`` and all
others, lifespan events included, to ``app``. Signatures are not verified: any credentials are
accepted, as everywhere in Homeport.

Every answer carries ``x-amz-request-id`` and a Content-Length; errors use S3's XML shape,
except on HEAD, where S3 sends the status alone.
"""

from __future__ import annotations

import logging

from homeport.api import sigv4
from homeport.api.runtime_api import ASGIApp, Message, Receive, Scope, Send
from homeport.api.s3 import buckets, listing, multipart, objects
from homeport.api.s3.context import Handler, S3Context
from homeport.api.s3.errors import (
    S3Error,
    bucket_already_owned,
    bucket_not_empty,
    entity_too_small,
    internal_error,
    invalid_argument,
    invalid_part,
    invalid_part_order,
    no_such_bucket,
    no_such_key,
    no_such_upload,
    precondition_failed,
)
from homeport.api.s3.payload import ClientGone
from homeport.api.s3.request import S3Request, new_request_id, parse_request
from homeport.api.s3.response import ObjectShrank, send_error
from homeport.api.s3.routing import resolve
from homeport.errors import NoSuchObject, ObjectStoreError
from homeport.storage.base import (
    BucketAlreadyExists,
    BucketNotEmpty,
    EntityTooSmall,
    InvalidObjectName,
    InvalidPart,
    InvalidPartOrder,
    KeyConflict,
    NoSuchBucket,
    NoSuchUpload,
    PreconditionFailed,
)
from homeport.storage.local import LocalObjectStore

log = logging.getLogger(__name__)

HANDLERS: dict[str, Handler] = {
    "ListBuckets": buckets.list_buckets,
    "CreateBucket": buckets.create_bucket,
    "HeadBucket": buckets.head_bucket,
    "DeleteBucket": buckets.delete_bucket,
    "GetBucketLocation": buckets.get_bucket_location,
    "ListObjects": listing.list_objects,
    "ListObjectsV2": listing.list_objects_v2,
    "PutObject": objects.put_object,
    "GetObject": objects.get_object,
    "HeadObject": objects.get_object,
    "DeleteObject": objects.delete_object,
    "DeleteObjects": objects.delete_objects,
    "CopyObject": objects.copy_object,
    "CreateMultipartUpload": multipart.create_multipart_upload,
    "UploadPart": multipart.upload_part,
    "UploadPartCopy": multipart.upload_part_copy,
    "CompleteMultipartUpload": multipart.complete_multipart_upload,
    "AbortMultipartUpload": multipart.abort_multipart_upload,
    "ListParts": multipart.list_parts,
    "ListMultipartUploads": multipart.list_multipart_uploads,
}


def translate(exc: ObjectStoreError, request: S3Request) -> S3Error:
    """The S3 error for an object-store error raised while serving ``request``."""
    if isinstance(exc, NoSuchBucket):
        return no_such_bucket(request.bucket)
    if isinstance(exc, NoSuchObject):
        return no_such_key(request.bucket, request.key)
    if isinstance(exc, NoSuchUpload):
        return no_such_upload(request.query.get("uploadId", ""))
    if isinstance(exc, BucketNotEmpty):
        return bucket_not_empty(request.bucket)
    if isinstance(exc, BucketAlreadyExists):
        return bucket_already_owned(request.bucket)
    if isinstance(exc, InvalidPartOrder):
        return invalid_part_order()
    if isinstance(exc, InvalidPart):
        return invalid_part(exc.message)
    if isinstance(exc, EntityTooSmall):
        return entity_too_small(exc.message)
    if isinstance(exc, PreconditionFailed):
        return precondition_failed("If-None-Match")
    if isinstance(exc, InvalidObjectName | KeyConflict):
        return invalid_argument(exc.message)
    log.error("object store error in S3 request %s: %s", request.request_id, exc.message)
    return internal_error()


class S3App:
    """The S3 REST API as a bare ASGI application (bodies streamed both ways)."""

    def __init__(self, objects: LocalObjectStore, region: str) -> None:
        self.context = S3Context(objects, region)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":  # only when served on its own
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        started = False

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        request_id, method = new_request_id(), str(scope.get("method", "GET")).upper()
        request: S3Request | None = None
        try:
            request = parse_request(scope, receive)
            request_id = request.request_id
            operation = resolve(request)
            log.debug("S3 %s %s %s (%s)", operation, request.bucket, request.key, request_id)
            await HANDLERS[operation](self.context, request, tracked_send)
        except ClientGone:
            return
        except S3Error as error:
            if not started:
                await send_error(send, request_id, method, error)
        except ObjectStoreError as exc:
            if not started and request is not None:
                await send_error(send, request_id, method, translate(exc, request))
        except OSError as exc:
            if started:  # the client went away mid-download, or the file shrank under us
                level = logging.WARNING if isinstance(exc, ObjectShrank) else logging.DEBUG
                log.log(level, "S3 request %s ended early: %s", request_id, exc)
                return
            log.exception("unhandled error in S3 request %s", request_id)
            await send_error(send, request_id, method, internal_error())
        except Exception:
            log.exception("unhandled error in S3 request %s", request_id)
            if not started:
                await send_error(send, request_id, method, internal_error())


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def build_s3_app(objects: LocalObjectStore, region: str) -> ASGIApp:
    return S3App(objects, region)


def with_s3(app: ASGIApp, s3_app: ASGIApp) -> ASGIApp:
    """``app`` with requests signed for S3 (``signing_service(scope) == "s3"``) sent to ``s3_app``."""

    return sigv4.by_signing_service(app, {"s3": s3_app})

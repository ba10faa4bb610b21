"""Which S3 operation a request is: its method, whether it names a bucket and a key, and its
sub-resource query parameters (``?uploads``, ``?uploadId=``, ``?delete``, ``?list-type=2``...).

Sub-resources of operations Homeport does not implement (ACLs, policies, tagging, versioning,
lifecycle...) are answered NotImplemented (501) naming them, never mistaken for a plain
GetObject or PutObject.
"""

from __future__ import annotations

from homeport.api.s3.errors import method_not_allowed, not_implemented
from homeport.api.s3.request import S3Request

UNSUPPORTED = (
    "accelerate",
    "acl",
    "analytics",
    "attributes",
    "cors",
    "encryption",
    "intelligent-tiering",
    "inventory",
    "legal-hold",
    "lifecycle",
    "logging",
    "metadataConfiguration",
    "metadataTable",
    "metrics",
    "notification",
    "object-lock",
    "ownershipControls",
    "partNumber",
    "policy",
    "policyStatus",
    "publicAccessBlock",
    "renameObject",
    "replication",
    "requestPayment",
    "restore",
    "retention",
    "select",
    "session",
    "tagging",
    "torrent",
    "versioning",
    "versions",
    "website",
)


def resolve(request: S3Request) -> str:
    """The operation's name (as in the S3 API reference); raises NotImplemented/MethodNotAllowed."""
    method, query = request.method, request.query
    for name in UNSUPPORTED:
        if name in query and not (name == "partNumber" and "uploadId" in query):
            raise not_implemented(f"The ?{name} sub-resource ({method})")
    if not request.bucket:
        if method == "GET":
            return "ListBuckets"
        raise method_not_allowed(method, "SERVICE")
    if not request.key:
        return _bucket_operation(request)
    return _object_operation(request)


def _bucket_operation(request: S3Request) -> str:
    method, query = request.method, request.query
    if method == "GET":
        if "location" in query:
            return "GetBucketLocation"
        if "uploads" in query:
            return "ListMultipartUploads"
        if query.get("list-type") == "2":
            return "ListObjectsV2"
        return "ListObjects"
    if method == "HEAD":
        return "HeadBucket"
    if method == "PUT":
        return "CreateBucket"
    if method == "DELETE":
        return "DeleteBucket"
    if method == "POST":
        if "delete" in query:
            return "DeleteObjects"
        raise not_implemented("POST to a bucket (browser-form uploads)")
    raise method_not_allowed(method, "BUCKET")


def _object_operation(request: S3Request) -> str:
    method, query = request.method, request.query
    copy = "x-amz-copy-source" in request.headers
    if method == "PUT":
        if "uploadId" in query or "partNumber" in query:
            return "UploadPartCopy" if copy else "UploadPart"
        return "CopyObject" if copy else "PutObject"
    if method == "GET":
        return "ListParts" if "uploadId" in query else "GetObject"
    if method == "HEAD":
        return "HeadObject"
    if method == "DELETE":
        return "AbortMultipartUpload" if "uploadId" in query else "DeleteObject"
    if method == "POST":
        if "uploads" in query:
            return "CreateMultipartUpload"
        if "uploadId" in query:
            return "CompleteMultipartUpload"
        raise not_implemented("This POST on an object")
    raise method_not_allowed(method, "OBJECT")

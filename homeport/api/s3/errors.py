"""S3's error vocabulary: each error is a code, an HTTP status, a message and extra fields.

The fields (``Key``, ``BucketName``, ``UploadId``, ...) become elements of the XML ``<Error>``
body after ``Code`` and ``Message``, as S3 sends them.
"""

from __future__ import annotations


class S3Error(Exception):
    def __init__(self, code: str, message: str, status: int, **fields: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.fields = fields
        self.headers: list[tuple[bytes, bytes]] = []


def no_such_bucket(bucket: str) -> S3Error:
    return S3Error("NoSuchBucket", "The specified bucket does not exist", 404, BucketName=bucket)


def no_such_key(bucket: str, key: str) -> S3Error:
    return S3Error("NoSuchKey", "The specified key does not exist.", 404, Key=key, BucketName=bucket)


def no_such_upload(upload_id: str) -> S3Error:
    return S3Error(
        "NoSuchUpload",
        "The specified upload does not exist. The upload ID may be invalid, or the upload may have "
        "been aborted or completed.",
        404,
        UploadId=upload_id,
    )


def bucket_not_empty(bucket: str) -> S3Error:
    return S3Error("BucketNotEmpty", "The bucket you tried to delete is not empty", 409, BucketName=bucket)


def bucket_already_owned(bucket: str) -> S3Error:
    return S3Error(
        "BucketAlreadyOwnedByYou",
        "Your previous request to create the named bucket succeeded and you already own it.",
        409,
        BucketName=bucket,
    )


def invalid_bucket_name(bucket: str) -> S3Error:
    return S3Error("InvalidBucketName", "The specified bucket is not valid.", 400, BucketName=bucket)


def invalid_argument(message: str, name: str | None = None, value: str | None = None) -> S3Error:
    fields = {}
    if name is not None:
        fields["ArgumentName"] = name
    if value is not None:
        fields["ArgumentValue"] = value
    return S3Error("InvalidArgument", message, 400, **fields)


def invalid_request(message: str) -> S3Error:
    return S3Error("InvalidRequest", message, 400)


def invalid_range(size: int, requested: str) -> S3Error:
    error = S3Error(
        "InvalidRange",
        "The requested range is not satisfiable",
        416,
        RangeRequested=requested,
        ActualObjectSize=str(size),
    )
    error.headers.append((b"content-range", f"bytes */{size}".encode()))
    return error


def method_not_allowed(method: str, resource: str) -> S3Error:
    return S3Error(
        "MethodNotAllowed",
        "The specified method is not allowed against this resource.",
        405,
        Method=method,
        ResourceType=resource,
    )


def not_implemented(what: str) -> S3Error:
    return S3Error(
        "NotImplemented",
        f"{what} is not implemented by Homeport's S3 API (see docs/s3-api.md).",
        501,
    )


def malformed_xml() -> S3Error:
    return S3Error(
        "MalformedXML",
        "The XML you provided was not well-formed or did not validate against our published schema.",
        400,
    )


def bad_digest(what: str = "Content-MD5") -> S3Error:
    return S3Error("BadDigest", f"The {what} you specified did not match what we received.", 400)


def invalid_digest() -> S3Error:
    return S3Error("InvalidDigest", "The Content-MD5 you specified is not valid.", 400)


def sha256_mismatch() -> S3Error:
    return S3Error(
        "XAmzContentSHA256Mismatch",
        "The provided 'x-amz-content-sha256' header does not match what was computed.",
        400,
    )


def incomplete_body() -> S3Error:
    return S3Error(
        "IncompleteBody",
        "You did not provide the number of bytes specified by the Content-Length HTTP header.",
        400,
    )


def invalid_part(message: str) -> S3Error:
    return S3Error(
        "InvalidPart",
        "One or more of the specified parts could not be found. The part may not have been uploaded, "
        f"or the specified entity tag may not match the part's entity tag. ({message})",
        400,
    )


def invalid_part_order() -> S3Error:
    return S3Error(
        "InvalidPartOrder",
        "The list of parts was not in ascending order. The parts list must be specified in order by "
        "part number.",
        400,
    )


def entity_too_small(message: str) -> S3Error:
    return S3Error(
        "EntityTooSmall", f"Your proposed upload is smaller than the minimum allowed size. ({message})", 400
    )


def entity_too_large(limit: int) -> S3Error:
    return S3Error(
        "EntityTooLarge",
        "Your proposed upload exceeds the maximum allowed size",
        400,
        MaxSizeAllowed=str(limit),
    )


def precondition_failed(condition: str) -> S3Error:
    return S3Error(
        "PreconditionFailed",
        "At least one of the pre-conditions you specified did not hold",
        412,
        Condition=condition,
    )


def key_too_long() -> S3Error:
    return S3Error("KeyTooLongError", "Your key is too long", 400)


def metadata_too_large() -> S3Error:
    return S3Error("MetadataTooLarge", "Your metadata headers exceed the maximum allowed metadata size.", 400)


def internal_error() -> S3Error:
    return S3Error("InternalError", "We encountered an internal error. Please try again.", 500)

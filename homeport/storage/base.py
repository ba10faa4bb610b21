"""The object-store contract every backend implements."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol

from homeport.errors import NoSuchObject, ObjectStoreError


@dataclass(frozen=True)
class S3Uri:
    bucket: str
    key: str  # may be "" (the bucket root) or a prefix

    @classmethod
    def parse(cls, uri: str) -> S3Uri:
        """Parse ``s3://bucket/key``; raises ValueError naming the problem."""
        if not uri.startswith("s3://"):
            raise ValueError(f"not an s3:// URI: {uri!r}")
        rest = uri[len("s3://") :]
        bucket, _, key = rest.partition("/")
        if not bucket:
            raise ValueError(f"missing bucket in {uri!r}")
        return cls(bucket, key)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def join(self, *parts: str) -> S3Uri:
        key = self.key
        for part in parts:
            part = part.strip("/")
            if not part:
                continue
            key = f"{key.rstrip('/')}/{part}" if key else part
        return S3Uri(self.bucket, key)


@dataclass(frozen=True)
class ObjectInfo:
    bucket: str
    key: str
    size: int
    last_modified: float  # epoch seconds
    etag: str


@dataclass(frozen=True)
class ObjectAttributes:
    """What a client stored with an object besides its bytes (S3's Content-Type and metadata).

    ``metadata`` holds user metadata by lower-case name without the ``x-amz-meta-`` prefix;
    ``headers`` the standard headers S3 keeps (content-encoding, content-disposition,
    content-language, cache-control, expires) by lower-case name.
    """

    content_type: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)

    def is_empty(self) -> bool:
        return self.content_type is None and not self.metadata and not self.headers


@dataclass(frozen=True)
class BucketInfo:
    name: str
    created: float  # epoch seconds


@dataclass(frozen=True)
class UploadInfo:
    """An in-progress multipart upload."""

    bucket: str
    key: str
    upload_id: str
    initiated: float  # epoch seconds
    attributes: ObjectAttributes


@dataclass(frozen=True)
class PartInfo:
    number: int
    size: int
    etag: str  # md5 hex of the part's bytes
    last_modified: float


class ObjectStore(Protocol):
    """Small contract: buckets, whole-object put/get, streaming read, list, head, delete."""

    def create_bucket(self, bucket: str) -> None:
        """Create the bucket; no error if it exists."""

    def bucket_exists(self, bucket: str) -> bool: ...

    def put_file(self, uri: S3Uri, path: Path) -> ObjectInfo:
        """Upload a local file atomically (readers see the old object or the whole new one)."""

    def put_bytes(self, uri: S3Uri, data: bytes) -> ObjectInfo: ...

    def get_file(self, uri: S3Uri, dest: Path) -> ObjectInfo:
        """Download to ``dest`` (parent folders created); raises NoSuchObject."""

    def open_read(self, uri: S3Uri) -> BinaryIO:
        """A streaming reader; raises NoSuchObject."""

    def head(self, uri: S3Uri) -> ObjectInfo | None: ...

    def list(self, prefix: S3Uri) -> Iterator[ObjectInfo]:
        """Every object whose key starts with ``prefix.key``, in key order."""

    def delete(self, uri: S3Uri) -> None:
        """Delete one object; no error if it is absent."""

    def local_path(self, uri: S3Uri) -> Path | None:
        """The file holding the object when the backend is a local folder, else None.

        Lets job staging hard-link or bind-mount instead of copying bytes.
        """


class InvalidObjectName(ObjectStoreError, ValueError):
    """A bucket name or key a backend cannot hold (``..`` segments, NUL, a reserved name).

    Both an ObjectStoreError (so the API edge answers it as a client error) and a ValueError
    (so callers validating user input can catch the builtin).
    """

    code = "ValidationException"
    status = 400


class NoSuchBucket(NoSuchObject):
    """The bucket does not exist (a NoSuchObject, so callers of the contract need not care)."""


class BucketNotEmpty(ObjectStoreError):
    code = "ValidationException"
    status = 400


class BucketAlreadyExists(ObjectStoreError):
    code = "ValidationException"
    status = 400


class KeyConflict(ObjectStoreError):
    """A key this store cannot hold beside another (``a`` and ``a/b``: a file cannot be a folder)."""

    code = "ValidationException"
    status = 400


class PreconditionFailed(ObjectStoreError):
    """A conditional write (create only if absent) found an object."""

    code = "ValidationException"
    status = 400


class NoSuchUpload(ObjectStoreError):
    code = "ValidationException"
    status = 400


class InvalidPart(ObjectStoreError):
    """A part named when completing an upload is missing or its ETag does not match."""

    code = "ValidationException"
    status = 400


class InvalidPartOrder(ObjectStoreError):
    code = "ValidationException"
    status = 400


class EntityTooSmall(ObjectStoreError):
    """A part other than the last is smaller than the minimum part size."""

    code = "ValidationException"
    status = 400

"""The S3 object store: any S3-compatible endpoint (AWS, MinIO, moto) through boto3.

Owns the translation of botocore errors into Homeport's: a missing key or bucket becomes
NoSuchObject, anything else ObjectStoreError with the botocore error as its cause. ETags are
returned without S3's surrounding quotes, so both backends agree on the spelling.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, cast

import boto3
from boto3.exceptions import S3UploadFailedError
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from homeport.errors import NoSuchObject, ObjectStoreError
from homeport.storage.base import ObjectInfo, S3Uri

_MISSING_CODES = frozenset({"404", "NoSuchKey", "NoSuchBucket", "NotFound"})


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _translate(exc: Exception, action: str, uri: S3Uri | str) -> ObjectStoreError:
    """The Homeport error for a boto3/botocore failure while doing ``action`` on ``uri``."""
    # upload_file wraps a ClientError into S3UploadFailedError without keeping its code.
    if isinstance(exc, S3UploadFailedError) and isinstance(exc.__context__, ClientError):
        exc = exc.__context__
    if isinstance(exc, ClientError):
        code = _code(exc)
        if code == "NoSuchBucket":
            return NoSuchObject(f"no such bucket while trying to {action} {uri}")
        if code in _MISSING_CODES:
            return NoSuchObject(f"no such object: {uri}")
        message = exc.response.get("Error", {}).get("Message", "")
        return ObjectStoreError(f"cannot {action} {uri}: S3 answered {code}: {message}")
    return ObjectStoreError(f"cannot {action} {uri}: {exc}")


def _etag(raw: str) -> str:
    return raw.strip('"')


class S3ObjectStore:
    """ObjectStore over boto3; ``local_path`` is always None."""

    def __init__(self, endpoint_url: str | None, region: str = "us-east-1", client: Any = None) -> None:
        self.region = region
        if client is None:
            # A self-hosted endpoint (MinIO, moto) rarely has per-bucket DNS names.
            config = Config(s3={"addressing_style": "path"}) if endpoint_url else None
            client = boto3.client("s3", endpoint_url=endpoint_url, region_name=region, config=config)
        self.client: Any = client

    def create_bucket(self, bucket: str) -> None:
        kwargs: dict[str, Any] = {"Bucket": bucket}
        if self.region != "us-east-1":  # us-east-1 rejects an explicit LocationConstraint
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        try:
            self.client.create_bucket(**kwargs)
        except ClientError as exc:
            if _code(exc) == "BucketAlreadyOwnedByYou":
                return
            raise _translate(exc, "create bucket", f"s3://{bucket}/") from exc
        except BotoCoreError as exc:
            raise _translate(exc, "create bucket", f"s3://{bucket}/") from exc

    def bucket_exists(self, bucket: str) -> bool:
        try:
            self.client.head_bucket(Bucket=bucket)
        except ClientError as exc:
            if _code(exc) in _MISSING_CODES:
                return False
            raise _translate(exc, "check bucket", f"s3://{bucket}/") from exc
        except BotoCoreError as exc:
            raise _translate(exc, "check bucket", f"s3://{bucket}/") from exc
        return True

    def _head_after_write(self, uri: S3Uri) -> ObjectInfo:
        info = self.head(uri)
        if info is None:  # deleted by someone else between our write and this head
            raise ObjectStoreError(f"{uri} vanished right after it was written")
        return info

    def put_file(self, uri: S3Uri, path: Path) -> ObjectInfo:
        if not Path(path).is_file():
            raise ObjectStoreError(f"cannot upload {path} to {uri}: not a readable file")
        try:
            # The transfer manager switches to a (parallel) multipart upload for big files.
            self.client.upload_file(str(path), uri.bucket, uri.key)
        except (ClientError, BotoCoreError, S3UploadFailedError) as exc:
            raise _translate(exc, "upload to", uri) from exc
        return self._head_after_write(uri)

    def put_bytes(self, uri: S3Uri, data: bytes) -> ObjectInfo:
        try:
            self.client.put_object(Bucket=uri.bucket, Key=uri.key, Body=data)
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, "write", uri) from exc
        return self._head_after_write(uri)

    def get_file(self, uri: S3Uri, dest: Path) -> ObjectInfo:
        info = self.head(uri)
        if info is None:
            raise NoSuchObject(f"no such object: {uri}")
        dest = Path(dest)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ObjectStoreError(f"cannot download {uri} to {dest}: {exc}") from exc
        try:
            # download_file writes to a temp name beside dest and renames it at the end.
            self.client.download_file(uri.bucket, uri.key, str(dest))
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, "download", uri) from exc
        except OSError as exc:
            raise ObjectStoreError(f"cannot download {uri} to {dest}: {exc}") from exc
        return info

    def open_read(self, uri: S3Uri) -> BinaryIO:
        try:
            response = self.client.get_object(Bucket=uri.bucket, Key=uri.key)
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, "read", uri) from exc
        # botocore's StreamingBody is an io.IOBase with read/readinto/close.
        return cast(BinaryIO, response["Body"])

    def head(self, uri: S3Uri) -> ObjectInfo | None:
        try:
            response = self.client.head_object(Bucket=uri.bucket, Key=uri.key)
        except ClientError as exc:
            if _code(exc) in _MISSING_CODES:
                return None
            raise _translate(exc, "head", uri) from exc
        except BotoCoreError as exc:
            raise _translate(exc, "head", uri) from exc
        return ObjectInfo(
            bucket=uri.bucket,
            key=uri.key,
            size=int(response["ContentLength"]),
            last_modified=response["LastModified"].timestamp(),
            etag=_etag(response["ETag"]),
        )

    def list(self, prefix: S3Uri) -> Iterator[ObjectInfo]:
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=prefix.bucket, Prefix=prefix.key):
                for item in page.get("Contents", []):
                    yield ObjectInfo(
                        bucket=prefix.bucket,
                        key=item["Key"],
                        size=int(item["Size"]),
                        last_modified=item["LastModified"].timestamp(),
                        etag=_etag(item["ETag"]),
                    )
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, "list", prefix) from exc

    def delete(self, uri: S3Uri) -> None:
        try:
            self.client.delete_object(Bucket=uri.bucket, Key=uri.key)
        except ClientError as exc:
            if _code(exc) in _MISSING_CODES:  # already absent, with or without its bucket
                return
            raise _translate(exc, "delete", uri) from exc
        except BotoCoreError as exc:
            raise _translate(exc, "delete", uri) from exc

    def local_path(self, uri: S3Uri) -> Path | None:
        return None

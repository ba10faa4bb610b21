"""The local-folder object store: buckets are folders under a root, objects are files.

Layout under ``root``::

    <bucket>/<key>                       the object's bytes (keys with '/' are nested folders)
    <bucket>/.homeport/tmp/              temp files of in-flight writes (same filesystem as the
                                         objects, so publishing one is an atomic os.replace)
    <bucket>/.homeport/etag/<sha1(key)>  ETag cache: "<inode> <size> <mtime_ns> <md5>"
    <bucket>/.homeport/meta/<sha1(key)>  attributes (JSON): Content-Type, user metadata, the
                                         multipart ETag, stamped with the file's (inode, size,
                                         mtime_ns); only for objects that have any
    <bucket>/.homeport/uploads/<id>/     a multipart upload: upload.json and its parts, named
                                         "<number:05>.<md5>" (id: a server-made uuid4 hex)
    <bucket>/.homeport/lock              serialises the publishing step of writes and deletes
    <bucket>/.homeport/bucket            its mtime is the bucket's creation time

ETags are the md5 hex of the content, like S3's for single-part uploads. The md5 is computed
while writing (the bytes pass through us anyway) and cached in a small sidecar file, so head()
and list() cost a stat and a tiny read, not a read of the whole object. A sidecar is trusted
only while the file's (inode, size, mtime_ns) still match; a file written around the store
(e.g. by a training job into a bind-mounted folder) is hashed once on its next head/list.
The sidecar is a cache: losing it costs one re-hash, never a wrong answer, except for an
in-place rewrite of the same size within one mtime tick, which nothing here does. A completed
multipart upload's ETag (md5 of the parts' md5s, "-<count>") cannot be recomputed from the
bytes, so it is also kept in the object's meta sidecar, which is written (and fsynced) before
the object is published, under the bucket's lock, so readers never see the object without it.

Keys a folder cannot hold faithfully are refused with InvalidObjectName: empty, absolute,
``.``/``..``/empty segments, NUL, over-long segments, or a first segment of ``.homeport``.
A key ending in '/' names a folder, never an object. S3 can hold both ``a`` and ``a/b``; a
folder cannot, and such a put fails with KeyConflict (an ObjectStoreError) naming both.
"""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import hashlib
import io
import json
import os
import re
import shutil
import stat
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from homeport.errors import NoSuchObject, ObjectStoreError
from homeport.storage.base import (
    BucketAlreadyExists,
    BucketInfo,
    BucketNotEmpty,
    EntityTooSmall,
    InvalidObjectName,
    InvalidPart,
    InvalidPartOrder,
    KeyConflict,
    NoSuchBucket,
    NoSuchUpload,
    ObjectAttributes,
    ObjectInfo,
    PartInfo,
    PreconditionFailed,
    S3Uri,
    UploadInfo,
)

RESERVED = ".homeport"
_CHUNK = 1024 * 1024
# Objects are shared with training containers that may run as another user, so they are
# world-readable regardless of the temp file's private 0600.
_OBJECT_MODE = 0o644
# A rename that loses a race with delete()'s pruning of empty folders is retried this often.
_PUBLISH_ATTEMPTS = 20
# S3's multipart limits: every part but the last is at least 5 MiB; part numbers 1..10000.
MIN_PART_SIZE = 5 * 1024 * 1024
MAX_PART_NUMBER = 10_000
_UPLOAD_ID = re.compile(r"[0-9a-f]{32}\Z")
_PART_FILE = re.compile(r"(\d{5})\.([0-9a-f]{32})\Z")
_UPLOAD_RECORD = "upload.json"


def _check_bucket(bucket: str) -> None:
    if not bucket or "/" in bucket or "\0" in bucket or bucket.startswith("."):
        raise InvalidObjectName(f"invalid bucket name {bucket!r} for a local object store")


def _key_segments(uri: S3Uri, key: str) -> list[str]:
    """Validate a key (or a folder path without its trailing '/') and split it."""
    if "\0" in key:
        raise InvalidObjectName(f"key contains NUL: {uri}")
    if key.startswith("/"):
        raise InvalidObjectName(f"absolute key {key!r} in {uri}")
    segments = key.split("/")
    for segment in segments:
        if segment in ("", ".", ".."):
            raise InvalidObjectName(f"key segment {segment!r} is not allowed in a local store: {uri}")
        if len(segment.encode("utf-8", "surrogateescape")) > 255:
            raise InvalidObjectName(f"key segment longer than 255 bytes: {uri}")
    if segments[0] == RESERVED:
        raise InvalidObjectName(f"keys under {RESERVED}/ are reserved: {uri}")
    return segments


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _key_hash(key: str) -> str:
    return hashlib.sha1(key.encode("utf-8", "surrogateescape")).hexdigest()


def _stamp(st: os.stat_result) -> list[int]:
    return [st.st_ino, st.st_size, st.st_mtime_ns]


def _reserved_dir(bucket: str, bucket_dir: Path, name: str) -> Path:
    """``<bucket>/.homeport/<name>``, made if missing; never re-creates a deleted bucket."""
    reserved = bucket_dir / RESERVED
    try:
        reserved.mkdir(exist_ok=True)
    except FileNotFoundError:
        raise NoSuchBucket(f"no such bucket {bucket!r}") from None
    directory = reserved / name
    directory.mkdir(exist_ok=True)
    return directory


def _write_file_durably(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file beside it, fsync, rename)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".w-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _attributes_of(record: dict[str, Any] | None) -> ObjectAttributes:
    if not record:
        return ObjectAttributes()
    content_type = record.get("content_type")
    metadata = record.get("metadata") or {}
    headers = record.get("headers") or {}
    return ObjectAttributes(
        content_type if isinstance(content_type, str) else None,
        {str(k): str(v) for k, v in metadata.items()} if isinstance(metadata, dict) else {},
        {str(k): str(v) for k, v in headers.items()} if isinstance(headers, dict) else {},
    )


def _attributes_record(attributes: ObjectAttributes) -> dict[str, Any]:
    return {
        "content_type": attributes.content_type,
        "metadata": dict(attributes.metadata),
        "headers": dict(attributes.headers),
    }


def multipart_etag(part_md5s: Sequence[str]) -> str:
    """S3's ETag of a multipart object: md5 of the parts' binary md5s, then "-<count>"."""
    joined = b"".join(bytes.fromhex(md5) for md5 in part_md5s)
    return f"{hashlib.md5(joined, usedforsecurity=False).hexdigest()}-{len(part_md5s)}"


class _Staged:
    """Bytes being written to a temp file that will be renamed into place (same filesystem)."""

    def __init__(self, directory: Path, prefix: str, hashing: bool = True) -> None:
        fd, name = tempfile.mkstemp(dir=directory, prefix=prefix)
        self.path = Path(name)
        self._file: BinaryIO | None = os.fdopen(fd, "wb")
        self._md5 = hashlib.md5(usedforsecurity=False) if hashing else None
        self.size = 0

    def _out(self) -> BinaryIO:
        if self._file is None:
            raise ObjectStoreError("write after the staged file was finished")
        return self._file

    def write(self, data: bytes) -> None:
        if self._md5 is not None:
            self._md5.update(data)
        self._out().write(data)
        self.size += len(data)

    def copy_from(self, source: BinaryIO, length: int | None = None) -> None:
        remaining = length
        while remaining is None or remaining > 0:
            chunk = source.read(_CHUNK if remaining is None else min(_CHUNK, remaining))
            if not chunk:
                break
            self.write(chunk)
            if remaining is not None:
                remaining -= len(chunk)
        if remaining:
            raise ObjectStoreError("the source ended early (it changed while being copied)")

    def append_file(self, path: Path) -> None:
        """Append a whole file's bytes, in the kernel where it can (no md5 is kept)."""
        if self._md5 is not None:
            raise ObjectStoreError("append_file on a hashing staged file")
        out = self._out()
        out.flush()
        with open(path, "rb") as source:
            size = os.fstat(source.fileno()).st_size
            copied = 0
            try:
                while copied < size:
                    n = os.copy_file_range(source.fileno(), out.fileno(), size - copied)
                    if n == 0:
                        break
                    copied += n
            except OSError:  # no copy_file_range across these files: copy through user space
                source.seek(copied)
                out.seek(0, os.SEEK_END)
                shutil.copyfileobj(source, out, _CHUNK)
                copied = size
            if copied != size:
                raise ObjectStoreError(f"{path.name} shrank while being copied")
        out.seek(0, os.SEEK_END)
        self.size += size

    def md5(self) -> str:
        if self._md5 is None:
            raise ObjectStoreError("md5 of a non-hashing staged file")
        return self._md5.hexdigest()

    def md5_digest(self) -> bytes:
        if self._md5 is None:
            raise ObjectStoreError("md5 of a non-hashing staged file")
        return self._md5.digest()

    def finish(self) -> os.stat_result:
        """Flush and fsync; the stat of the file (rename keeps its inode, size and mtime)."""
        out = self._out()
        out.flush()
        os.fchmod(out.fileno(), _OBJECT_MODE)
        os.fsync(out.fileno())
        st = os.fstat(out.fileno())
        out.close()
        self._file = None
        return st

    def discard(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None
        with contextlib.suppress(OSError):
            os.unlink(self.path)


class _StagedWriter:
    """Common part of ObjectWriter and PartWriter: write bytes, then commit or abort."""

    def __init__(self, staged: _Staged) -> None:
        self._staged = staged
        self._done = False

    @property
    def size(self) -> int:
        return self._staged.size

    def md5_digest(self) -> bytes:
        return self._staged.md5_digest()

    def write(self, data: bytes) -> None:
        try:
            self._staged.write(data)
        except OSError as exc:
            raise ObjectStoreError(f"cannot write: {exc}") from exc

    def copy_from(self, source: BinaryIO, length: int | None = None) -> None:
        """Copy ``source`` (all of it, or ``length`` bytes from where it stands)."""
        try:
            self._staged.copy_from(source, length)
        except OSError as exc:
            raise ObjectStoreError(f"cannot write: {exc}") from exc

    def abort(self) -> None:
        if not self._done:
            self._done = True
            self._staged.discard()

    def __enter__(self) -> _StagedWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()


class ObjectWriter(_StagedWriter):
    """A new object's bytes, staged in a temp file; commit() publishes it with one rename."""

    def __init__(
        self, store: LocalObjectStore, uri: S3Uri, path: Path, attributes: ObjectAttributes, staged: _Staged
    ) -> None:
        super().__init__(staged)
        self._store = store
        self.uri = uri
        self._path = path
        self._attributes = attributes

    def commit(self, *, if_absent: bool = False, etag: str | None = None) -> ObjectInfo:
        """Publish the object; ``if_absent``: fail with PreconditionFailed if the key exists.

        ``etag`` replaces the content md5 (a completed multipart upload's ETag).
        """
        if self._done:
            raise ObjectStoreError(f"{self.uri}: writer already committed or aborted")
        self._done = True
        uri = self.uri
        try:
            st = self._staged.finish()
            final_etag = etag if etag is not None else self._staged.md5()
            record: dict[str, Any] | None = None
            if etag is not None or not self._attributes.is_empty():
                record = {"stamp": _stamp(st), **_attributes_record(self._attributes)}
                if etag is not None:
                    record["etag"] = etag
            self._store._publish(uri, self._staged.path, self._path, record, if_absent=if_absent)
        except BaseException as exc:
            self._staged.discard()
            if isinstance(exc, OSError):
                raise ObjectStoreError(f"cannot store {uri}: {exc}") from exc
            raise
        self._store._store_etag(uri.bucket, uri.key, st, final_etag)
        return ObjectInfo(uri.bucket, uri.key, st.st_size, st.st_mtime, final_etag)


class PartWriter(_StagedWriter):
    """One part of a multipart upload, staged in the upload's folder."""

    def __init__(
        self, store: LocalObjectStore, uri: S3Uri, upload_id: str, number: int, staged: _Staged
    ) -> None:
        super().__init__(staged)
        self._store = store
        self.uri = uri
        self.upload_id = upload_id
        self.number = number

    def commit(self) -> PartInfo:
        if self._done:
            raise ObjectStoreError(f"{self.uri}: part writer already committed or aborted")
        self._done = True
        try:
            st = self._staged.finish()
            etag = self._staged.md5()
            with self._store._upload(self.uri, self.upload_id) as (directory, _):
                name = f"{self.number:05d}.{etag}"
                for old in self._store._part_files(directory).get(self.number, []):
                    if old.name != name:
                        old.unlink()
                os.replace(self._staged.path, directory / name)
            with contextlib.suppress(FileNotFoundError):
                _fsync_dir(directory)
        except BaseException as exc:
            self._staged.discard()
            if isinstance(exc, OSError):
                raise ObjectStoreError(f"cannot store part {self.number} of {self.uri}: {exc}") from exc
            raise
        return PartInfo(self.number, st.st_size, etag, st.st_mtime)


@dataclass
class _Cursor:
    """Shared with a running walk: keys starting with ``skip`` are not wanted any more."""

    skip: str = ""


class LocalObjectStore:
    """ObjectStore over a folder; safe for concurrent use by threads and processes."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.min_part_size = MIN_PART_SIZE

    # -- paths -------------------------------------------------------------------------------

    def _bucket_dir(self, bucket: str) -> Path:
        _check_bucket(bucket)
        return self.root / bucket

    def _object_path(self, uri: S3Uri) -> Path:
        """The file for a key that could name an object (not empty, not ending in '/')."""
        if not uri.key:
            raise InvalidObjectName(f"empty key: {uri}")
        return self._bucket_dir(uri.bucket).joinpath(*_key_segments(uri, uri.key))

    def _require_bucket(self, uri: S3Uri) -> Path:
        bucket_dir = self._bucket_dir(uri.bucket)
        if not bucket_dir.is_dir():
            raise NoSuchBucket(f"no such bucket {uri.bucket!r}: {uri}")
        return bucket_dir

    def _etag_path(self, bucket: str, key: str) -> Path:
        return self.root / bucket / RESERVED / "etag" / _key_hash(key)

    def _meta_path(self, bucket: str, key: str) -> Path:
        return self.root / bucket / RESERVED / "meta" / _key_hash(key)

    @contextlib.contextmanager
    def _bucket_lock(self, bucket: str) -> Iterator[None]:
        """Serialises the short publish/delete step of writers of one bucket (threads and processes)."""
        reserved = self.root / bucket / RESERVED
        path = reserved / "lock"
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except FileNotFoundError:
            reserved.mkdir(exist_ok=True)  # FileNotFoundError again when the bucket is gone
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    # -- etag cache and attributes -----------------------------------------------------------

    def _cached_etag(self, bucket: str, key: str, st: os.stat_result) -> str | None:
        try:
            fields = self._etag_path(bucket, key).read_text().split()
        except OSError:
            return None
        if len(fields) == 4 and fields[:3] == [str(st.st_ino), str(st.st_size), str(st.st_mtime_ns)]:
            return fields[3]
        return None

    def _store_etag(self, bucket: str, key: str, st: os.stat_result, etag: str) -> None:
        # Best effort: a missing or stale sidecar only costs a re-hash later.
        path = self._etag_path(bucket, key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".w-")
        except OSError:
            return
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(f"{st.st_ino} {st.st_size} {st.st_mtime_ns} {etag}\n")
            os.replace(tmp, path)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)

    def _read_meta(self, bucket: str, key: str, st: os.stat_result) -> dict[str, Any] | None:
        """The object's meta record, if there is one for exactly this file."""
        try:
            record = json.loads(self._meta_path(bucket, key).read_bytes())
        except (OSError, ValueError):
            return None
        if not isinstance(record, dict) or record.get("stamp") != _stamp(st):
            return None
        return record

    def _known_etag(self, bucket: str, key: str, st: os.stat_result) -> str | None:
        """The ETag without reading the object: the cache, else a multipart ETag in its meta."""
        etag = self._cached_etag(bucket, key, st)
        if etag is None:
            record = self._read_meta(bucket, key, st)
            stored = record.get("etag") if record else None
            if isinstance(stored, str):
                etag = stored
                self._store_etag(bucket, key, st, etag)
        return etag

    def _info(self, uri: S3Uri, path: Path) -> ObjectInfo | None:
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        etag = self._known_etag(uri.bucket, uri.key, st)
        if etag is None:
            try:
                with open(path, "rb") as handle:
                    st = os.fstat(handle.fileno())
                    etag = self._hash_open(uri, handle, st)
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                return None
        return ObjectInfo(uri.bucket, uri.key, st.st_size, st.st_mtime, etag)

    def _hash_open(self, uri: S3Uri, handle: BinaryIO, st: os.stat_result) -> str:
        """md5 of an open object file (from its start), cached for its stamp."""
        digest = hashlib.md5(usedforsecurity=False)
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
        etag = digest.hexdigest()
        self._store_etag(uri.bucket, uri.key, st, etag)
        return etag

    # -- writes ------------------------------------------------------------------------------

    def writer(self, uri: S3Uri, attributes: ObjectAttributes | None = None) -> ObjectWriter:
        """Stage a new object: write() its bytes, then commit() (or abort()).

        The bytes go to a temp file in the bucket's ``.homeport/tmp``, are fsynced, and are
        published with one rename, so readers see the old object or the whole new one.
        """
        if uri.key.endswith("/"):
            raise InvalidObjectName(f"a key ending with '/' names a folder, not an object: {uri}")
        path = self._object_path(uri)
        bucket_dir = self._require_bucket(uri)
        try:
            staged = _Staged(_reserved_dir(uri.bucket, bucket_dir, "tmp"), "put-")
        except OSError as exc:
            raise ObjectStoreError(f"cannot store {uri}: {exc}") from exc
        return ObjectWriter(self, uri, path, attributes or ObjectAttributes(), staged)

    def _write(self, uri: S3Uri, source: BinaryIO, attributes: ObjectAttributes | None = None) -> ObjectInfo:
        """Copy ``source`` into a temp file, fsync, then publish it with one os.replace."""
        writer = self.writer(uri, attributes)
        with writer:
            writer.copy_from(source)
            return writer.commit()

    def _publish(
        self, uri: S3Uri, tmp: Path, path: Path, record: dict[str, Any] | None, if_absent: bool = False
    ) -> None:
        bucket_dir = self.root / uri.bucket
        for _attempt in range(_PUBLISH_ATTEMPTS):
            try:
                if not bucket_dir.is_dir():
                    raise NoSuchBucket(f"no such bucket {uri.bucket!r}: {uri}")
                path.parent.mkdir(parents=True, exist_ok=True)
                with self._bucket_lock(uri.bucket):
                    if if_absent and os.path.lexists(path):
                        raise PreconditionFailed(f"{uri} exists")
                    self._swap(uri, tmp, path, record)
                break
            except (FileNotFoundError, FileExistsError, NotADirectoryError) as exc:
                # Either a file sits where a folder must be, or delete() pruned a folder
                # between our mkdir and rename (then we make it again).
                in_bucket = (p for p in path.parents if p.is_relative_to(bucket_dir))
                blocker = next((p for p in in_bucket if p.is_file()), None)
                if blocker is not None:
                    key = blocker.relative_to(bucket_dir).as_posix()
                    raise KeyConflict(
                        f"cannot store {uri}: s3://{uri.bucket}/{key} is an object, and a local store "
                        "cannot hold a key and keys under it as a folder"
                    ) from exc
            except IsADirectoryError as exc:
                raise KeyConflict(
                    f"cannot store {uri}: objects exist under {uri}/, and a local store cannot hold "
                    "a key and keys under it as a folder"
                ) from exc
            except OSError as exc:
                raise ObjectStoreError(f"cannot store {uri}: {exc}") from exc
        else:
            raise ObjectStoreError(f"could not publish {uri}: its folder kept vanishing")
        # The rename is durable only once its folder is synced; a concurrent delete may
        # already have removed the folder, which makes durability moot.
        with contextlib.suppress(FileNotFoundError):
            _fsync_dir(path.parent)
        if record is not None:
            with contextlib.suppress(FileNotFoundError):
                _fsync_dir(self._meta_path(uri.bucket, uri.key).parent)

    def _swap(self, uri: S3Uri, tmp: Path, path: Path, record: dict[str, Any] | None) -> None:
        """Rename the new object into place with its meta record (under the bucket lock).

        The record is written first, so the object is never visible without it; if the
        rename fails, the previous record is put back.
        """
        meta_path = self._meta_path(uri.bucket, uri.key)
        if record is None:
            os.replace(tmp, path)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(meta_path)
            return
        meta_path.parent.mkdir(exist_ok=True)
        try:
            previous: bytes | None = meta_path.read_bytes()
        except FileNotFoundError:
            previous = None
        _write_file_durably(meta_path, json.dumps(record, separators=(",", ":")).encode())
        try:
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                if previous is None:
                    os.unlink(meta_path)
                else:
                    _write_file_durably(meta_path, previous)
            raise

    # -- buckets -----------------------------------------------------------------------------

    def create_bucket(self, bucket: str, *, exist_ok: bool = True) -> None:
        """Create the bucket; if it exists: nothing, or BucketAlreadyExists when not ``exist_ok``."""
        bucket_dir = self._bucket_dir(bucket)
        try:
            bucket_dir.mkdir()
        except FileExistsError as exc:
            if not bucket_dir.is_dir():
                raise ObjectStoreError(f"cannot create bucket {bucket!r}: {exc}") from exc
            if not exist_ok:
                raise BucketAlreadyExists(f"bucket {bucket!r} already exists") from None
            return
        except OSError as exc:
            raise ObjectStoreError(f"cannot create bucket {bucket!r}: {exc}") from exc
        with contextlib.suppress(OSError):
            (bucket_dir / RESERVED).mkdir(exist_ok=True)
            (bucket_dir / RESERVED / "bucket").touch()
            _fsync_dir(self.root)

    def bucket_exists(self, bucket: str) -> bool:
        return self._bucket_dir(bucket).is_dir()

    def list_buckets(self) -> list[BucketInfo]:
        """Every bucket, by name, with its creation time."""
        buckets = []
        with os.scandir(self.root) as entries:
            for entry in entries:
                if (
                    entry.name.startswith(".")
                    or "\0" in entry.name
                    or not entry.is_dir(follow_symlinks=False)
                ):
                    continue
                path = Path(entry.path)
                try:
                    created = (path / RESERVED / "bucket").stat().st_mtime
                except OSError:
                    try:
                        created = path.stat().st_mtime
                    except OSError:
                        continue  # deleted meanwhile
                buckets.append(BucketInfo(entry.name, created))
        return sorted(buckets, key=lambda b: b.name)

    def _has_objects(self, bucket_dir: Path) -> bool:
        return next(self._walk(bucket_dir, "", ""), None) is not None

    def delete_bucket(self, bucket: str) -> None:
        """Delete an empty bucket (and its in-progress uploads); BucketNotEmpty if it holds objects."""
        bucket_dir = self._bucket_dir(bucket)
        if not bucket_dir.is_dir():
            raise NoSuchBucket(f"no such bucket {bucket!r}")
        if self._has_objects(bucket_dir):
            raise BucketNotEmpty(f"bucket {bucket!r} is not empty")
        # Move it aside first, so the name is gone at once, then check nothing raced in.
        trash = self.root / f".deleted-{uuid.uuid4().hex}"
        try:
            os.rename(bucket_dir, trash)
        except FileNotFoundError:
            raise NoSuchBucket(f"no such bucket {bucket!r}") from None
        except OSError as exc:
            raise ObjectStoreError(f"cannot delete bucket {bucket!r}: {exc}") from exc
        if self._has_objects(trash):
            with contextlib.suppress(OSError):
                os.rename(trash, bucket_dir)
            raise BucketNotEmpty(f"bucket {bucket!r} is not empty")
        shutil.rmtree(trash, ignore_errors=True)
        with contextlib.suppress(OSError):
            _fsync_dir(self.root)

    # -- ObjectStore -------------------------------------------------------------------------

    def put_file(self, uri: S3Uri, path: Path) -> ObjectInfo:
        try:
            source = open(path, "rb")  # noqa: SIM115 - closed below, after the error translation
        except OSError as exc:
            raise ObjectStoreError(f"cannot read {path} to upload to {uri}: {exc}") from exc
        with source:
            try:
                return self._write(uri, source)
            except OSError as exc:
                raise ObjectStoreError(f"cannot store {path} as {uri}: {exc}") from exc

    def put_bytes(self, uri: S3Uri, data: bytes) -> ObjectInfo:
        try:
            return self._write(uri, io.BytesIO(data))
        except OSError as exc:
            raise ObjectStoreError(f"cannot store {uri}: {exc}") from exc

    def get_file(self, uri: S3Uri, dest: Path) -> ObjectInfo:
        dest = Path(dest)
        with self.open_read(uri) as source:
            st = os.fstat(source.fileno())
            try:
                dest.parent.mkdir(parents=True, exist_ok=True)
                # Download beside dest and rename, so dest is never seen half-written.
                fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
            except OSError as exc:
                raise ObjectStoreError(f"cannot download {uri} to {dest}: {exc}") from exc
            try:
                digest = hashlib.md5(usedforsecurity=False)
                with os.fdopen(fd, "wb") as out:
                    while chunk := source.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
                    os.fchmod(out.fileno(), _OBJECT_MODE)
                os.replace(tmp_name, dest)
            except BaseException as exc:
                with contextlib.suppress(OSError):
                    os.unlink(tmp_name)
                if isinstance(exc, OSError):
                    raise ObjectStoreError(f"cannot download {uri} to {dest}: {exc}") from exc
                raise
        etag = self._known_etag(uri.bucket, uri.key, st)
        if etag is None:
            etag = digest.hexdigest()
            self._store_etag(uri.bucket, uri.key, st, etag)
        return ObjectInfo(uri.bucket, uri.key, st.st_size, st.st_mtime, etag)

    def open_read(self, uri: S3Uri) -> BinaryIO:
        if uri.key.endswith("/"):
            raise NoSuchObject(f"no such object (a key ending with '/' is a folder): {uri}")
        path = self._object_path(uri)
        try:
            return open(path, "rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            self._require_bucket(uri)
            raise NoSuchObject(f"no such object: {uri}") from None
        except OSError as exc:
            raise ObjectStoreError(f"cannot read {uri}: {exc}") from exc

    def open_object(self, uri: S3Uri) -> tuple[BinaryIO, ObjectInfo, ObjectAttributes]:
        """A reader with the info and attributes of exactly the file it reads.

        A concurrent overwrite cannot make the size or ETag disagree with the bytes read.
        """
        handle = self.open_read(uri)
        try:
            st = os.fstat(handle.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise NoSuchObject(f"no such object: {uri}")
            etag = self._known_etag(uri.bucket, uri.key, st)
            if etag is None:
                etag = self._hash_open(uri, handle, st)
                handle.seek(0)
            attributes = _attributes_of(self._read_meta(uri.bucket, uri.key, st))
        except BaseException as exc:
            handle.close()
            if isinstance(exc, OSError):
                raise ObjectStoreError(f"cannot read {uri}: {exc}") from exc
            raise
        return handle, ObjectInfo(uri.bucket, uri.key, st.st_size, st.st_mtime, etag), attributes

    def head(self, uri: S3Uri) -> ObjectInfo | None:
        if uri.key.endswith("/"):
            return None
        return self._info(uri, self._object_path(uri))

    def copy_object(
        self,
        source: S3Uri,
        dest: S3Uri,
        attributes: ObjectAttributes | None = None,
        check: Callable[[ObjectInfo], None] | None = None,
    ) -> ObjectInfo:
        """Copy an object; ``attributes`` None keeps the source's (S3's metadata directive COPY).

        ``check`` sees the source's info first and may raise to refuse the copy (conditions).
        """
        handle, info, source_attributes = self.open_object(source)
        with handle:
            if check is not None:
                check(info)
            writer = self.writer(dest, source_attributes if attributes is None else attributes)
            with writer:
                writer.copy_from(handle)
                return writer.commit()

    def list(self, prefix: S3Uri) -> Iterator[ObjectInfo]:
        for entry in self.list_entries(prefix.bucket, prefix.key):
            if isinstance(entry, ObjectInfo):
                yield entry

    def list_entries(
        self, bucket: str, prefix: str = "", delimiter: str = "", after: str = ""
    ) -> Iterator[ObjectInfo | str]:
        """Objects whose key starts with ``prefix`` and sorts after ``after``, in key order.

        With a ``delimiter``, keys holding it after the prefix are rolled up into their common
        prefix (a str, up to and including the delimiter), yielded once in its place, as S3's
        ListObjects does; a common prefix equal to ``after`` is not yielded again, so the last
        entry of a page is a valid ``after`` for the next one.
        """
        uri = S3Uri(bucket, prefix)
        bucket_dir = self._require_bucket(uri)
        folder, _, _ = prefix.rpartition("/")
        start, rel = bucket_dir, ""
        if folder:
            try:
                start = bucket_dir.joinpath(*_key_segments(uri, folder))
            except InvalidObjectName:
                return  # no key this store can hold starts with that prefix
            rel = folder + "/"
        if not start.is_dir():
            return
        cursor = _Cursor()
        for key, path in self._walk(start, rel, prefix, after, cursor):
            if delimiter:
                cut = key.find(delimiter, len(prefix))
                if cut >= 0:
                    common = key[: cut + len(delimiter)]
                    cursor.skip = common
                    if common != after:
                        yield common
                    continue
            info = self._info(S3Uri(bucket, key), path)
            if info is not None:  # vanished since the folder scan
                yield info

    def _walk(
        self, directory: Path, rel: str, prefix: str, after: str = "", cursor: _Cursor | None = None
    ) -> Iterator[tuple[str, Path]]:
        """(key, path) of the files under ``directory`` whose key starts with ``prefix`` and
        sorts after ``after``, in key order; keys starting with ``cursor.skip`` are left out.

        A folder sorts as its name plus '/', which is exactly where all of its keys fall
        among its siblings' keys, so sorting each folder's entries yields global key order.
        A folder whose keys all sort before ``after`` is not entered.
        """
        entries: list[tuple[str, Path, bool]] = []
        try:
            scan = os.scandir(directory)
        except (FileNotFoundError, NotADirectoryError):
            return
        with scan:
            for entry in scan:
                if not rel and entry.name == RESERVED:
                    continue
                key = rel + entry.name
                if entry.is_dir(follow_symlinks=False):
                    sub = key + "/"
                    if (sub.startswith(prefix) or prefix.startswith(sub)) and (
                        sub > after or after.startswith(sub)
                    ):
                        entries.append((sub, Path(entry.path), True))
                elif entry.is_file() and key.startswith(prefix) and key > after:
                    entries.append((key, Path(entry.path), False))
        entries.sort(key=lambda item: item[0])
        for key, path, is_dir in entries:
            if cursor is not None and cursor.skip and key.startswith(cursor.skip):
                if rel.startswith(cursor.skip):
                    return
                continue
            if is_dir:
                yield from self._walk(path, key, prefix, after, cursor)
            else:
                yield key, path

    def delete(self, uri: S3Uri) -> None:
        if uri.key.endswith("/"):
            return
        path = self._object_path(uri)
        bucket_dir = self.root / uri.bucket
        try:
            with self._bucket_lock(uri.bucket):
                os.unlink(path)
                with contextlib.suppress(OSError):
                    os.unlink(self._meta_path(uri.bucket, uri.key))
        except (FileNotFoundError, NotADirectoryError):
            return
        except IsADirectoryError:
            return  # a folder of other keys, not an object
        except OSError as exc:
            raise ObjectStoreError(f"cannot delete {uri}: {exc}") from exc
        with contextlib.suppress(OSError):
            os.unlink(self._etag_path(uri.bucket, uri.key))
        # S3 has no folders: once a folder's last key is gone, so is the folder.
        parent = path.parent
        while parent != bucket_dir:
            try:
                parent.rmdir()
            except OSError:  # not empty (the usual case), or already gone
                break
            parent = parent.parent

    def local_path(self, uri: S3Uri) -> Path | None:
        """The object's file, or for a key ending in '/' (or empty) the folder of that prefix.

        The path is returned whether or not anything exists there yet; callers that need the
        object call head(). Writing through this path bypasses atomic publishing.
        """
        bucket_dir = self._bucket_dir(uri.bucket)
        folder = uri.key[:-1] if uri.key.endswith("/") else uri.key
        if not folder:
            return bucket_dir
        return bucket_dir.joinpath(*_key_segments(uri, folder))

    # -- multipart uploads -------------------------------------------------------------------

    def _upload_dir(self, uri: S3Uri, upload_id: str) -> Path:
        if not _UPLOAD_ID.match(upload_id):
            raise NoSuchUpload(f"no such upload {upload_id!r}")
        return self._require_bucket(uri) / RESERVED / "uploads" / upload_id

    @staticmethod
    def _load_upload(bucket: str, upload_id: str, directory: Path) -> UploadInfo | None:
        try:
            record = json.loads((directory / _UPLOAD_RECORD).read_bytes())
        except (OSError, ValueError):
            return None
        if not isinstance(record, dict) or not isinstance(record.get("key"), str):
            return None
        return UploadInfo(
            bucket, record["key"], upload_id, float(record["initiated"]), _attributes_of(record)
        )

    @contextlib.contextmanager
    def _upload(self, uri: S3Uri, upload_id: str) -> Iterator[tuple[Path, UploadInfo]]:
        """Hold the upload's lock; NoSuchUpload unless it exists for exactly this key."""
        directory = self._upload_dir(uri, upload_id)
        try:
            fd = os.open(directory / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except (FileNotFoundError, NotADirectoryError):
            raise NoSuchUpload(f"no such upload {upload_id!r} for {uri}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            info = self._load_upload(uri.bucket, upload_id, directory)
            if info is None or info.key != uri.key:
                raise NoSuchUpload(f"no such upload {upload_id!r} for {uri}")
            yield directory, info
        finally:
            os.close(fd)

    @staticmethod
    def _part_files(directory: Path) -> dict[int, builtins.list[Path]]:
        parts: dict[int, builtins.list[Path]] = {}
        with os.scandir(directory) as entries:
            for entry in entries:
                match = _PART_FILE.match(entry.name)
                if match:
                    parts.setdefault(int(match.group(1)), []).append(Path(entry.path))
        return parts

    def create_upload(self, uri: S3Uri, attributes: ObjectAttributes | None = None) -> UploadInfo:
        """Start a multipart upload of ``uri``; its id is a fresh uuid4 hex."""
        if uri.key.endswith("/"):
            raise InvalidObjectName(f"a key ending with '/' names a folder, not an object: {uri}")
        self._object_path(uri)
        bucket_dir = self._require_bucket(uri)
        attributes = attributes or ObjectAttributes()
        upload_id = uuid.uuid4().hex
        initiated = time.time()
        try:
            directory = _reserved_dir(uri.bucket, bucket_dir, "uploads") / upload_id
            directory.mkdir()
            record = {"key": uri.key, "initiated": initiated, **_attributes_record(attributes)}
            _write_file_durably(directory / _UPLOAD_RECORD, json.dumps(record).encode())
            _fsync_dir(directory.parent)
        except OSError as exc:
            raise ObjectStoreError(f"cannot start an upload of {uri}: {exc}") from exc
        return UploadInfo(uri.bucket, uri.key, upload_id, initiated, attributes)

    def part_writer(self, uri: S3Uri, upload_id: str, number: int) -> PartWriter:
        """Stage part ``number`` (1..10000) of an upload; commit() replaces any earlier one."""
        if not 1 <= number <= MAX_PART_NUMBER:
            raise InvalidObjectName(f"part number {number} is not in 1..{MAX_PART_NUMBER}")
        with self._upload(uri, upload_id) as (directory, _):
            try:
                staged = _Staged(directory, "tmp-")
            except OSError as exc:
                raise ObjectStoreError(f"cannot store part {number} of {uri}: {exc}") from exc
        return PartWriter(self, uri, upload_id, number, staged)

    def list_parts(self, uri: S3Uri, upload_id: str) -> tuple[UploadInfo, builtins.list[PartInfo]]:
        with self._upload(uri, upload_id) as (directory, info):
            parts = []
            for number, paths in sorted(self._part_files(directory).items()):
                for path in paths:
                    try:
                        st = path.stat()
                    except FileNotFoundError:
                        continue
                    etag = path.name.partition(".")[2]
                    parts.append(PartInfo(number, st.st_size, etag, st.st_mtime))
                    break
        return info, parts

    def complete_upload(self, uri: S3Uri, upload_id: str, parts: Sequence[tuple[int, str]]) -> ObjectInfo:
        """Join the named parts (ascending numbers, each with its ETag) into the object.

        InvalidPartOrder, InvalidPart (missing, or another ETag) and EntityTooSmall (a part
        but the last under ``min_part_size``) as S3 says; the object is published with one
        rename, then the upload is gone.
        """
        if not parts:
            raise InvalidPart("an upload is completed with at least one part")
        with self._upload(uri, upload_id) as (directory, info):
            available = self._part_files(directory)
            chosen: builtins.list[tuple[Path, str, int]] = []
            previous = 0
            for number, etag in parts:
                if number <= previous:
                    raise InvalidPartOrder(f"part {number} follows part {previous}")
                previous = number
                wanted = etag.strip().strip('"').lower()
                path = next((p for p in available.get(number, []) if p.name.endswith("." + wanted)), None)
                if path is None:
                    raise InvalidPart(f"part {number} with ETag {etag} was not uploaded")
                chosen.append((path, wanted, path.stat().st_size))
            for path, _etag, size in chosen[:-1]:
                if size < self.min_part_size:
                    raise EntityTooSmall(
                        f"part {int(path.name[:5])} is {size} bytes; every part but the last must be at "
                        f"least {self.min_part_size} bytes"
                    )
            etag = multipart_etag([md5 for _path, md5, _size in chosen])
            try:
                staged = _Staged(
                    _reserved_dir(uri.bucket, self.root / uri.bucket, "tmp"), "mpu-", hashing=False
                )
            except OSError as exc:
                raise ObjectStoreError(f"cannot complete the upload of {uri}: {exc}") from exc
            writer = ObjectWriter(self, uri, self._object_path(uri), info.attributes, staged)
            with writer:
                try:
                    for path, _md5, _size in chosen:
                        staged.append_file(path)
                except OSError as exc:
                    raise ObjectStoreError(f"cannot complete the upload of {uri}: {exc}") from exc
                result = writer.commit(etag=etag)
            shutil.rmtree(directory, ignore_errors=True)
        return result

    def abort_upload(self, uri: S3Uri, upload_id: str) -> None:
        with self._upload(uri, upload_id) as (directory, _):
            shutil.rmtree(directory, ignore_errors=True)

    def list_uploads(self, bucket: str) -> builtins.list[UploadInfo]:
        """In-progress uploads of the bucket, by key, then by initiation time."""
        bucket_dir = self._require_bucket(S3Uri(bucket, ""))
        uploads = []
        try:
            scan = os.scandir(bucket_dir / RESERVED / "uploads")
        except (FileNotFoundError, NotADirectoryError):
            return []
        with scan:
            for entry in scan:
                if _UPLOAD_ID.match(entry.name):
                    info = self._load_upload(bucket, entry.name, Path(entry.path))
                    if info is not None:
                        uploads.append(info)
        return sorted(uploads, key=lambda u: (u.key, u.initiated, u.upload_id))

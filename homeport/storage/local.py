"""The local-folder object store: buckets are folders under a root, objects are files.

Layout under ``root``::

    <bucket>/<key>                       the object's bytes (keys with '/' are nested folders)
    <bucket>/.homeport/tmp/              temp files of in-flight writes (same filesystem as the
                                         objects, so publishing one is an atomic os.replace)
    <bucket>/.homeport/etag/<sha1(key)>  ETag cache: "<inode> <size> <mtime_ns> <md5>"

ETags are the md5 hex of the content, like S3's for single-part uploads. The md5 is computed
while writing (the bytes pass through us anyway) and cached in a small sidecar file, so head()
and list() cost a stat and a tiny read, not a read of the whole object. A sidecar is trusted
only while the file's (inode, size, mtime_ns) still match; a file written around the store
(e.g. by a training job into a bind-mounted folder) is hashed once on its next head/list.
The sidecar is a cache: losing it costs one re-hash, never a wrong answer, except for an
in-place rewrite of the same size within one mtime tick, which nothing here does.

Keys a folder cannot hold faithfully are refused with InvalidObjectName: empty, absolute,
``.``/``..``/empty segments, NUL, over-long segments, or a first segment of ``.homeport``.
A key ending in '/' names a folder, never an object. S3 can hold both ``a`` and ``a/b``; a
folder cannot, and such a put fails with ObjectStoreError naming both.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from homeport.errors import NoSuchObject, ObjectStoreError
from homeport.storage.base import InvalidObjectName, ObjectInfo, S3Uri

RESERVED = ".homeport"
_CHUNK = 1024 * 1024
# Objects are shared with training containers that may run as another user, so they are
# world-readable regardless of the temp file's private 0600.
_OBJECT_MODE = 0o644
# A rename that loses a race with delete()'s pruning of empty folders is retried this often.
_PUBLISH_ATTEMPTS = 20


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


class LocalObjectStore:
    """ObjectStore over a folder; safe for concurrent use by threads and processes."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

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
            raise NoSuchObject(f"no such bucket {uri.bucket!r}: {uri}")
        return bucket_dir

    def _etag_path(self, bucket: str, key: str) -> Path:
        name = hashlib.sha1(key.encode("utf-8", "surrogateescape")).hexdigest()
        return self.root / bucket / RESERVED / "etag" / name

    # -- etag cache --------------------------------------------------------------------------

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

    def _info(self, uri: S3Uri, path: Path) -> ObjectInfo | None:
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        etag = self._cached_etag(uri.bucket, uri.key, st)
        if etag is None:
            try:
                with open(path, "rb") as handle:
                    st = os.fstat(handle.fileno())
                    digest = hashlib.md5(usedforsecurity=False)
                    while chunk := handle.read(_CHUNK):
                        digest.update(chunk)
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                return None
            etag = digest.hexdigest()
            self._store_etag(uri.bucket, uri.key, st, etag)
        return ObjectInfo(uri.bucket, uri.key, st.st_size, st.st_mtime, etag)

    # -- writes ------------------------------------------------------------------------------

    def _write(self, uri: S3Uri, source: BinaryIO) -> ObjectInfo:
        """Copy ``source`` into a temp file, fsync, then publish it with one os.replace."""
        if uri.key.endswith("/"):
            raise InvalidObjectName(f"a key ending with '/' names a folder, not an object: {uri}")
        path = self._object_path(uri)
        bucket_dir = self._require_bucket(uri)
        tmp_dir = bucket_dir / RESERVED / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=tmp_dir, prefix="put-")
        try:
            digest = hashlib.md5(usedforsecurity=False)
            with os.fdopen(fd, "wb") as out:
                while chunk := source.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fchmod(out.fileno(), _OBJECT_MODE)
                os.fsync(out.fileno())
                st = os.fstat(out.fileno())
            self._publish(uri, Path(tmp_name), path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)
            raise
        etag = digest.hexdigest()
        # rename keeps inode, size and mtime, so the temp file's stat describes the object.
        self._store_etag(uri.bucket, uri.key, st, etag)
        return ObjectInfo(uri.bucket, uri.key, st.st_size, st.st_mtime, etag)

    def _publish(self, uri: S3Uri, tmp: Path, path: Path) -> None:
        bucket_dir = self.root / uri.bucket
        for _attempt in range(_PUBLISH_ATTEMPTS):
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp, path)
                break
            except (FileNotFoundError, FileExistsError, NotADirectoryError) as exc:
                # Either a file sits where a folder must be, or delete() pruned a folder
                # between our mkdir and rename (then we make it again).
                in_bucket = (p for p in path.parents if p.is_relative_to(bucket_dir))
                blocker = next((p for p in in_bucket if p.is_file()), None)
                if blocker is not None:
                    key = blocker.relative_to(bucket_dir).as_posix()
                    raise ObjectStoreError(
                        f"cannot store {uri}: s3://{uri.bucket}/{key} is an object, and a local store "
                        "cannot hold a key and keys under it as a folder"
                    ) from exc
            except IsADirectoryError as exc:
                raise ObjectStoreError(
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

    # -- ObjectStore -------------------------------------------------------------------------

    def create_bucket(self, bucket: str) -> None:
        try:
            self._bucket_dir(bucket).mkdir(exist_ok=True)
        except OSError as exc:
            raise ObjectStoreError(f"cannot create bucket {bucket!r}: {exc}") from exc

    def bucket_exists(self, bucket: str) -> bool:
        return self._bucket_dir(bucket).is_dir()

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
        etag = digest.hexdigest()
        if self._cached_etag(uri.bucket, uri.key, st) is None:
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

    def head(self, uri: S3Uri) -> ObjectInfo | None:
        if uri.key.endswith("/"):
            return None
        return self._info(uri, self._object_path(uri))

    def list(self, prefix: S3Uri) -> Iterator[ObjectInfo]:
        bucket_dir = self._require_bucket(prefix)
        folder, _, _ = prefix.key.rpartition("/")
        start, rel = bucket_dir, ""
        if folder:
            try:
                start = bucket_dir.joinpath(*_key_segments(prefix, folder))
            except InvalidObjectName:
                return  # no key this store can hold starts with that prefix
            rel = folder + "/"
        if not start.is_dir():
            return
        for key, path in self._walk(start, rel, prefix.key):
            info = self._info(S3Uri(prefix.bucket, key), path)
            if info is not None:  # vanished since the folder scan
                yield info

    def _walk(self, directory: Path, rel: str, prefix: str) -> Iterator[tuple[str, Path]]:
        """(key, path) of the files under ``directory`` whose key starts with ``prefix``, in key order.

        A folder sorts as its name plus '/', which is exactly where all of its keys fall
        among its siblings' keys, so sorting each folder's entries yields global key order.
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
                    if sub.startswith(prefix) or prefix.startswith(sub):
                        entries.append((sub, Path(entry.path), True))
                elif entry.is_file() and key.startswith(prefix):
                    entries.append((key, Path(entry.path), False))
        entries.sort(key=lambda item: item[0])
        for key, path, is_dir in entries:
            if is_dir:
                yield from self._walk(path, key, prefix)
            else:
                yield key, path

    def delete(self, uri: S3Uri) -> None:
        if uri.key.endswith("/"):
            return
        path = self._object_path(uri)
        bucket_dir = self.root / uri.bucket
        try:
            os.unlink(path)
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

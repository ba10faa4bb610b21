"""Model data for serving containers: fetched once per model version, shared read-only.

A CreateModel container definition names its model data in one of two ways:

* ``ModelDataUrl``: an ``s3://`` URI of a ``.tar.gz``, extracted into ``/opt/ml/model``;
* ``ModelDataSource.S3DataSource{S3Uri, S3DataType, CompressionType}``:

  - ``S3Object`` + ``Gzip``: the same as ``ModelDataUrl``;
  - ``S3Object`` + ``None``: one uncompressed file, named after the last segment of its key;
  - ``S3Prefix`` + ``None``: every object under the prefix (which must end with ``/``), placed at
    its key minus the prefix, intermediate segments as folders (SageMaker's documented layout,
    with its rules: no empty, ``.``, ``..``, NUL-holding or over-255-byte names, and a key that
    is both a file and a folder, e.g. ``weights`` and ``weights/part1``, fails the deployment);
  - ``S3Prefix`` + ``Gzip`` is not something SageMaker accepts either: refused.

:meth:`ModelDataCache.prepare` materialises that into a folder under ``root`` and returns it;
the serving instances of every endpoint using the same model version bind-mount that one folder
read-only at ``/opt/ml/model``. A container without model data gets ``None`` (the instance then
mounts an empty folder, so ``/opt/ml/model`` exists as it does on SageMaker).

Cache key ("model version"): the source URI plus what the object store says about the bytes,
so a re-uploaded ``model.tar.gz`` is a new version and gets a new folder:

* one object: its ETag and size (``head``);
* a prefix: a SHA-256 over ``(key, etag, size)`` of every object of the listing.

Layout under ``root``::

    <digest>/            the model data (exactly what /opt/ml/model shows)
    <digest>.json        where it came from (uri, etag/listing hash, time): for humans and a
                         later eviction pass
    .staging/<pid>-*/    builds in progress; a build renames its result to <digest> when done

A folder named ``<digest>`` is therefore always complete. Folders of this process's crashed
predecessors are removed when a cache is constructed (their pid is no longer running).

Where the object store is a local folder (``local_path()`` gives a file) nothing is copied:
archives are extracted straight from the store's file and uncompressed objects are hard-linked
(falling back to a download when linking is impossible, e.g. across filesystems). The local
store replaces objects by rename, so a linked inode is never rewritten under a running model.
The folders are *intended* read-only: the serving mount is read-only; files are not chmod'ed,
because a hard-linked file's mode is the store's object's mode too.

Concurrency: :meth:`prepare` may be called from any number of threads. Building one key is
serialised by a lock per key, so concurrent prepares of the same model version do the work
once and all return the same folder; different keys build in parallel. The key's metadata
lookup (``head``/``list``) runs outside the lock. Two caches (or processes) on the same root
are safe too: the loser of the final rename discards its build and uses the winner's.
A model replaced in the store *while* it is being prepared may leave a folder whose bytes are
newer than its key; the next prepare sees the new ETag and builds a fresh folder.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import tarfile
import tempfile
import threading
import time
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from homeport.artifacts.tarball import UnsafeArchiveError, extract_safe
from homeport.errors import HomeportError, NoSuchObject, ObjectStoreError
from homeport.storage.base import ObjectInfo, ObjectStore, S3Uri

__all__ = ["ModelDataCache", "ModelDataError", "ModelDataSpec", "model_data_spec"]

_STAGING = ".staging"
_MAX_NAME_BYTES = 255


class ModelDataError(HomeportError):
    """Model data that cannot be materialised; the message is fit for an endpoint's FailureReason.

    A ValidationException: a missing or broken model is the caller's data, not a server fault.
    """

    code = "ValidationException"
    status = 400


@dataclass(frozen=True)
class ModelDataSpec:
    """Where a container's model data lives and how it is packed."""

    uri: str  # as the user wrote it, for messages
    location: S3Uri
    data_type: str  # "S3Object" | "S3Prefix"
    compression: str  # "Gzip" | "None"


def model_data_spec(container: Mapping[str, Any]) -> ModelDataSpec | None:
    """The model data a ContainerDefinition names, or None; ModelDataError when it is malformed."""
    url = container.get("ModelDataUrl")
    source = container.get("ModelDataSource")
    if url and source is not None:
        raise ModelDataError("Specify either ModelDataUrl or ModelDataSource for a container, not both.")
    if url:
        return ModelDataSpec(str(url), _parse_uri(str(url)), "S3Object", "Gzip")
    if source is None:
        return None
    s3 = source.get("S3DataSource") if isinstance(source, Mapping) else None
    if not isinstance(s3, Mapping) or not s3.get("S3Uri"):
        raise ModelDataError("ModelDataSource must contain an S3DataSource with an S3Uri.")
    uri = str(s3["S3Uri"])
    data_type = str(s3.get("S3DataType", ""))
    compression = str(s3.get("CompressionType", ""))
    if data_type not in ("S3Object", "S3Prefix"):
        raise ModelDataError(
            f'Unsupported S3DataType "{data_type}" for model data "{uri}": use S3Object or S3Prefix.'
        )
    if compression not in ("Gzip", "None"):
        raise ModelDataError(
            f'Unsupported CompressionType "{compression}" for model data "{uri}": use Gzip or None.'
        )
    if data_type == "S3Prefix" and compression == "Gzip":
        raise ModelDataError(
            f'Model data "{uri}": CompressionType Gzip needs S3DataType S3Object (a single .tar.gz); '
            "an S3Prefix must be uncompressed (CompressionType None)."
        )
    location = _parse_uri(uri)
    if data_type == "S3Prefix" and not location.key.endswith("/"):
        # SageMaker: "A valid key name prefix identified by S3Uri always ends with a forward slash".
        raise ModelDataError(f'The S3Uri "{uri}" of an S3Prefix model data source must end with "/".')
    if data_type == "S3Object" and (not location.key or location.key.endswith("/")):
        raise ModelDataError(f'The S3Uri "{uri}" of an S3Object model data source must name an object.')
    return ModelDataSpec(uri, location, data_type, compression)


def _parse_uri(uri: str) -> S3Uri:
    try:
        return S3Uri.parse(uri)
    except ValueError as exc:
        raise ModelDataError(f'Model data URL "{uri}" is not a valid s3:// URI: {exc}') from None


def _not_found(spec: ModelDataSpec, what: str) -> ModelDataError:
    return ModelDataError(
        f'Failed to download model data from URL "{spec.uri}": Could not find model data at "{spec.uri}" '
        f"({what}). Please ensure that there is an object located at the URL."
    )


def _download_failed(spec: ModelDataSpec, exc: Exception) -> ModelDataError:
    detail = exc.message if isinstance(exc, HomeportError) else str(exc)
    return ModelDataError(f'Failed to download model data from URL "{spec.uri}": {detail}')


def _relative_parts(spec: ModelDataSpec, key: str, rest: str) -> list[str]:
    """``rest`` (``key`` minus the prefix) as path parts under the model folder, checked as
    SageMaker documents its naming rules."""
    parts = rest.split("/")
    for part in parts:
        if (
            not part.strip()
            or part in (".", "..")
            or "\x00" in part
            or len(part.encode("utf-8", "surrogateescape")) > _MAX_NAME_BYTES
        ):
            raise ModelDataError(
                f'Failed to prepare model data from URL "{spec.uri}": the object key "{key}" gives the '
                f"invalid file name {part!r} under /opt/ml/model."
            )
    return parts


class ModelDataCache:
    """Model data folders under ``root``, one per model version (see the module docstring)."""

    def __init__(self, root: Path, objects: ObjectStore) -> None:
        self.root = Path(root)
        self.objects = objects
        # One lock per model version ever prepared by this process: tiny, so never pruned.
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        (self.root / _STAGING).mkdir(parents=True, exist_ok=True)
        self._remove_orphaned_staging()

    # -- public --------------------------------------------------------------------------------

    def prepare(self, container: Mapping[str, Any]) -> Path | None:
        """The folder holding ``container``'s model data (built on first use); None if it has none.

        Raises ModelDataError with a FailureReason-ready message when the data is missing,
        unreadable, malformed or unsafe (an archive member escaping the folder).
        """
        spec = model_data_spec(container)
        if spec is None:
            return None
        listing: list[ObjectInfo] = []
        if spec.data_type == "S3Prefix":
            listing = self._list(spec)
            version = _listing_digest(listing)
        else:
            info = self._head(spec)
            version = f"{info.etag}\0{info.size}"
        cache_key = f"{spec.data_type}\0{spec.compression}\0{spec.location}\0{version}"
        digest = hashlib.sha256(cache_key.encode("utf-8", "surrogateescape")).hexdigest()[:40]
        final = self.root / digest
        if final.is_dir():
            return final
        with self._lock_for(digest):
            if final.is_dir():  # built by the thread we waited for
                return final
            self._build(spec, listing, final, version)
        return final

    # -- metadata ------------------------------------------------------------------------------

    def _head(self, spec: ModelDataSpec) -> ObjectInfo:
        try:
            info = self.objects.head(spec.location)
        except NoSuchObject:
            info = None
        except ObjectStoreError as exc:
            raise _download_failed(spec, exc) from exc
        if info is None:
            raise _not_found(spec, "no such object")
        return info

    def _list(self, spec: ModelDataSpec) -> list[ObjectInfo]:
        try:
            listing = list(self.objects.list(spec.location))
        except NoSuchObject:
            listing = []
        except ObjectStoreError as exc:
            raise _download_failed(spec, exc) from exc
        # Zero-byte "folder/" markers (what the S3 console's "Create folder" makes) are no files.
        if not any(not (o.key.endswith("/") and o.size == 0) for o in listing):
            raise _not_found(spec, "no objects under that prefix")
        return listing

    def _lock_for(self, digest: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(digest, threading.Lock())

    # -- building ------------------------------------------------------------------------------

    def _build(self, spec: ModelDataSpec, listing: list[ObjectInfo], final: Path, version: str) -> None:
        staging = Path(tempfile.mkdtemp(dir=self.root / _STAGING, prefix=f"{os.getpid()}-"))
        try:
            data = staging / "data"
            if spec.data_type == "S3Prefix":
                self._place_prefix(spec, listing, data)
            elif spec.compression == "Gzip":
                self._extract(spec, staging, data)
            else:
                data.mkdir(mode=0o755)
                name = spec.location.key.rsplit("/", 1)[-1]
                self._place_object(spec, spec.location, data / name)
            self._write_sidecar(final, spec, version, staging)
            try:
                os.rename(data, final)
            except OSError as exc:
                # Another cache on this root (another process) finished the same key first.
                if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST) or not final.is_dir():
                    raise ModelDataError(f'Failed to store model data from URL "{spec.uri}": {exc}') from exc
        except OSError as exc:
            raise ModelDataError(f'Failed to prepare model data from URL "{spec.uri}": {exc}') from exc
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _extract(self, spec: ModelDataSpec, staging: Path, data: Path) -> None:
        archive = self._local_file(spec.location)
        if archive is None:
            archive = staging / "model.tar.gz"
            self._download(spec, spec.location, archive)
        try:
            extract_safe(archive, data)
        except UnsafeArchiveError as exc:
            raise ModelDataError(
                f'Failed to extract model data archive from URL "{spec.uri}": unsafe member '
                f"{exc.member!r}: {exc.reason}. The archive must hold plain files, folders and links "
                "that stay inside it."
            ) from exc
        except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
            # gzip's BadGzipFile and a truncated stream are OSError/EOFError; a non-tar is TarError.
            raise ModelDataError(
                f'Failed to extract model data archive from URL "{spec.uri}": {exc}. '
                "Please ensure that the object is a valid .tar.gz archive."
            ) from exc

    def _place_prefix(self, spec: ModelDataSpec, listing: list[ObjectInfo], data: Path) -> None:
        data.mkdir(mode=0o755)
        for info in listing:
            rest = info.key[len(spec.location.key) :]
            if info.key.endswith("/") and info.size == 0:
                # A folder marker: the folder exists in the model even when it holds nothing.
                if rest.rstrip("/"):
                    folder = data.joinpath(*_relative_parts(spec, info.key, rest.rstrip("/")))
                    self._make_dirs(spec, info.key, folder)
                continue
            parts = _relative_parts(spec, info.key, rest)
            dest = data.joinpath(*parts)
            self._make_dirs(spec, info.key, dest.parent)
            if dest.exists() or dest.is_symlink():
                raise self._clash(spec, info.key)
            self._place_object(spec, S3Uri(info.bucket, info.key), dest)

    def _make_dirs(self, spec: ModelDataSpec, key: str, folder: Path) -> None:
        try:
            folder.mkdir(mode=0o755, parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise self._clash(spec, key) from None

    @staticmethod
    def _clash(spec: ModelDataSpec, key: str) -> ModelDataError:
        return ModelDataError(
            f'Failed to prepare model data from URL "{spec.uri}": the object key "{key}" clashes with '
            "another object that is both a file and a folder under /opt/ml/model."
        )

    def _place_object(self, spec: ModelDataSpec, uri: S3Uri, dest: Path) -> None:
        local = self._local_file(uri)
        if local is not None:
            try:
                os.link(local, dest)
                return
            except FileNotFoundError:
                pass  # deleted since the listing: the download below says so clearly
            except OSError as exc:
                # EXDEV (another filesystem), EPERM (protected_hardlinks), EMLINK: copy instead.
                if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EACCES):
                    raise
        self._download(spec, uri, dest)

    def _download(self, spec: ModelDataSpec, uri: S3Uri, dest: Path) -> None:
        try:
            self.objects.get_file(uri, dest)
        except NoSuchObject:
            raise _not_found(spec, f"object {uri} disappeared while it was being downloaded") from None
        except ObjectStoreError as exc:
            raise _download_failed(spec, exc) from exc

    def _local_file(self, uri: S3Uri) -> Path | None:
        try:
            path = self.objects.local_path(uri)
        except (ObjectStoreError, ValueError):
            return None
        return path if path is not None and path.is_file() else None

    def _write_sidecar(self, final: Path, spec: ModelDataSpec, version: str, staging: Path) -> None:
        doc = {
            "uri": str(spec.location),
            "data_type": spec.data_type,
            "compression": spec.compression,
            "version": version.replace("\0", " "),
            "created": time.time(),
        }
        tmp = staging / "source.json"
        tmp.write_text(json.dumps(doc) + "\n")
        os.replace(tmp, final.with_name(final.name + ".json"))

    def _remove_orphaned_staging(self) -> None:
        for entry in _scandir(self.root / _STAGING):
            pid_text = entry.name.split("-", 1)[0]
            if pid_text.isdigit() and int(pid_text) != os.getpid() and not _pid_alive(int(pid_text)):
                shutil.rmtree(entry.path, ignore_errors=True)


def _listing_digest(listing: list[ObjectInfo]) -> str:
    digest = hashlib.sha256()
    for info in listing:
        digest.update(f"{info.key}\0{info.etag}\0{info.size}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def _scandir(folder: Path) -> Iterator[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as it:
            yield from list(it)
    except FileNotFoundError:
        return


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True

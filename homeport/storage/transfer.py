"""What ``homeport cp SRC DST [--recursive]`` does, with ``aws s3 cp``'s path semantics.

One side must be an ``s3://`` URI; the other is a local path or another URI in the same store.
Without --recursive SRC is one file or object, and a DST ending in '/' (or an existing local
folder) means "into it, under the same base name". With --recursive SRC is a folder or a
prefix taken as a folder (``s3://b/data`` means the objects under ``data/``), and paths
relative to it are kept under DST.

The whole plan is worked out before the first byte moves, so a copy into its own source
prefix does not chase its own output, and a missing source fails before anything is written.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from homeport.errors import NoSuchObject
from homeport.storage.base import ObjectStore, S3Uri

Progress = Callable[[str, int], None]


@dataclass(frozen=True)
class _Step:
    src: Path | S3Uri
    dst: Path | S3Uri


def _is_s3(location: str) -> bool:
    return location.startswith("s3://")


def _into_s3(dst: S3Uri, name: str) -> S3Uri:
    if not dst.key or dst.key.endswith("/"):
        return S3Uri(dst.bucket, dst.key + name)
    return dst


def _into_local(dst: str, name: str) -> Path:
    path = Path(dst)
    if dst.endswith(("/", os.sep)) or path.is_dir():
        return path / name
    return path


def _local_files(root: Path) -> list[tuple[str, Path]]:
    """(relative posix path, file) for every regular file under ``root``, sorted."""
    found: list[tuple[str, Path]] = []
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            path = Path(dirpath, name)
            if path.is_file():  # skips sockets, fifos and dangling links
                found.append((path.relative_to(root).as_posix(), path))
    return sorted(found)


def _single(src: str, dst: str, store: ObjectStore) -> list[_Step]:
    if not _is_s3(src):
        path = Path(src)
        if path.is_dir():
            raise ValueError(f"{src} is a directory; use --recursive to copy a folder")
        if not path.is_file():
            raise ValueError(f"no such file: {src}")
        return [_Step(path, _into_s3(S3Uri.parse(dst), path.name))]
    uri = S3Uri.parse(src)
    if not uri.key or uri.key.endswith("/"):
        raise ValueError(f"{src} names a prefix, not an object; use --recursive to copy a prefix")
    if store.head(uri) is None:
        raise NoSuchObject(f"no such object: {src} (use --recursive to copy a prefix)")
    name = uri.key.rsplit("/", 1)[-1]
    target: Path | S3Uri = _into_s3(S3Uri.parse(dst), name) if _is_s3(dst) else _into_local(dst, name)
    return [_Step(uri, target)]


def _recursive(src: str, dst: str, store: ObjectStore) -> list[_Step]:
    if not _is_s3(src):
        root = Path(src)
        if not root.is_dir():
            if root.exists():
                raise ValueError(f"{src} is not a directory; drop --recursive to copy one file")
            raise ValueError(f"no such directory: {src}")
        dst_uri = S3Uri.parse(dst)
        return [_Step(path, dst_uri.join(rel)) for rel, path in _local_files(root)]
    uri = S3Uri.parse(src)
    folder = uri.key if not uri.key or uri.key.endswith("/") else uri.key + "/"
    prefix = S3Uri(uri.bucket, folder)
    steps: list[_Step] = []
    for info in store.list(prefix):
        rel = info.key[len(folder) :]
        if not rel or rel.endswith("/"):  # folder markers some S3 tools create
            continue
        source = S3Uri(uri.bucket, info.key)
        if _is_s3(dst):
            steps.append(_Step(source, S3Uri.parse(dst).join(rel)))
            continue
        parts = rel.split("/")
        if any(part in ("", ".", "..") for part in parts):
            # An object key is untrusted input: it must not pick where on disk it lands.
            raise ValueError(f"refusing to download {source}: its key would not stay inside {dst}")
        steps.append(_Step(source, Path(dst).joinpath(*parts)))
    if not steps:
        raise NoSuchObject(f"nothing to copy: no objects under {prefix}")
    return steps


def copy(
    src: str,
    dst: str,
    store: ObjectStore,
    recursive: bool = False,
    progress: Progress | None = None,
) -> list[tuple[str, str]]:
    """Copy between a local path and ``s3://``, or between two URIs; returns (src, dst) pairs.

    ``progress``, when given, is called after each object with an ``aws s3 cp``-style line
    ("upload: a.txt to s3://b/a.txt") and the object's size in bytes.
    Raises ValueError for bad usage or a missing local source, NoSuchObject for a missing
    object, prefix or bucket, ObjectStoreError for other store failures.
    """
    if not _is_s3(src) and not _is_s3(dst):
        raise ValueError(f"one of SRC and DST must be an s3:// URI (got {src!r} and {dst!r})")
    steps = _recursive(src, dst, store) if recursive else _single(src, dst, store)
    done: list[tuple[str, str]] = []
    with contextlib.ExitStack() as stack:
        scratch: Path | None = None
        for step in steps:
            if isinstance(step.src, Path):
                assert isinstance(step.dst, S3Uri)
                verb, info = "upload", store.put_file(step.dst, step.src)
            elif isinstance(step.dst, Path):
                verb, info = "download", store.get_file(step.src, step.dst)
            else:
                verb = "copy"
                source = store.local_path(step.src)
                if source is None:
                    # The contract has no server-side copy: stage through a scratch file.
                    if scratch is None:
                        scratch = Path(
                            stack.enter_context(tempfile.TemporaryDirectory(prefix="homeport-cp-"))
                        )
                    source = scratch / "object"
                    store.get_file(step.src, source)
                info = store.put_file(step.dst, source)
            done.append((str(step.src), str(step.dst)))
            if progress is not None:
                progress(f"{verb}: {step.src} to {step.dst}", info.size)
    return done

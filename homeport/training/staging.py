"""Channel staging: put a channel's objects into ``/opt/ml/input/data/<channel>/`` (File mode).

From the embedded local store the objects are hard-linked (no bytes copied; the channel is
then mounted read-only so a container cannot write through the link into the store); from
an S3 backend they are downloaded. Relative paths follow SageMaker: the part of the key
after the S3 prefix (a prefix naming a whole folder or object drops everything up to it).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from homeport.storage.base import ObjectInfo, ObjectStore, S3Uri


class StagingError(Exception):
    """A channel could not be staged; the message becomes the job's FailureReason."""


@dataclass
class StagedChannel:
    name: str
    files: int
    bytes: int
    linked: bool  # every file hard-linked from the local store


def relative_path(prefix_key: str, key: str) -> str:
    """Path of ``key`` inside the channel folder for an S3Prefix of ``prefix_key``."""
    if key == prefix_key:
        return PurePosixPath(key).name
    rest = key[len(prefix_key) :]
    if prefix_key.endswith("/") or rest.startswith("/") or not prefix_key:
        return rest.lstrip("/")
    # A prefix ending inside a name ("data/tr" matching "data/train.csv"): keep the path
    # from the prefix's folder on, so nothing collides.
    folder = prefix_key[: prefix_key.rfind("/") + 1]
    return key[len(folder) :]


def _safe_target(root: Path, rel: str) -> Path:
    parts = PurePosixPath(rel).parts
    if not parts or any(p in {"..", "."} for p in parts) or PurePosixPath(rel).is_absolute():
        raise StagingError(f"Object key maps to an unsafe path inside the channel: {rel!r}")
    return root.joinpath(*parts)


def _place(store: ObjectStore, info: ObjectInfo, target: Path) -> bool:
    """Link or download one object; True when it was hard-linked."""
    target.parent.mkdir(parents=True, exist_ok=True)
    uri = S3Uri(info.bucket, info.key)
    source = store.local_path(uri)
    if source is not None:
        try:
            os.link(source, target)
            return True
        except OSError:
            shutil.copyfile(source, target)
            return False
    store.get_file(uri, target)
    return False


def _not_found(uri: str) -> StagingError:
    bucket = uri[len("s3://") :].split("/", 1)[0]
    return StagingError(
        f'ClientError: No S3 objects found under S3 URL "{uri}" given in input data source. Please ensure '
        f"that the bucket exists in the selected region, that objects exist under that S3 prefix, and that "
        f'the role has "s3:ListBucket" permissions on bucket "{bucket}".'
    )


def _manifest_entries(store: ObjectStore, uri: S3Uri) -> list[tuple[ObjectInfo, str]]:
    try:
        with store.open_read(uri) as fh:
            doc = json.load(fh)
    except (ValueError, OSError) as exc:
        raise StagingError(f"ClientError: could not read manifest file {uri}: {exc}") from exc
    except Exception as exc:
        raise _not_found(str(uri)) from exc
    if not isinstance(doc, list) or not doc or not isinstance(doc[0], dict) or "prefix" not in doc[0]:
        raise StagingError(
            f'ClientError: manifest file {uri} must be a JSON array starting with {{"prefix": "s3://..."}}'
        )
    prefix = S3Uri.parse(str(doc[0]["prefix"]))
    entries: list[tuple[ObjectInfo, str]] = []
    for rel in doc[1:]:
        if not isinstance(rel, str):
            raise StagingError(f"ClientError: manifest file {uri} holds a non-string entry {rel!r}")
        key = prefix.key + rel
        info = store.head(S3Uri(prefix.bucket, key))
        if info is None:
            raise StagingError(
                f"ClientError: object s3://{prefix.bucket}/{key} listed in manifest {uri} not found"
            )
        entries.append((info, rel))
    return entries


def stage_channel(store: ObjectStore, channel: dict[str, Any], dest: Path) -> StagedChannel:
    name = str(channel["ChannelName"])
    source = channel["DataSource"].get("S3DataSource")
    if source is None:
        raise StagingError(f"Channel {name}: only S3DataSource is supported by Homeport")
    uri_text = str(source["S3Uri"])
    uri = S3Uri.parse(uri_text)
    dest.mkdir(parents=True, exist_ok=True)
    if source["S3DataType"] == "ManifestFile":
        entries = _manifest_entries(store, uri)
    elif source["S3DataType"] == "S3Prefix":
        entries = [
            (info, relative_path(uri.key, info.key)) for info in store.list(uri) if not info.key.endswith("/")
        ]
    else:
        raise StagingError(f"Channel {name}: S3DataType {source['S3DataType']} is not supported by Homeport")
    if not entries:
        raise _not_found(uri_text)
    files = size = 0
    linked = True
    for info, rel in entries:
        linked = _place(store, info, _safe_target(dest, rel)) and linked
        files += 1
        size += info.size
    return StagedChannel(name, files, size, linked)

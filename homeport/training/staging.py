"""Channel staging: put a channel's objects into ``/opt/ml/input/data/<channel>/`` (File mode).

From the embedded local store a channel of at least :data:`LINK_FROM_BYTES` is hard-linked
(no bytes copied; the channel is then mounted read-only so a container cannot write through
the link into the store); a smaller one is copied, and so is writable as every File-mode
channel is on SageMaker (the Python SDK's ModelTrainer makes its driver script executable
in place). From an S3 backend objects are downloaded. Which objects and their relative paths
come from :mod:`homeport.storage.selection`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from homeport.storage.base import ObjectInfo, ObjectStore, S3Uri
from homeport.storage.selection import SelectionError, select_objects

# Channels this size or larger are hard-linked from the local store (and read-only).
LINK_FROM_BYTES = 32 * 1024 * 1024


class StagingError(Exception):
    """A channel could not be staged; the message becomes the job's FailureReason."""


@dataclass
class StagedChannel:
    name: str
    files: int
    bytes: int
    linked: bool  # some file hard-linked from the local store: mount the channel read-only


def _safe_target(root: Path, rel: str) -> Path:
    parts = PurePosixPath(rel).parts
    if not parts or any(p in {"..", "."} for p in parts) or PurePosixPath(rel).is_absolute():
        raise StagingError(f"Object key maps to an unsafe path inside the channel: {rel!r}")
    return root.joinpath(*parts)


def _place(store: ObjectStore, info: ObjectInfo, target: Path, link: bool) -> bool:
    """Link (when ``link``), copy or download one object; True when it was hard-linked."""
    target.parent.mkdir(parents=True, exist_ok=True)
    uri = S3Uri(info.bucket, info.key)
    source = store.local_path(uri)
    if source is not None:
        if link:
            with contextlib.suppress(OSError):  # another filesystem, say: copy instead
                os.link(source, target)
                return True
        shutil.copyfile(source, target)
        return False
    store.get_file(uri, target)
    return False


def stage_channel(
    store: ObjectStore, channel: dict[str, Any], dest: Path, link_from: int = LINK_FROM_BYTES
) -> StagedChannel:
    name = str(channel["ChannelName"])
    source = channel["DataSource"].get("S3DataSource")
    if source is None:
        raise StagingError(f"Channel {name}: only S3DataSource is supported by Homeport")
    dest.mkdir(parents=True, exist_ok=True)
    try:
        entries = select_objects(store, source["S3DataType"], str(source["S3Uri"]))
    except SelectionError as exc:
        raise StagingError(str(exc)) from exc
    link = sum(info.size for info, _ in entries) >= link_from
    files = size = 0
    linked = False
    for info, rel in entries:
        linked = _place(store, info, _safe_target(dest, rel), link) or linked
        files += 1
        size += info.size
    return StagedChannel(name, files, size, linked)

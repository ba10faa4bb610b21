"""The training code's source (``sagemaker_submit_directory``) and the status files.

``download_and_extract(uri, dest)`` puts the user's code in ``dest`` (``<base>/code``), as
sagemaker-training does, unless ``dest`` already has files:

* ``s3://bucket/key.tar.gz`` — downloaded with boto3 (``endpoint_url`` from ``S3_ENDPOINT_URL``,
  region from ``AWS_REGION``/``SAGEMAKER_REGION``), then extracted;
* a local tar archive (any compression tarfile reads; a ``file://`` URI or a path) — extracted;
* a local folder — copied; a local file — copied into ``dest``.

Extraction is refused, whole, when any member would land outside ``dest``: an absolute name, a
``..`` segment, a link (symbolic or hard) pointing outside, a device or FIFO. (The AWS toolkit
rewrites such names and skips the members; refusing says plainly that the archive is unsafe.)
The standard library's ``data`` filter also applies where it exists (Python ≥ 3.11.4), dropping
set-uid bits and ownership.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

from . import paths
from .errors import ClientError

S3_ENDPOINT_URL_ENV = "S3_ENDPOINT_URL"


class UnsafeArchive(ClientError):
    """A source archive with a member that would escape the code folder."""


def _inside(root: str, target: str) -> bool:
    return target == root or target.startswith(root + os.sep)


def check_member(member: tarfile.TarInfo, root: str) -> None:
    """Raise :class:`UnsafeArchive` unless ``member`` extracts inside ``root`` (a real path)."""
    name = member.name.replace("\\", "/")
    pure = PurePosixPath(name)
    if pure.is_absolute() or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchive(f"archive member {member.name!r} has an absolute path")
    if ".." in pure.parts:
        raise UnsafeArchive(f"archive member {member.name!r} escapes the destination with '..'")
    target = os.path.realpath(os.path.join(root, name))
    if not _inside(root, target):
        raise UnsafeArchive(f"archive member {member.name!r} resolves outside the destination")
    if member.ischr() or member.isblk() or member.isfifo() or member.isdev():
        raise UnsafeArchive(f"archive member {member.name!r} is a device or FIFO")
    if member.issym() or member.islnk():
        link = member.linkname.replace("\\", "/")
        if PurePosixPath(link).is_absolute():
            raise UnsafeArchive(f"archive link {member.name!r} points to an absolute path: {link!r}")
        base = root if member.islnk() else os.path.dirname(target)
        if not _inside(root, os.path.realpath(os.path.join(base, link))):
            raise UnsafeArchive(f"archive link {member.name!r} points outside the destination: {link!r}")


def safe_extract(archive: str | Path, dest: str | Path) -> None:
    """Extract a tar archive into ``dest``, refusing it whole if any member is unsafe."""
    os.makedirs(dest, exist_ok=True)
    root = os.path.realpath(dest)
    with tarfile.open(archive, mode="r:*") as tar:
        members = tar.getmembers()
        for member in members:
            check_member(member, root)
        if not hasattr(tarfile, "data_filter"):  # Python < 3.11.4 (Debian bookworm has 3.11.2)
            tar.extractall(root, members=members)
            return
        try:
            tar.extractall(root, members=members, filter="data")
        except tarfile.FilterError as exc:
            raise UnsafeArchive(f"unsafe archive: {exc}") from None


def s3_download(uri: str, dest: str | Path) -> None:
    """Download one S3 object to the file ``dest`` (boto3; S3_ENDPOINT_URL honoured)."""
    parsed = urlparse(uri)
    if parsed.scheme != "s3":
        raise ValueError(f"Expecting 's3' scheme, got: {parsed.scheme} in {uri}")
    import boto3

    region = os.environ.get("AWS_REGION") or os.environ.get("SAGEMAKER_REGION") or None
    client = boto3.client("s3", region_name=region, endpoint_url=os.environ.get(S3_ENDPOINT_URL_ENV) or None)
    client.download_file(parsed.netloc, parsed.path.lstrip("/"), str(dest))


def download_and_extract(uri: str, dest: str | Path | None = None) -> Path:
    """Put the code ``uri`` names into ``dest`` (default ``<base>/code``); nothing if it has files."""
    target = Path(dest) if dest is not None else paths.code_dir()
    target.mkdir(parents=True, exist_ok=True)
    if any(target.iterdir()):
        return target
    if uri.startswith("s3://"):
        with tempfile.TemporaryDirectory() as tmp:
            archive = Path(tmp) / "sourcedir.tar.gz"
            s3_download(uri, archive)
            safe_extract(archive, target)
        return target
    source = Path(uri.removeprefix("file://"))  # SDK local mode writes file:// URIs
    if source.is_dir():
        if source.resolve() != target.resolve():
            shutil.copytree(source, target, dirs_exist_ok=True)
    elif source.is_file() and tarfile.is_tarfile(source):
        safe_extract(source, target)
    elif source.is_file():
        shutil.copy2(source, target / source.name)
    else:
        raise ClientError(f"the source directory {uri} does not exist")
    return target


def write_success_file() -> None:
    path = paths.success_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("", encoding="utf-8")


def write_failure_file(message: str) -> bool:
    """Write ``<base>/output/failure`` unless the user's code already did; True when written."""
    path = paths.failure_file()
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(message, encoding="utf-8")
    return True

"""Uploads and downloads through the server's S3 API, with a Rich progress bar on stderr."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from homeport.cli.exit_codes import usage
from homeport.cli.output import err


@dataclass(frozen=True)
class S3Location:
    bucket: str
    key: str

    @classmethod
    def parse(cls, uri: str) -> S3Location:
        if not uri.startswith("s3://"):
            raise usage(f"not an s3:// URI: {uri!r}")
        bucket, _, key = uri[len("s3://") :].partition("/")
        if not bucket:
            raise usage(f"no bucket in {uri!r}")
        return cls(bucket, key)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def child(self, name: str) -> S3Location:
        base = self.key.rstrip("/")
        return S3Location(self.bucket, f"{base}/{name}" if base else name)


def _bar(quiet: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=quiet,
        transient=False,
    )


def ensure_bucket(s3: Any, bucket: str) -> None:
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError:
        try:
            s3.create_bucket(Bucket=bucket)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in (
                "BucketAlreadyOwnedByYou",
                "BucketAlreadyExists",
            ):
                raise


def upload_folder(s3: Any, local: Path, dest: S3Location, quiet: bool = False) -> int:
    """Upload a file or every file under a folder to ``dest`` (a prefix); returns the count."""
    if local.is_file():
        files = [(local, dest.child(local.name))]
    elif local.is_dir():
        files = [
            (p, dest.child(p.relative_to(local).as_posix())) for p in sorted(local.rglob("*")) if p.is_file()
        ]
    else:
        raise usage(f"no such file or folder: {local}")
    if not files:
        raise usage(f"nothing to upload in {local}")
    ensure_bucket(s3, dest.bucket)
    total = sum(p.stat().st_size for p, _ in files)
    with _bar(quiet) as bar:
        task = bar.add_task(f"upload {local.name}", total=total)
        for path, target in files:
            s3.upload_file(str(path), target.bucket, target.key, Callback=lambda n: bar.advance(task, n))
    if not quiet:
        err.print(f"uploaded {len(files)} file(s) from {local} to {dest}", highlight=False)
    return len(files)


def download_prefix(s3: Any, source: S3Location, local: Path, quiet: bool = False) -> list[Path]:
    """Download every object under ``source`` (a key or a prefix) into the folder ``local``."""
    objects: list[tuple[str, int]] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=source.bucket, Prefix=source.key):
        objects.extend((o["Key"], int(o["Size"])) for o in page.get("Contents", []))
    local.mkdir(parents=True, exist_ok=True)
    base = source.key.rstrip("/") + "/" if source.key and not any(k == source.key for k, _ in objects) else ""
    written: list[Path] = []
    with _bar(quiet) as bar:
        task = bar.add_task("download", total=sum(size for _, size in objects))
        for key, _size in objects:
            rel = key[len(base) :] if base and key.startswith(base) else key.rsplit("/", 1)[-1]
            target = local / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(source.bucket, key, str(target), Callback=lambda n: bar.advance(task, n))
            written.append(target)
    if not quiet:
        err.print(f"downloaded {len(written)} file(s) from {source} to {local}", highlight=False)
    return written

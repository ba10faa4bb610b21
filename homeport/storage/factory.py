"""Choosing the object-store backend from settings; boto3 is imported only for "s3"."""

from __future__ import annotations

from pathlib import Path

from homeport.storage.base import ObjectStore

KINDS = ("local", "s3")


def open_object_store(kind: str, objects_dir: Path, s3_endpoint_url: str | None, region: str) -> ObjectStore:
    """``local``: a folder (``objects_dir``); ``s3``: an S3-compatible endpoint (None → AWS)."""
    if kind == "local":
        from homeport.storage.local import LocalObjectStore

        return LocalObjectStore(objects_dir)
    if kind == "s3":
        # boto3 takes a noticeable fraction of a second to import; local setups never pay it.
        from homeport.storage.s3 import S3ObjectStore

        return S3ObjectStore(s3_endpoint_url, region=region)
    raise ValueError(f"unknown object store {kind!r}; expected one of: {', '.join(KINDS)}")

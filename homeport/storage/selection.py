"""Which objects an ``S3DataSource`` names, and the path each one takes below a folder.

Shared by training channels (File mode) and transform-job inputs: ``S3Prefix`` lists every
object under the prefix; ``ManifestFile`` reads a JSON manifest ``[{"prefix": "s3://…"},
"rel1", "rel2", …]``. Relative paths follow SageMaker: the part of the key after the prefix
(a prefix naming a whole folder or object drops everything up to it).
"""

from __future__ import annotations

import json
from pathlib import PurePosixPath

from homeport.storage.base import ObjectInfo, ObjectStore, S3Uri


class SelectionError(Exception):
    """The data source names nothing usable; the message is fit for a job's FailureReason."""


def relative_path(prefix_key: str, key: str) -> str:
    """Path of ``key`` below the destination folder for an S3Prefix of ``prefix_key``."""
    if key == prefix_key:
        return PurePosixPath(key).name
    rest = key[len(prefix_key) :]
    if prefix_key.endswith("/") or rest.startswith("/") or not prefix_key:
        return rest.lstrip("/")
    # A prefix ending inside a name ("data/tr" matching "data/train.csv"): keep the path
    # from the prefix's folder on, so nothing collides.
    folder = prefix_key[: prefix_key.rfind("/") + 1]
    return key[len(folder) :]


def no_objects(uri: str) -> SelectionError:
    bucket = uri[len("s3://") :].split("/", 1)[0]
    return SelectionError(
        f'ClientError: No S3 objects found under S3 URL "{uri}" given in input data source. Please ensure '
        f"that the bucket exists in the selected region, that objects exist under that S3 prefix, and that "
        f'the role has "s3:ListBucket" permissions on bucket "{bucket}".'
    )


def _manifest(store: ObjectStore, uri: S3Uri) -> list[tuple[ObjectInfo, str]]:
    try:
        with store.open_read(uri) as fh:
            doc = json.load(fh)
    except (ValueError, OSError) as exc:
        raise SelectionError(f"ClientError: could not read manifest file {uri}: {exc}") from exc
    except Exception as exc:
        raise no_objects(str(uri)) from exc
    if not isinstance(doc, list) or not doc or not isinstance(doc[0], dict) or "prefix" not in doc[0]:
        raise SelectionError(
            f'ClientError: manifest file {uri} must be a JSON array starting with {{"prefix": "s3://..."}}'
        )
    prefix = S3Uri.parse(str(doc[0]["prefix"]))
    entries: list[tuple[ObjectInfo, str]] = []
    for rel in doc[1:]:
        if not isinstance(rel, str):
            raise SelectionError(f"ClientError: manifest file {uri} holds a non-string entry {rel!r}")
        key = prefix.key + rel
        info = store.head(S3Uri(prefix.bucket, key))
        if info is None:
            raise SelectionError(
                f"ClientError: object s3://{prefix.bucket}/{key} listed in manifest {uri} not found"
            )
        entries.append((info, rel))
    return entries


def select_objects(store: ObjectStore, data_type: str, uri_text: str) -> list[tuple[ObjectInfo, str]]:
    """Every object an S3Prefix or ManifestFile source names, with its relative path; never empty."""
    uri = S3Uri.parse(uri_text)
    if data_type == "ManifestFile":
        entries = _manifest(store, uri)
    elif data_type == "S3Prefix":
        entries = [
            (info, relative_path(uri.key, info.key)) for info in store.list(uri) if not info.key.endswith("/")
        ]
    else:
        raise SelectionError(f"S3DataType {data_type} is not supported by Homeport")
    if not entries:
        raise no_objects(uri_text)
    return entries

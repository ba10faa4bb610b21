"""The input objects of a transform job and where each one's output goes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from homeport.storage.base import ObjectStore, S3Uri
from homeport.training.staging import relative_path


class InputError(Exception):
    """The job's input cannot be listed; the message becomes its FailureReason."""


@dataclass(frozen=True)
class InputObject:
    uri: S3Uri
    relative: str  # path under S3OutputPath, before ".out"
    size: int


def list_inputs(store: ObjectStore, data_source: dict[str, Any]) -> list[InputObject]:
    source = data_source["S3DataSource"]
    uri = S3Uri.parse(source["S3Uri"])
    if source["S3DataType"] == "ManifestFile":
        try:
            with store.open_read(uri) as fh:
                doc = json.load(fh)
        except Exception as exc:
            raise InputError(f"ClientError: could not read manifest file {uri}: {exc}") from exc
        if not isinstance(doc, list) or not doc or not isinstance(doc[0], dict) or "prefix" not in doc[0]:
            raise InputError(
                f'ClientError: manifest file {uri} must be a JSON array starting with {{"prefix": ...}}'
            )
        prefix = S3Uri.parse(str(doc[0]["prefix"]))
        objects = []
        for rel in doc[1:]:
            info = store.head(S3Uri(prefix.bucket, prefix.key + str(rel)))
            if info is None:
                raise InputError(
                    f"ClientError: object s3://{prefix.bucket}/{prefix.key}{rel} listed in {uri} not found"
                )
            objects.append(InputObject(S3Uri(info.bucket, info.key), str(rel), info.size))
        return objects
    if source["S3DataType"] != "S3Prefix":
        raise InputError(f"S3DataType {source['S3DataType']} is not supported for transform jobs by Homeport")
    objects = [
        InputObject(S3Uri(info.bucket, info.key), relative_path(uri.key, info.key), info.size)
        for info in store.list(uri)
        if not info.key.endswith("/")
    ]
    if not objects:
        raise InputError(f'ClientError: No S3 objects found under S3 URL "{uri}" given in input data source.')
    return objects

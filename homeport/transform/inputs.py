"""The input objects of a transform job and where each one's output goes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from homeport.storage.base import ObjectStore, S3Uri
from homeport.storage.selection import SelectionError, select_objects


class InputError(Exception):
    """The job's input cannot be listed; the message becomes its FailureReason."""


@dataclass(frozen=True)
class InputObject:
    uri: S3Uri
    relative: str  # path under S3OutputPath, before ".out"
    size: int


def list_inputs(store: ObjectStore, data_source: dict[str, Any]) -> list[InputObject]:
    source = data_source["S3DataSource"]
    try:
        entries = select_objects(store, source["S3DataType"], source["S3Uri"])
    except SelectionError as exc:
        raise InputError(str(exc)) from exc
    return [InputObject(S3Uri(info.bucket, info.key), rel, info.size) for info, rel in entries]

"""What every S3 handler gets: the object store and the region, and the handler signature."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from homeport.api.runtime_api import Send
from homeport.api.s3.request import S3Request
from homeport.storage.base import S3Uri
from homeport.storage.local import LocalObjectStore


@dataclass(frozen=True)
class S3Context:
    objects: LocalObjectStore
    region: str


Handler = Callable[[S3Context, S3Request, Send], Awaitable[None]]


def object_uri(request: S3Request) -> S3Uri:
    return S3Uri(request.bucket, request.key)

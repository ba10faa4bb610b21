"""An S3 request as the handlers see it: bucket and key (path-style or virtual-hosted), query
parameters and headers, read from the ASGI scope."""

from __future__ import annotations

import secrets
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

from homeport.api.runtime_api import Receive
from homeport.api.s3.errors import S3Error, invalid_bucket_name, key_too_long

MAX_KEY_BYTES = 1024
# Virtual-hosted style: "<bucket>.localhost[:port]" names the bucket in the Host header.
VIRTUAL_HOST_SUFFIX = ".localhost"


def new_request_id() -> str:
    return secrets.token_hex(8).upper()


@dataclass
class S3Request:
    scope: MutableMapping[str, Any]
    receive: Receive
    method: str
    bucket: str
    key: str
    query: dict[str, str]
    headers: dict[str, str]
    request_id: str = field(default_factory=new_request_id)

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name, default)

    @property
    def resource(self) -> str:
        return f"/{self.bucket}/{self.key}" if self.key else f"/{self.bucket}" if self.bucket else "/"

    @property
    def base_url(self) -> str:
        host = self.headers.get("host")
        scheme = self.scope.get("scheme", "http")
        if not host:
            server = self.scope.get("server") or ("127.0.0.1", 80)
            host = f"{server[0]}:{server[1]}"
        return f"{scheme}://{host}"


def _decode_path(raw: bytes) -> str:
    try:
        return unquote(raw.decode("ascii"), errors="strict")
    except (UnicodeDecodeError, UnicodeEncodeError) as exc:
        raise S3Error("InvalidURI", "Couldn't parse the specified URI.", 400) from exc


def parse_request(scope: MutableMapping[str, Any], receive: Receive) -> S3Request:
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers", ()):
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        headers[name] = f"{headers[name]},{value}" if name in headers else value
    raw_path: bytes | None = scope.get("raw_path")
    path = _decode_path(raw_path.split(b"?", 1)[0]) if raw_path else str(scope.get("path", "/"))
    try:
        pairs = parse_qsl(
            scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True, errors="strict"
        )
    except UnicodeDecodeError as exc:
        raise S3Error("InvalidURI", "Couldn't parse the specified URI.", 400) from exc
    query: dict[str, str] = {}
    for name, value in pairs:
        query.setdefault(name, value)
    path = path.removeprefix("/")
    host = headers.get("host", "").rsplit(":", 1)[0].lower() if "]" not in headers.get("host", "") else ""
    if host.endswith(VIRTUAL_HOST_SUFFIX) and len(host) > len(VIRTUAL_HOST_SUFFIX):
        bucket, key = host[: -len(VIRTUAL_HOST_SUFFIX)], path
    else:
        bucket, _, key = path.partition("/")
    if bucket and (bucket.startswith(".") or "\0" in bucket or len(bucket) > 255):
        raise invalid_bucket_name(bucket)
    if len(key.encode("utf-8", "surrogateescape")) > MAX_KEY_BYTES:
        raise key_too_long()
    return S3Request(scope, receive, scope["method"].upper(), bucket, key, query, headers)

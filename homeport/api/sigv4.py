"""Which AWS service a request was signed for, read from its SigV4 credential scope.

Homeport serves several AWS APIs on one URL; clients say which one they mean in the
credential scope they sign with (``AKID/20240101/us-east-1/s3/aws4_request``), carried by the
``Authorization`` header or, for presigned URLs, the ``X-Amz-Credential`` query parameter.
Signatures are never verified here: this only routes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any
from urllib.parse import unquote

_V4_PREFIXES = (b"AWS4-HMAC-SHA256 ", b"AWS4-ECDSA-P256-SHA256 ")
_CREDENTIAL = b"Credential="
_QUERY_CREDENTIAL = b"X-Amz-Credential="


def _service_of(credential: str) -> str | None:
    """``AKID/DATE/REGION/SERVICE/aws4_request`` (SigV4a has no REGION) -> SERVICE."""
    parts = credential.strip().split("/")
    if len(parts) < 4 or parts[-1] != "aws4_request":
        return None
    return parts[-2] or None


def signing_service(scope: MutableMapping[str, Any]) -> str | None:
    """The service an HTTP request's signature is scoped to ("s3", "sagemaker", ...), else None.

    SigV2 (``Authorization: AWS AKID:signature`` or presigned ``AWSAccessKeyId=`` +
    ``Signature=`` query parameters) is spoken only by S3, so it counts as "s3".
    """
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            if value.startswith(_V4_PREFIXES):
                at = value.find(_CREDENTIAL)
                if at < 0:
                    return None
                credential = value[at + len(_CREDENTIAL) :].split(b",", 1)[0]
                return _service_of(credential.decode("latin-1"))
            if value.startswith(b"AWS "):
                return "s3"
            return None
    query: bytes = scope.get("query_string", b"")
    if query:
        for param in query.split(b"&"):
            if param.startswith(_QUERY_CREDENTIAL):
                return _service_of(unquote(param[len(_QUERY_CREDENTIAL) :].decode("latin-1")))
        params = {param.split(b"=", 1)[0] for param in query.split(b"&")}
        if b"AWSAccessKeyId" in params and b"Signature" in params:
            return "s3"
    return None


_Scope = MutableMapping[str, Any]
_Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
_Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
_ASGIApp = Callable[[_Scope, _Receive, _Send], Awaitable[None]]


def by_signing_service(default: _ASGIApp, services: Mapping[str, _ASGIApp]) -> _ASGIApp:
    """One ASGI app in front of several: an HTTP request goes to the app of the service its
    signature is scoped to (read once per request), everything else (lifespan, unsigned
    requests, SageMaker's own) to ``default``."""
    routes = dict(services)

    async def dispatch(scope: _Scope, receive: _Receive, send: _Send) -> None:
        if scope["type"] == "http" and routes:
            service = signing_service(scope)
            target = routes.get(service) if service is not None else None
            if target is not None:
                await target(scope, receive, send)
                return
        await default(scope, receive, send)

    return dispatch

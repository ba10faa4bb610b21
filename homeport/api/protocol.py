"""SageMaker's JSON 1.1 wire protocol: ``POST /`` with ``X-Amz-Target: SageMaker.<Operation>``.

This module owns decoding a request into (operation, params), rendering results, and the one
place where a :class:`~homeport.errors.HomeportError` becomes the AWS error body
``{"__type": code, "message": text}`` with its HTTP status and ``x-amzn-RequestId``.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from homeport.errors import HomeportError, SerializationException, UnknownOperationException

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/x-amz-json-1.1"
TARGET_PREFIX = "SageMaker."


def new_request_id() -> str:
    return str(uuid.uuid4())


def operation_name(request: Request) -> str:
    target = request.headers.get("x-amz-target", "")
    if not target.startswith(TARGET_PREFIX) or len(target) == len(TARGET_PREFIX):
        # What AWS JSON services answer for a target they do not know.
        raise UnknownOperationException(f"Operation {target or '(none)'} is not supported.")
    return target[len(TARGET_PREFIX) :]


def decode_body(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise SerializationException(f"Could not parse the request body as JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise SerializationException(
            "Start of structure or map expected: the request body must be a JSON object."
        )
    return body


def _prune(value: Any) -> Any:
    """Drop None members recursively: AWS omits absent optional members."""
    if isinstance(value, Mapping):
        return {k: _prune(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_prune(v) for v in value]
    return value


def json_response(result: Mapping[str, Any], request_id: str) -> Response:
    body = json.dumps(_prune(result), separators=(",", ":"), ensure_ascii=False)
    return Response(
        body,
        status_code=200,
        media_type=CONTENT_TYPE,
        headers={"x-amzn-RequestId": request_id},
    )


def error_response(error: HomeportError, request_id: str) -> Response:
    body = json.dumps({"__type": error.code, "message": error.message}, ensure_ascii=False)
    return Response(
        body,
        status_code=error.status,
        media_type=CONTENT_TYPE,
        headers={"x-amzn-RequestId": request_id, "x-amzn-ErrorType": error.code},
    )

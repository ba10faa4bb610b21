"""SageMaker Runtime (rest-json) on the same server: InvokeEndpoint and its streaming variant.

``POST /endpoints/{name}/invocations`` is the data plane's hot path: it is served by a bare
ASGI handler placed in front of the Starlette application (:meth:`RuntimeEdge.wrap`), which
costs about a third less CPU per request than a Starlette route on this 2-core machine.
``.../invocations-response-stream`` is an ordinary Starlette route. Errors use the runtime's
vocabulary (ValidationError, ModelError 424 with OriginalStatusCode/OriginalMessage/
LogStreamArn, ServiceUnavailable). Everything runs on the event loop; the store is consulted
(in the thread pool) only on the error path, to tell "unknown" from "not ready".
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import unquote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from homeport.api import protocol
from homeport.config import Settings
from homeport.errors import HomeportError, ModelError, PayloadTooLarge, ServiceUnavailable, ValidationError
from homeport.hosting import eventstream
from homeport.hosting.router import (
    NoHealthyInstance,
    NoSuchRoute,
    Router,
    RouterError,
    UnknownVariant,
    UpstreamTimeout,
)
from homeport.store.database import Store

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_BODY = 6 * 1024 * 1024  # BodyBlob max in the sagemaker-runtime model
INVOCATION_TIMEOUT = 60.0
# Request headers a container sees (SageMaker strips the others).
FORWARDED = frozenset(
    {
        "content-type",
        "accept",
        "x-amzn-sagemaker-custom-attributes",
        "x-amzn-sagemaker-inference-id",
        "x-amzn-sagemaker-target-model",
        "x-amzn-sagemaker-session-id",
    }
)
CUSTOM_ATTRIBUTES = "x-amzn-sagemaker-custom-attributes"
TARGET_VARIANT = "x-amzn-sagemaker-target-variant"
RUNTIME_JSON = "application/json"
_PREFIX = "/endpoints/"
_SUFFIX = "/invocations"


def error_body(error: HomeportError) -> bytes:
    body: dict[str, object] = {"message": error.message}
    if isinstance(error, ModelError):
        body = {
            "Message": error.message,
            "OriginalStatusCode": error.original_status,
            "OriginalMessage": error.original_message,
            "LogStreamArn": error.log_stream_arn,
        }
    return json.dumps(body).encode()


def _too_large() -> PayloadTooLarge:
    return PayloadTooLarge(f"HTTP content length exceeded {MAX_BODY} bytes.")


class RuntimeEdge:
    def __init__(self, settings: Settings, store: Store, router: Router) -> None:
        self.settings = settings
        self.store = store
        self.router = router

    # -- errors ----------------------------------------------------------------------------------

    def log_group_url(self, endpoint: str) -> str:
        r = self.settings.region
        return (
            f"https://{r}.console.aws.amazon.com/cloudwatch/home?region={r}#logEventViewer:"
            f"group=/aws/sagemaker/Endpoints/{endpoint}"
        )

    def model_error(self, endpoint: str, status: int, body: bytes) -> ModelError:
        text = body.decode("utf-8", errors="replace")
        kind = "client" if status < 500 else "server"
        account = self.settings.account
        return ModelError(
            f'Received {kind} error ({status}) from primary with message "{text}". '
            f"See {self.log_group_url(endpoint)} in account {account} for more information.",
            original_status=status,
            original_message=text,
            log_stream_arn=f"arn:aws:logs:{self.settings.region}:{account}:log-group:"
            f"/aws/sagemaker/Endpoints/{endpoint}",
        )

    async def translate(self, endpoint: str, exc: RouterError) -> HomeportError:
        account = self.settings.account
        if isinstance(exc, NoSuchRoute):
            rec = await run_in_threadpool(self.store.get_endpoint, endpoint)
            if rec is None or rec.status == "Deleting":
                return ValidationError(f"Endpoint {endpoint} of account {account} not found.")
            return ValidationError(
                f"Endpoint {endpoint} of account {account} is not ready: its status is {rec.status}."
            )
        if isinstance(exc, UnknownVariant):
            return ValidationError(
                f"Endpoint {endpoint} of account {account} has no production variant {exc}."
            )
        if isinstance(exc, NoHealthyInstance):
            return ServiceUnavailable(
                f"Endpoint {endpoint} has no healthy instance at the moment; retry shortly."
            )
        if isinstance(exc, UpstreamTimeout):
            return ModelError(
                'Received server error (0) from primary with message "Your invocation timed out while '
                "waiting for a response from container primary. Review the latency metrics for each "
                'container in Amazon CloudWatch, resolve the issue, and try again.". '
                f"See {self.log_group_url(endpoint)} in account {account} for more information.",
                0,
                "",
                "",
            )
        return ServiceUnavailable(f"Endpoint {endpoint}: the instance could not be reached: {exc}")

    # -- InvokeEndpoint (bare ASGI) --------------------------------------------------------------

    def wrap(self, app: ASGIApp) -> ASGIApp:
        """Serve InvokeEndpoint before ``app`` sees the request; everything else goes to ``app``."""

        async def asgi(scope: Scope, receive: Receive, send: Send) -> None:
            path: str = scope.get("path", "")
            if (
                scope["type"] == "http"
                and scope["method"] == "POST"
                and path.startswith(_PREFIX)
                and path.endswith(_SUFFIX)
                and "/" not in path[len(_PREFIX) : -len(_SUFFIX)]
            ):
                await self._invoke(unquote(path[len(_PREFIX) : -len(_SUFFIX)]), scope, receive, send)
            else:
                await app(scope, receive, send)

        return asgi

    async def _invoke(self, endpoint: str, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = protocol.new_request_id()
        try:
            headers: list[tuple[str, str]] = []
            target: str | None = None
            for raw_name, raw_value in scope["headers"]:
                name = raw_name.decode("latin-1").lower()
                if name in FORWARDED:
                    headers.append((name, raw_value.decode("latin-1")))
                elif name == TARGET_VARIANT:
                    target = raw_value.decode("latin-1")
                elif name == "content-length" and int(raw_value) > MAX_BODY:
                    raise _too_large()
            body = await self._read_body(receive)
            try:
                result = await self.router.invoke(
                    endpoint.lower(), body, headers, target, timeout=INVOCATION_TIMEOUT
                )
            except RouterError as exc:
                raise await self.translate(endpoint, exc) from exc
            if result.status >= 400:
                raise self.model_error(endpoint, result.status, result.body)
        except HomeportError as error:
            await self._send(send, error.status, self._error_headers(error, request_id), error_body(error))
            return
        out = [
            (b"x-amzn-requestid", request_id.encode()),
            (b"x-amzn-invoked-production-variant", result.variant.encode()),
        ]
        content_type = b"application/octet-stream"
        for name, value in result.headers:
            lower = name.lower()
            if lower == "content-type":
                content_type = value.encode("latin-1")
            elif lower == CUSTOM_ATTRIBUTES:
                out.append((b"x-amzn-sagemaker-custom-attributes", value.encode("latin-1")))
        out.append((b"content-type", content_type))
        await self._send(send, 200, out, result.body)

    @staticmethod
    async def _read_body(receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY:
                raise _too_large()
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    @staticmethod
    def _error_headers(error: HomeportError, request_id: str) -> list[tuple[bytes, bytes]]:
        return [
            (b"content-type", RUNTIME_JSON.encode()),
            (b"x-amzn-requestid", request_id.encode()),
            (b"x-amzn-errortype", error.code.encode()),
        ]

    @staticmethod
    async def _send(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    # -- InvokeEndpointWithResponseStream (Starlette route) --------------------------------------

    def routes(self) -> list[Route]:
        return [Route("/endpoints/{name}/invocations-response-stream", self._invoke_stream, methods=["POST"])]

    async def _invoke_stream(self, request: Request) -> Response:
        request_id = protocol.new_request_id()
        endpoint = request.path_params["name"]
        try:
            length = request.headers.get("content-length")
            if length is not None and int(length) > MAX_BODY:
                raise _too_large()
            body = await request.body()
            if len(body) > MAX_BODY:
                raise _too_large()
            headers = [(k, v) for k, v in request.headers.items() if k in FORWARDED and k != "accept"]
            accept = request.headers.get("x-amzn-sagemaker-accept")
            if accept:
                headers.append(("accept", accept))
            target = request.headers.get(TARGET_VARIANT)
            try:
                stream = await self.router.invoke_stream(
                    endpoint.lower(), body, headers, target, timeout=INVOCATION_TIMEOUT
                )
            except RouterError as exc:
                raise await self.translate(endpoint, exc) from exc
            if stream.status >= 400:
                chunks = [chunk async for chunk in stream.body]
                raise self.model_error(endpoint, stream.status, b"".join(chunks))
        except HomeportError as error:
            return Response(
                error_body(error),
                status_code=error.status,
                media_type=RUNTIME_JSON,
                headers={"x-amzn-RequestId": request_id, "x-amzn-ErrorType": error.code},
            )
        content_type = next(
            (v for k, v in stream.headers if k.lower() == "content-type"), "application/octet-stream"
        )

        async def frames() -> AsyncIterator[bytes]:
            try:
                async for chunk in stream.body:
                    if chunk:
                        yield eventstream.payload_part(chunk)
            except Exception as exc:  # the stream has started: report in-band, as SageMaker does
                yield eventstream.model_stream_error(str(exc) or type(exc).__name__, "ModelStreamError")
            finally:
                await stream.aclose()  # a client gone mid-stream must not keep the instance "busy"

        return StreamingResponse(
            frames(),
            status_code=200,
            media_type="application/vnd.amazon.eventstream",
            headers={
                "x-amzn-RequestId": request_id,
                "x-Amzn-Invoked-Production-Variant": stream.variant,
                "X-Amzn-SageMaker-Content-Type": content_type,
            },
        )

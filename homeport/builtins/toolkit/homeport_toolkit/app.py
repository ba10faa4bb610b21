"""The serving ASGI app: a bare callable, no framework routing.

``GET /ping`` → 200 with an empty body (the worker only listens once its model is loaded);
``POST /invocations`` → the handler pipeline, called inline on the event loop (a fast model
loses half its throughput to a thread pool hop); ``GET /execution-parameters`` →
``{"MaxConcurrentTransforms": <workers>, "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": 6}``;
anything else → 404.

The model is loaded in the lifespan startup of each worker process; a failure there (an import
error, a ValueError from mixing transform_fn with the trio, model_fn raising) is logged with its
traceback and fails the startup, which stops the server (uvicorn exits with its startup-failure
code, and its supervisor stops the other workers).

uvicorn imports ``homeport_toolkit.app:app`` in every worker; the ``serve`` process passes the
image's default handler module and the worker count through the environment.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import traceback
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from .handler import Transformer, build

DEFAULT_HANDLER_ENV = "HOMEPORT_TOOLKIT_DEFAULT_HANDLER"
WORKERS_ENV = "HOMEPORT_TOOLKIT_WORKERS"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

log = logging.getLogger("homeport_toolkit")


def _response(status: int, body: bytes, content_type: bytes) -> tuple[Message, Message]:
    start = {
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", content_type), (b"content-length", b"%d" % len(body))],
    }
    return start, {"type": "http.response.body", "body": body}


_PING = _response(200, b"", b"text/plain")
_NOT_FOUND = _response(404, b"Not Found", b"text/plain")
_NOT_LOADED = _response(503, b"The model is not loaded", b"text/plain")


class App:
    """The ASGI callable. ``transformer`` is set by the lifespan startup (or by a test)."""

    def __init__(self, transformer: Transformer | None = None, workers: int | None = None) -> None:
        self.transformer = transformer
        self.workers = workers
        self._execution_parameters: tuple[Message, Message] | None = None

    def startup(self) -> None:
        if not logging.getLogger().handlers:  # a spawned worker: the serve process's setup is not inherited
            logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, stream=sys.stderr)
        if self.transformer is None:
            transformer = build(os.environ.get(DEFAULT_HANDLER_ENV) or None)
            transformer.load()
            self.transformer = transformer
        elif not self.transformer.loaded:
            self.transformer.load()
        workers = self.workers or int(os.environ.get(WORKERS_ENV) or os.cpu_count() or 1)
        body = json.dumps(
            {"MaxConcurrentTransforms": workers, "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": 6}
        ).encode()
        self._execution_parameters = _response(200, body, b"application/json")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            path = scope["path"]
            method = scope["method"]
            if path == "/invocations" and method == "POST":
                await self._invoke(scope, receive, send)
                return
            if path == "/ping" and method == "GET":
                start, end = _PING if self.transformer is not None else _NOT_LOADED
            elif path == "/execution-parameters" and method == "GET" and self._execution_parameters:
                start, end = self._execution_parameters
            else:
                start, end = _NOT_FOUND
            await send(start)
            await send(end)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _invoke(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        body: bytes = message.get("body", b"")
        if message.get("more_body"):
            chunks = [body]
            while message.get("more_body"):
                message = await receive()
                chunks.append(message.get("body", b""))
            body = b"".join(chunks)
        content_type = accept = None
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value.decode("latin-1")
            elif name == b"accept":
                accept = value.decode("latin-1")
        transformer = self.transformer
        if transformer is None:
            start, end = _NOT_LOADED
        else:
            status, out, out_type = transformer.invoke(body, content_type, accept)
            start, end = _response(status, out, out_type.encode("latin-1", "replace"))
        await send(start)
        await send(end)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    self.startup()
                except BaseException as exc:  # noqa: BLE001 - reported, then the server stops
                    traceback.print_exc(file=sys.stderr)
                    await send({"type": "lifespan.startup.failed", "message": f"{type(exc).__name__}: {exc}"})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return


app = App()

"""The Starlette application: the SageMaker control plane on ``POST /`` and Homeport's own routes.

Concurrency: requests are handled on the event loop; each operation handler (which talks to
the metadata store and object store synchronously) runs in Starlette's thread pool.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from homeport.api import protocol
from homeport.api.operations import OperationTable
from homeport.api.service_model import operation as model_operation
from homeport.api.validation import validate_input
from homeport.errors import HomeportError, InternalFailure, UnknownOperationException

log = logging.getLogger(__name__)


def build_app(
    operations: OperationTable,
    lifespan: Callable[[Starlette], AbstractAsyncContextManager[None]] | None = None,
    extra_routes: Sequence[BaseRoute] = (),
) -> Starlette:
    async def control_plane(request: Request) -> Response:
        request_id = protocol.new_request_id()
        try:
            name = protocol.operation_name(request)
            op_model = model_operation(name)
            if op_model is None:
                raise UnknownOperationException(f"Operation SageMaker.{name} is not supported.")
            handler = operations.get(name)
            if handler is None:
                raise UnknownOperationException(
                    f"Operation SageMaker.{name} is not implemented by this Homeport server."
                )
            params = protocol.decode_body(await request.body())
            validate_input(op_model, params)
            result = await run_in_threadpool(handler, params)
            return protocol.json_response(result, request_id)
        except HomeportError as error:
            return protocol.error_response(error, request_id)
        except Exception:  # the edge must answer in the AWS shape whatever happened
            log.exception("unhandled error in request %s", request_id)
            return protocol.error_response(InternalFailure("An internal error occurred."), request_id)

    async def health(_: Request) -> Response:
        return JSONResponse({"status": "ok", "operations": operations.names()})

    @asynccontextmanager
    async def _no_lifespan(_: Starlette) -> AsyncIterator[None]:
        yield

    return Starlette(
        routes=[
            Route("/", control_plane, methods=["POST"]),
            Route("/_homeport/health", health, methods=["GET"]),
            *extra_routes,
        ],
        lifespan=lifespan or _no_lifespan,
    )

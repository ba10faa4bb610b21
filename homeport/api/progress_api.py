"""Homeport's own read-only progress route for transform jobs (SageMaker has no such field).

``GET /_homeport/transform-jobs/{name}`` → ``{"TransformJobStatus", "FailureReason",
"ObjectsTotal", "ObjectsDone", "RecordsDone"}``; the CLI draws its progress bar from it.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from homeport.store.database import Store


def progress_routes(store: Store) -> list[Route]:
    async def transform_progress(request: Request) -> Response:
        rec = await run_in_threadpool(store.get_transform_job, request.path_params["name"])
        if rec is None:
            return JSONResponse({"message": "Requested resource not found."}, status_code=404)
        return JSONResponse(
            {"TransformJobStatus": rec.status, "FailureReason": rec.failure_reason, **rec.progress}
        )

    return [Route("/_homeport/transform-jobs/{name}", transform_progress, methods=["GET"])]

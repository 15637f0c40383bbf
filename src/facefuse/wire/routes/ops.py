"""Health, readiness and metrics (docs/api.md B.8)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from facefuse.errors import Err, FacefuseError
from facefuse.wire.context import AppContext
from facefuse.wire.metrics import render_metrics
from facefuse.wire.responses import JsonResponse

router = APIRouter()


@router.get("/healthz")
async def healthz() -> JsonResponse:
    """The process and its event loop are alive."""
    return JsonResponse({"status": "ok"})


@router.get("/readyz")
async def readyz(request: Request) -> JsonResponse:
    """Models loaded, and the database and the blob store answer: ready for traffic."""
    ctx: AppContext = request.app.state.ctx
    if not ctx.ready:
        raise FacefuseError(Err.SERVER_BUSY, "warming up")
    await run_in_threadpool(ctx.db.ping)
    await run_in_threadpool(ctx.blobs.ping)
    return JsonResponse({"status": "ready", "queue": ctx.pool.admitted})


@router.get("/metrics")
async def metrics() -> Response:
    body, content_type = render_metrics()
    return Response(body, media_type=content_type)

"""GET /v3/results/<token>.jpg — stored results behind unguessable, expiring links."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from facefuse.errors import Err, FacefuseError
from facefuse.wire.context import AppContext

router = APIRouter()


@router.get("/v3/results/{name}")
async def get_result(name: str, request: Request) -> Response:
    ctx: AppContext = request.app.state.ctx
    token = name.removesuffix(".jpg")
    jpeg = await run_in_threadpool(ctx.results.read, token) if name.endswith(".jpg") else None
    if jpeg is None:
        raise FacefuseError(Err.NOT_FOUND, "no such result, or the link has expired")
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})

"""GET /v3/results/<token>.jpg — stored results behind unguessable, expiring links."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import FileResponse

from facefuse.errors import Err, FacefuseError
from facefuse.wire.context import AppContext

router = APIRouter()


@router.get("/v3/results/{name}")
async def get_result(name: str, request: Request) -> FileResponse:
    ctx: AppContext = request.app.state.ctx
    token = name.removesuffix(".jpg")
    path = ctx.results.path_for(token) if name.endswith(".jpg") else None
    if path is None or not path.is_file():
        raise FacefuseError(Err.NOT_FOUND, "no such result, or the link has expired")
    return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})

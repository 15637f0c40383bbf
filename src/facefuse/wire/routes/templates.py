"""The template API (docs/api.md B.1, B.11): every key may look, admin keys may add and delete."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from facefuse import worker
from facefuse.errors import Err, FacefuseError
from facefuse.templates.preview import template_view
from facefuse.templates.registry import TemplateInfo
from facefuse.wire.auth import authenticate
from facefuse.wire.context import AppContext
from facefuse.wire.media_input import as_bytes, fetch_if_url
from facefuse.wire.responses import JsonResponse
from facefuse.wire.schemas import TemplateCreateRequest
from facefuse.wire.validation import parse_json_object, validate

router = APIRouter(prefix="/v3/templates")
# A browser asks again each time (no-cache) and gets 304 while the photo is unchanged: a
# template removed and added anew under its id never shows the old thumbnail.
THUMBNAIL_CACHE_CONTROL = "private, no-cache"


async def _context(request: Request, admin: bool) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    await authenticate(ctx, request, admin=admin)
    return ctx


@router.post("")
async def create_template(request: Request) -> JsonResponse:
    ctx = await _context(request, admin=True)
    body = parse_json_object(await request.body(), ctx.settings.max_json_depth, ctx.settings.max_json_list_length)
    create = validate(TemplateCreateRequest, body)
    raw = await fetch_if_url(ctx, create.media_info_list[0])
    parameter = create.parameter

    added = await ctx.pool.run(
        worker.add_template,
        as_bytes(ctx, raw),
        parameter.template_id,
        parameter.name,
        parameter.fuse_degree,
        parameter.shape_degree,
    )
    return JsonResponse(added)


@router.get("")
async def list_templates(request: Request) -> JsonResponse:
    ctx = await _context(request, admin=False)

    def views() -> list[dict[str, object]]:
        return [template_view(ctx.registry, info) for info in ctx.registry.list()]

    return JsonResponse({"templates": await run_in_threadpool(views)})


@router.get("/{template_id}")
async def get_template(template_id: str, request: Request) -> JsonResponse:
    ctx = await _context(request, admin=False)
    return JsonResponse(await run_in_threadpool(template_view, ctx.registry, await _existing(ctx, template_id)))


@router.get("/{template_id}/thumbnail")
async def get_thumbnail(template_id: str, request: Request) -> Response:
    ctx = await _context(request, admin=False)
    info = await _existing(ctx, template_id)
    etag = f'"{info.revision}"'
    headers = {"Cache-Control": THUMBNAIL_CACHE_CONTROL, "ETag": etag}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    key = (info.template_id, info.revision)
    data = ctx.thumbnails.get(key)
    if data is None:
        try:
            data = await ctx.pool.run(worker.template_thumbnail, template_id, idempotent=True)
        except FacefuseError as error:
            if error.error is Err.TEMPLATE_NOT_FOUND:  # deleted since we looked
                raise FacefuseError(Err.NOT_FOUND, f"no template {template_id!r}") from None
            raise
        ctx.thumbnails.put(key, data)
    return Response(data, media_type="image/jpeg", headers=headers)


@router.delete("/{template_id}")
async def delete_template(template_id: str, request: Request) -> JsonResponse:
    ctx = await _context(request, admin=True)
    if not await run_in_threadpool(ctx.registry.remove, template_id):
        raise FacefuseError(Err.NOT_FOUND, f"no template {template_id[:64]!r}")
    return JsonResponse({"template_id": template_id, "deleted": True})


async def _existing(ctx: AppContext, template_id: str) -> TemplateInfo:
    info = await run_in_threadpool(ctx.registry.get, template_id)
    if info is None:
        raise FacefuseError(Err.NOT_FOUND, f"no template {template_id[:64]!r}")
    return info

"""The admin template API (docs/api.md B.1): admin keys only."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from facefuse import worker
from facefuse.errors import Err, FacefuseError
from facefuse.wire.auth import authenticate
from facefuse.wire.context import AppContext
from facefuse.wire.media_input import as_bytes, fetch_if_url
from facefuse.wire.responses import JsonResponse
from facefuse.wire.schemas import TemplateCreateRequest
from facefuse.wire.validation import parse_json_object, validate

router = APIRouter(prefix="/v3/templates")


def _admin_context(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    authenticate(ctx, request, admin=True)
    return ctx


@router.post("")
async def create_template(request: Request) -> JsonResponse:
    ctx = _admin_context(request)
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
    ctx = _admin_context(request)
    templates = await run_in_threadpool(ctx.registry.list)
    return JsonResponse({"templates": [t.to_dict() for t in templates]})


@router.get("/{template_id}")
async def get_template(template_id: str, request: Request) -> JsonResponse:
    ctx = _admin_context(request)
    info = await run_in_threadpool(ctx.registry.get, template_id)
    if info is None:
        raise FacefuseError(Err.NOT_FOUND, f"no template {template_id!r}")
    return JsonResponse(info.to_dict())


@router.delete("/{template_id}")
async def delete_template(template_id: str, request: Request) -> JsonResponse:
    ctx = _admin_context(request)
    if not await run_in_threadpool(ctx.registry.remove, template_id):
        raise FacefuseError(Err.NOT_FOUND, f"no template {template_id!r}")
    return JsonResponse({"template_id": template_id, "deleted": True})

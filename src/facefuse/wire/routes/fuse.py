"""POST /v3/facefuse — the original API (docs/api.md part A, with B.2–B.5)."""

from __future__ import annotations

from typing import Any

import pybase64
from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from facefuse import worker
from facefuse.errors import Err, FacefuseError
from facefuse.service import FuseJob, UserPhoto
from facefuse.wire.auth import authenticate
from facefuse.wire.context import AppContext
from facefuse.wire.media_input import as_bytes, fetch_if_url
from facefuse.wire.responses import JsonResponse
from facefuse.wire.results_link import result_url
from facefuse.wire.schemas import FuseRequest
from facefuse.wire.validation import parse_json_object, validate

router = APIRouter()
VERSION = "1.0.1"
PATH = "/v3/facefuse"


@router.post(PATH)
async def facefuse(request: Request) -> JsonResponse:
    ctx: AppContext = request.app.state.ctx
    await authenticate(ctx, request)
    settings = ctx.settings
    ctx.pool.refuse_if_full()  # a full queue answers at once, before reading and parsing megabytes
    body = parse_json_object(await request.body(), settings.max_json_depth, settings.max_json_list_length)
    fuse_request = validate(FuseRequest, body)
    items = fuse_request.media_info_list
    if len(items) > settings.max_media_items:
        raise FacefuseError(
            Err.INVALID_PARAMETER,
            f"media_info_list holds {len(items)} items; at most {settings.max_media_items}",
        )
    raw = [await fetch_if_url(ctx, item) for item in items]
    want_url = fuse_request.parameter.rsp_media_type == "url"
    job = _build_job(ctx, fuse_request, raw)
    produced = await ctx.pool.run(worker.fuse, job, idempotent=True)
    if want_url:
        token = await run_in_threadpool(ctx.results.save, produced)
        media: dict[str, Any] = {
            "media_data": result_url(ctx, request, token),
            "media_profiles": {"media_data_type": "url"},
        }
    else:
        media = {
            "media_data": pybase64.b64encode_as_string(produced),  # SIMD base64
            "media_profiles": {"media_data_type": "jpg"},
        }
    return JsonResponse(
        {
            "parameter": {"rsp_media_type": fuse_request.parameter.rsp_media_type, "version": VERSION},
            "media_info_list": [media],
        }
    )


def _build_job(ctx: AppContext, request: FuseRequest, raw: list[bytes | str]) -> FuseJob:
    users: list[UserPhoto] = []
    template_photo: bytes | None = None
    for index, (item, data) in enumerate(zip(request.media_info_list, raw)):
        extra = item.extra_or_default
        if extra.role == "template":
            if template_photo is not None:
                raise FacefuseError(
                    Err.INVALID_PARAMETER, f"media_info_list[{index}]: only one item may have role 'template'"
                )
            template_photo = as_bytes(ctx, data)
            continue
        rect = extra.face_rect.as_tuple() if extra.face_rect else None
        users.append(UserPhoto(as_bytes(ctx, data), face_rect=rect, template_face_index=extra.template_face_index))
    if not users:
        raise FacefuseError(Err.MISSING_PARAMETER, "media_info_list needs at least one user photo")
    parameter = request.parameter
    if template_photo is None and not parameter.faceFusePPType:
        raise FacefuseError(
            Err.MISSING_PARAMETER,
            "parameter.faceFusePPType is required (or send a template photo with media_extra.role 'template')",
        )
    return FuseJob(
        users=users,
        template_id=parameter.faceFusePPType,
        template_photo=template_photo,
        fuse_degree=parameter.fuse_degree,
        shape_degree=parameter.shape_degree,
        ai_label=parameter.ai_label,
    )

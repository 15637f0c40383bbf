"""Key management over HTTP (docs/api.md B.10): admin keys only, the same store as `facefuse keys`."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from facefuse.errors import Err, FacefuseError
from facefuse.wire.auth import authenticate
from facefuse.wire.context import AppContext
from facefuse.wire.responses import JsonResponse
from facefuse.wire.schemas import KeyCreateRequest
from facefuse.wire.validation import parse_json_object, validate

router = APIRouter(prefix="/v3/keys")


@router.get("")
async def list_keys(request: Request) -> JsonResponse:
    ctx: AppContext = request.app.state.ctx
    await authenticate(ctx, request, admin=True)
    keys = await run_in_threadpool(ctx.keys.list)
    return JsonResponse({"keys": [key.to_dict() for key in keys]})


@router.post("")
async def create_key(request: Request) -> JsonResponse:
    ctx: AppContext = request.app.state.ctx
    await authenticate(ctx, request, admin=True)
    body = parse_json_object(await request.body(), ctx.settings.max_json_depth, ctx.settings.max_json_list_length)
    create = validate(KeyCreateRequest, body)
    key, secret = await run_in_threadpool(ctx.keys.create, create.name, create.admin, create.qps, create.daily_quota)
    return JsonResponse({**key.to_dict(), "api_secret": secret})


@router.delete("/{api_key}")
async def revoke_key(api_key: str, request: Request) -> JsonResponse:
    ctx: AppContext = request.app.state.ctx
    caller = await authenticate(ctx, request, admin=True)
    if api_key == caller.api_key:  # the last admin key could lock every admin out; the CLI can still do it
        raise FacefuseError(Err.INVALID_PARAMETER, "a key cannot revoke itself; revoke it with another admin key")
    if not await run_in_threadpool(ctx.keys.revoke, api_key):
        raise FacefuseError(Err.NOT_FOUND, "no active key with that api_key")
    return JsonResponse({"api_key": api_key, "revoked": True})

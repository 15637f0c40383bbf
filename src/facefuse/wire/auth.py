"""Who is calling: api_key and api_secret from the query string (as the original API)."""

from __future__ import annotations

from starlette.requests import Request

from facefuse.errors import Err, FacefuseError
from facefuse.keys.store import ApiKey
from facefuse.wire.context import AppContext


async def authenticate(ctx: AppContext, request: Request, admin: bool = False) -> ApiKey:
    api_key = request.query_params.get("api_key", "")
    secret = request.query_params.get("api_secret", "")
    if not api_key or not secret:
        raise FacefuseError(Err.AUTH_MISSING, "api_key and api_secret are required in the query string")
    # One database call for the check and the spending: off the event loop when the database is remote.
    return await ctx.db_calls.run(lambda: _check_and_spend(ctx, request, api_key, secret, admin))


def _check_and_spend(ctx: AppContext, request: Request, api_key: str, secret: str, admin: bool) -> ApiKey:
    key = ctx.keys.verify(api_key, secret)
    if key is None:
        raise FacefuseError(Err.AUTH_FAILED, "unknown or revoked api_key, or wrong api_secret")
    if admin and not key.admin:
        raise FacefuseError(Err.PERMISSION_DENIED, "this endpoint needs an admin key")
    request.state.api_key = key.api_key  # the access log names the key, also when a limit refuses it
    ctx.limiter.spend(key)  # 429 with Retry-After when the key's qps or daily quota is spent
    return key

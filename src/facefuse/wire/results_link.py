"""Absolute links to stored results."""

from __future__ import annotations

from starlette.requests import Request

from facefuse.wire.context import AppContext


def result_url(ctx: AppContext, request: Request, token: str) -> str:
    base = ctx.settings.public_base_url.rstrip("/") or str(request.base_url).rstrip("/")
    return f"{base}/v3/results/{token}.jpg"

"""The fusion route's short way in.

POST /v3/facefuse is nearly every request the service takes and the one whose HTTP work
sits beside the fusion on the same cores. It goes from uvicorn straight to its handler,
behind the same per-request plumbing (request id, body limits, access log, metrics,
last-line error answer) but without FastAPI's router, dependency solving and middleware
layers, whose CPU the HTTP process would otherwise spend on every answer beside the
fusions (docs/performance.md, "The process model"). Every other request, and every other
method on that path, goes to the FastAPI app, which also holds the route for its OpenAPI
document."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import FastAPI
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from facefuse.errors import FacefuseError
from facefuse.settings import Settings
from facefuse.wire.middleware import RequestContextMiddleware
from facefuse.wire.responses import error_response
from facefuse.wire.routes import fuse


@dataclass(frozen=True)
class _RouteName:
    """What the access log and the metrics read from scope["route"]."""

    path: str


class FastLane:
    """ASGI app: the fusion route straight to its handler, the rest to `app`."""

    def __init__(self, app: FastAPI, settings: Settings) -> None:
        self.app = app
        self._route = _RouteName(fuse.PATH)
        self._fuse = RequestContextMiddleware(
            _fuse_endpoint, max_body_bytes=settings.max_body_bytes, body_deadline=settings.request_deadline
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == fuse.PATH:
            scope["app"] = self.app  # request.app.state, as FastAPI sets it
            scope["route"] = self._route
            await self._fuse(scope, receive, send)
        else:
            await self.app(scope, receive, send)


async def _fuse_endpoint(scope: Scope, receive: Receive, send: Send) -> None:
    try:
        response = await fuse.facefuse(Request(scope, receive))
    except FacefuseError as error:  # as the app's handler answers it; anything else: the middleware's
        response = error_response(error)
    await response(scope, receive, send)

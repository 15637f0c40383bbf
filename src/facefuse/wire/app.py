"""The HTTP application: FastAPI app factory and its lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI

from facefuse import worker
from facefuse.logs import configure_logging
from facefuse.settings import Settings
from facefuse.wire.context import AppContext
from facefuse.wire.errors import install_error_handlers
from facefuse.wire.fastlane import FastLane
from facefuse.wire.metrics import QUEUE
from facefuse.wire.middleware import RequestContextMiddleware
from facefuse.wire.openapi import install_openapi
from facefuse.wire.responses import JsonResponse
from facefuse.wire.routes import console, fuse, keys, ops, results, templates
from facefuse.workpool import freeze_startup_objects, tune_allocator

log = logging.getLogger("facefuse")


def create_server_app(settings: Settings | None = None) -> FastLane:
    """What `facefuse serve` runs: the app, with the fusion route's short way in; once ready,
    the process's start-up objects are left out of garbage collection (freeze_startup_objects)."""
    settings = settings or Settings()
    return FastLane(create_app(settings, freeze_when_ready=True), settings)


def create_app(settings: Settings | None = None, freeze_when_ready: bool = False) -> FastAPI:
    settings = settings or Settings()
    configure_logging(settings.log_level)
    tune_allocator()  # uploads and answers are large buffers, allocated on every request

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ctx = await asyncio.to_thread(AppContext.open, settings)
        app.state.ctx = ctx
        QUEUE.set_function(lambda: ctx.pool.admitted)
        if settings.demo_template:
            await asyncio.to_thread(ctx.registry.ensure_demo)
        await asyncio.to_thread(ctx.pool.warm_up, worker.warm_up)
        frozen = freeze_startup_objects() if freeze_when_ready else 0
        ctx.ready = True
        cleaner = asyncio.create_task(_clean_results_forever(ctx))
        log.info(
            "ready", extra={"data_dir": str(settings.data_dir), "workers": settings.workers, "frozen_objects": frozen}
        )
        try:
            yield
        finally:
            ctx.ready = False
            cleaner.cancel()
            ctx.db_calls.close()
            ctx.results.close()  # the requests have ended: no row insert is under way
            await asyncio.to_thread(ctx.pool.shutdown)

    app = FastAPI(
        title="facefuse",
        version="1.0.1",
        lifespan=lifespan,
        default_response_class=JsonResponse,
        docs_url=None,
        redoc_url=None,
    )
    install_error_handlers(app)
    install_openapi(app)
    for module in (fuse, templates, keys, results, ops, console):
        app.include_router(module.router)
    app.add_middleware(
        RequestContextMiddleware, max_body_bytes=settings.max_body_bytes, body_deadline=settings.request_deadline
    )
    return app


async def _clean_results_forever(ctx: AppContext) -> None:
    while True:
        try:
            removed = await asyncio.to_thread(ctx.results.cleanup)
            if removed:
                log.info("expired results removed", extra={"count": removed})
        except Exception:  # a failed sweep must not stop later ones
            log.exception("result cleanup failed")
        await asyncio.sleep(ctx.settings.result_cleanup_interval)

"""Every failure, whatever raised it, leaves as the error body of the one table."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from facefuse.errors import Err, FacefuseError
from facefuse.wire.responses import JsonResponse, error_response
from facefuse.wire.validation import describe_validation_error

log = logging.getLogger("facefuse.wire")

_HTTP_ERRORS = {
    404: (Err.NOT_FOUND, "no such route"),
    405: (Err.METHOD_NOT_ALLOWED, "this route does not take that HTTP method"),
    413: (Err.REQUEST_TOO_LARGE, "the request body is over the limit"),
}


async def _facefuse_error(_request: Request, exc: Exception) -> JsonResponse:
    assert isinstance(exc, FacefuseError)
    return error_response(exc)


async def _validation_error(_request: Request, exc: Exception) -> JsonResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(describe_validation_error(exc.errors()))


async def _http_error(_request: Request, exc: Exception) -> JsonResponse:
    assert isinstance(exc, StarletteHTTPException)
    error, detail = _HTTP_ERRORS.get(exc.status_code, (Err.INVALID_PARAMETER, str(exc.detail)))
    headers = dict(exc.headers or {}) if exc.status_code == 405 else None
    return error_response(FacefuseError(error, detail), headers)


async def _unexpected_error(request: Request, exc: Exception) -> JsonResponse:
    request_id = getattr(request.state, "request_id", "-")
    log.exception("unexpected failure", extra={"request_id": request_id})
    detail = f"processing failed; quote request id {request_id} when reporting this"
    return error_response(FacefuseError(Err.PROCESS_ERROR, detail))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(FacefuseError, _facefuse_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)

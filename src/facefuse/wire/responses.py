"""JSON responses exactly as the original API sends them."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from facefuse.errors import Err, FacefuseError

JSON_CONTENT_TYPE = "application/json; charset=utf-8"


class JsonResponse(Response):
    media_type = JSON_CONTENT_TYPE

    def render(self, content: Any) -> bytes:
        # orjson: compact UTF-8 like json.dumps(ensure_ascii=False, separators=(",", ":")),
        # and far faster on the half-megabyte base64 text of an answer.
        return orjson.dumps(content)


def error_response(error: FacefuseError, headers: dict[str, str] | None = None) -> JsonResponse:
    """The `{ErrorCode, ErrorMsg, Data}` body with the table's HTTP status."""
    extra = dict(headers or {})
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        extra.setdefault("Retry-After", str(retry_after))
    elif error.error is Err.SERVER_BUSY:
        extra.setdefault("Retry-After", "1")
    return JsonResponse(error.body(), status_code=error.error.http_status, headers=extra)

"""JSON responses exactly as the original API sends them."""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response

from facefuse.errors import Err, FacefuseError

JSON_CONTENT_TYPE = "application/json; charset=utf-8"


class JsonResponse(Response):
    media_type = JSON_CONTENT_TYPE

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def error_response(error: FacefuseError, headers: dict[str, str] | None = None) -> JsonResponse:
    """The `{ErrorCode, ErrorMsg, Data}` body with the table's HTTP status."""
    extra = dict(headers or {})
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        extra.setdefault("Retry-After", str(retry_after))
    elif error.error is Err.SERVER_BUSY:
        extra.setdefault("Retry-After", "1")
    return JsonResponse(error.body(), status_code=error.error.http_status, headers=extra)

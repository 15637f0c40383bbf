"""The one table of errors: every failure the service can answer with.

Codes, names and HTTP statuses are those of docs/api.md (parts A and E).
The core raises `FacefuseError(Err.X, "detail")`; the wire turns it into the
`{ErrorCode, ErrorMsg, Data}` body with the status named here.
"""

from __future__ import annotations

from enum import Enum
from typing import NamedTuple


class ErrorSpec(NamedTuple):
    code: int
    name: str
    http_status: int


class Err(Enum):
    # API-specific (the original document; HTTP 400)
    PROCESS_ERROR = ErrorSpec(20001, "PROCESS_ERROR", 400)
    DETECT_NOT_FACE = ErrorSpec(20003, "DETECT_NOT_FACE", 400)
    DETECT_FACE_OUTOFIMAGE = ErrorSpec(20020, "DETECT_FACE_OUTOFIMAGE", 400)
    DETECT_FACE_PITCHANGLE_BIG = ErrorSpec(20021, "DETECT_FACE_PITCHANGLE_BIG", 400)
    DETECT_FACE_YAWANGLE_BIG = ErrorSpec(20022, "DETECT_FACE_YAWANGLE_BIG", 400)
    DETECT_FACE_LOWAREA = ErrorSpec(20023, "DETECT_FACE_LOWAREA", 400)
    MODEL_PHOTO_NO_FACE = ErrorSpec(220003, "model photo detect no face", 400)
    # General
    INVALID_JSON = ErrorSpec(10001, "INVALID_JSON", 400)
    MISSING_PARAMETER = ErrorSpec(10002, "MISSING_PARAMETER", 400)
    INVALID_PARAMETER = ErrorSpec(10003, "INVALID_PARAMETER", 400)
    INVALID_MEDIA_DATA = ErrorSpec(10004, "INVALID_MEDIA_DATA", 400)
    UNSUPPORTED_IMAGE_FORMAT = ErrorSpec(10005, "UNSUPPORTED_IMAGE_FORMAT", 400)
    IMAGE_FILE_TOO_LARGE = ErrorSpec(10006, "IMAGE_FILE_TOO_LARGE", 400)
    IMAGE_SIZE_OUT_OF_RANGE = ErrorSpec(10007, "IMAGE_SIZE_OUT_OF_RANGE", 400)
    IMAGE_DECODE_ERROR = ErrorSpec(10008, "IMAGE_DECODE_ERROR", 400)
    MEDIA_URL_FETCH_FAILED = ErrorSpec(10009, "MEDIA_URL_FETCH_FAILED", 400)
    MEDIA_URL_NOT_ALLOWED = ErrorSpec(10010, "MEDIA_URL_NOT_ALLOWED", 400)
    TEMPLATE_NOT_FOUND = ErrorSpec(10011, "TEMPLATE_NOT_FOUND", 400)
    AUTH_MISSING = ErrorSpec(10101, "AUTH_MISSING", 401)
    AUTH_FAILED = ErrorSpec(10102, "AUTH_FAILED", 401)
    PERMISSION_DENIED = ErrorSpec(10103, "PERMISSION_DENIED", 403)
    NOT_FOUND = ErrorSpec(10104, "NOT_FOUND", 404)
    METHOD_NOT_ALLOWED = ErrorSpec(10105, "METHOD_NOT_ALLOWED", 405)
    REQUEST_TOO_LARGE = ErrorSpec(10106, "REQUEST_TOO_LARGE", 413)
    QPS_LIMIT_EXCEEDED = ErrorSpec(10201, "QPS_LIMIT_EXCEEDED", 429)
    QUOTA_EXCEEDED = ErrorSpec(10202, "QUOTA_EXCEEDED", 429)
    SERVER_BUSY = ErrorSpec(10301, "SERVER_BUSY", 503)
    PROCESS_TIMEOUT = ErrorSpec(10302, "PROCESS_TIMEOUT", 504)

    @property
    def code(self) -> int:
        return self.value.code

    @property
    def message(self) -> str:
        return self.value.name

    @property
    def http_status(self) -> int:
        return self.value.http_status


class FacefuseError(Exception):
    """A failure with a code from the table and a detail that is safe to show."""

    def __init__(self, error: Err, detail: str = "") -> None:
        super().__init__(f"{error.code} {error.message}: {detail}")
        self.error = error
        self.detail = detail

    def body(self) -> dict[str, object]:
        return {"ErrorCode": self.error.code, "ErrorMsg": self.error.message, "Data": self.detail}

    def __reduce__(self) -> tuple[object, ...]:
        # Errors cross the pipe from the work processes: rebuild from (error, detail).
        return (type(self), (self.error, self.detail))

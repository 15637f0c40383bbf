"""The OpenAPI document at /openapi.json, accurate enough to fuzz the service with.

The routes read their bodies themselves (any Content-Type, bounded depth, our error
codes), so FastAPI cannot see their request and answer models; this module says what
each operation takes and answers: credentials in the query string, the JSON body, the
success body, and for every status it may answer the error body whose ErrorCode and
ErrorMsg are exactly the table's codes for that status (docs/api.md part E).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from facefuse.errors import Err
from facefuse.keys.store import MAX_CREDENTIAL_LENGTH
from facefuse.media.decode import decode_image
from facefuse.templates.preview import make_thumbnail
from facefuse.templates.registry import DEMO_TEMPLATE_ID, demo_photo
from facefuse.wire import schemas

REF = "#/components/schemas/{model}"
EXAMPLE_PHOTO_SIDE = 256  # a few kilobytes of base64, and the face still well over the minimum size
JSON = "application/json"


@dataclass(frozen=True)
class Operation:
    tag: str
    summary: str
    ok: type[BaseModel] | None  # None: not JSON (an image or metrics text)
    errors: tuple[int, ...]
    body: type[BaseModel] | None = None
    auth: bool = False
    ok_media: str = JSON


ORIGINAL = "The original API (docs/api.md part A)"
TEMPLATES = "Templates (addition, B.1 and B.11)"
KEYS = "Keys (addition, B.10)"
RESULTS = "Result links (addition, B.5)"
OPERATIONS_TAG = "Operations (addition, B.8)"
TAGS = [
    {"name": ORIGINAL, "description": "What a client of the MTLab facefuse v3 cloud API sends, unchanged."},
    {"name": TEMPLATES, "description": "The template library: every key may look, admin keys add and delete."},
    {"name": KEYS, "description": "API keys, admin keys only; the same store as `facefuse keys`."},
    {"name": RESULTS, "description": "Results asked for with rsp_media_type url: no credentials needed."},
    {"name": OPERATIONS_TAG, "description": "Health, readiness and metrics."},
]
_ANY_KEY_ERRORS = (401, 429)
_AUTH_ERRORS = (401, 403, 429)  # admin operations
_WORK_ERRORS = (400, 413, 503, 504)
OPERATIONS: dict[tuple[str, str], Operation] = {
    ("/v3/facefuse", "post"): Operation(
        ORIGINAL,
        "Fuse the user's face into a template",
        schemas.FuseResponse,
        (400, 401, 413, 429, 503, 504),
        schemas.FuseRequest,
        auth=True,
    ),
    ("/v3/templates", "post"): Operation(
        TEMPLATES,
        "Add a template (admin)",
        schemas.TemplateView,
        _AUTH_ERRORS + _WORK_ERRORS,
        schemas.TemplateCreateRequest,
        auth=True,
    ),
    ("/v3/templates", "get"): Operation(
        TEMPLATES, "List the templates", schemas.TemplateList, _ANY_KEY_ERRORS, auth=True
    ),
    ("/v3/templates/{template_id}", "get"): Operation(
        TEMPLATES, "One template", schemas.TemplateView, _ANY_KEY_ERRORS + (404,), auth=True
    ),
    ("/v3/templates/{template_id}", "delete"): Operation(
        TEMPLATES, "Delete a template (admin)", schemas.TemplateDeleted, _AUTH_ERRORS + (404,), auth=True
    ),
    ("/v3/templates/{template_id}/thumbnail", "get"): Operation(
        TEMPLATES,
        "A template's thumbnail (JPEG, long side at most 480 px)",
        None,
        _ANY_KEY_ERRORS + (404, 503, 504),
        auth=True,
        ok_media="image/jpeg",
    ),
    ("/v3/keys", "get"): Operation(KEYS, "List the keys (admin)", schemas.KeyList, _AUTH_ERRORS, auth=True),
    ("/v3/keys", "post"): Operation(
        KEYS,
        "Create a key; its secret is in this answer only (admin)",
        schemas.KeyCreated,
        _AUTH_ERRORS + (400, 413),
        schemas.KeyCreateRequest,
        auth=True,
    ),
    ("/v3/keys/{api_key}", "delete"): Operation(
        KEYS, "Revoke a key (admin)", schemas.KeyRevoked, _AUTH_ERRORS + (400, 404), auth=True
    ),
    ("/v3/results/{name}", "get"): Operation(RESULTS, "A stored result", None, (404,), ok_media="image/jpeg"),
    ("/healthz", "get"): Operation(OPERATIONS_TAG, "The process is alive", schemas.Health, ()),
    ("/readyz", "get"): Operation(OPERATIONS_TAG, "Ready for traffic", schemas.Health, (503,)),
    ("/metrics", "get"): Operation(OPERATIONS_TAG, "Prometheus metrics", None, (), ok_media="text/plain"),
}

_CREDENTIAL = {"type": "string", "minLength": 1, "maxLength": MAX_CREDENTIAL_LENGTH}
AUTH_PARAMETERS = [
    {
        "name": "api_key",
        "in": "query",
        "required": True,
        "schema": _CREDENTIAL,
        "description": "the key's identifier (facefuse keys create)",
    },
    {
        "name": "api_secret",
        "in": "query",
        "required": True,
        "schema": _CREDENTIAL,
        "description": "the key's secret, shown once when the key was created",
    },
]
_REQUEST_ID = {
    "X-Request-Id": {
        "required": True,
        "schema": {"type": "string"},
        "description": "the request id (echoed when the client sent a valid one)",
    }
}
_RETRY_AFTER = {
    "Retry-After": {
        "required": True,
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
        "description": "seconds after which a retry can succeed",
    }
}


def install_openapi(app: FastAPI) -> None:
    """Serve the document below at /openapi.json (built once, on first use)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def build_openapi(app: FastAPI) -> dict[str, Any]:
    document = get_openapi(
        title=app.title,
        version=app.version,
        routes=app.routes,
        description="facefuse: the MTLab facefuse v3 wire protocol and its additions "
        "(docs/api.md); every failure answers its error body (part E).",
    )
    components: dict[str, Any] = {}
    for model in _models():
        components.update(_model_schema(model))
    for status in sorted({s for op in OPERATIONS.values() for s in op.errors}):
        components[f"Error{status}"] = error_schema(status)
    document["components"] = {"schemas": components}
    document["tags"] = TAGS
    for (path, method), operation in OPERATIONS.items():
        _describe(document["paths"][path][method], operation)
    fuse_body = document["paths"]["/v3/facefuse"]["post"]["requestBody"]["content"][JSON]
    fuse_body["example"] = fuse_example()
    return document


def error_schema(status: int) -> dict[str, Any]:
    """The error body whose code and name are those the table gives this HTTP status."""
    errors = [e for e in Err if e.http_status == status]
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["ErrorCode", "ErrorMsg", "Data"],
        "properties": {
            "ErrorCode": {"type": "integer", "enum": [e.code for e in errors]},
            "ErrorMsg": {"type": "string", "enum": [e.message for e in errors]},
            "Data": {"type": "string"},
        },
    }


def _models() -> list[type[BaseModel]]:
    operations = OPERATIONS.values()
    return [m for m in {*(o.ok for o in operations), *(o.body for o in operations)} if m is not None]


def _model_schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template=REF)
    found = schema.pop("$defs", {})
    found[model.__name__] = schema
    return found


def fuse_example() -> dict[str, Any]:
    """A request that runs as it is: the demo template's own photo, shrunk, fused into the demo template."""
    photo = make_thumbnail(decode_image(demo_photo()), side=EXAMPLE_PHOTO_SIDE)
    return {
        "parameter": {"faceFusePPType": DEMO_TEMPLATE_ID, "rsp_media_type": "base64"},
        "extra": {},
        "media_info_list": [
            {"media_data": base64.b64encode(photo).decode("ascii"), "media_profiles": {"media_data_type": "jpg"}}
        ],
    }


def _describe(target: dict[str, Any], operation: Operation) -> None:
    target["tags"] = [operation.tag]
    target["summary"] = operation.summary
    path_parameters = [p for p in target.get("parameters", []) if p["in"] == "path"]
    target["parameters"] = path_parameters + (AUTH_PARAMETERS if operation.auth else [])
    if not target["parameters"]:
        del target["parameters"]
    if operation.body is not None:
        target["requestBody"] = {"required": True, "content": {JSON: {"schema": _ref(operation.body.__name__)}}}
    target["responses"] = {"200": _ok(operation), **{str(s): _error(s) for s in operation.errors}}


def _ok(operation: Operation) -> dict[str, Any]:
    if operation.ok is not None:
        schema: dict[str, Any] = _ref(operation.ok.__name__)
    elif operation.ok_media == "image/jpeg":
        schema = {"type": "string", "format": "binary"}
    else:
        schema = {"type": "string"}
    return {"description": "success", "headers": _REQUEST_ID, "content": {operation.ok_media: {"schema": schema}}}


def _error(status: int) -> dict[str, Any]:
    names = ", ".join(f"{e.code} {e.message}" for e in Err if e.http_status == status)
    headers = {**_REQUEST_ID, **(_RETRY_AFTER if status in (429, 503) else {})}
    return {"description": names, "headers": headers, "content": {JSON: {"schema": _ref(f"Error{status}")}}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}

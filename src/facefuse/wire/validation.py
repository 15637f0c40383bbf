"""Parsing request bodies ourselves: any content type, bounded depth, our error codes."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from facefuse.errors import Err, FacefuseError

M = TypeVar("M", bound=BaseModel)
_FLOAT_FROM_BIG_INTEGER = 2.0**63  # orjson reads integers beyond 64 bits as floats


def parse_json_object(body: bytes, max_depth: int, max_list_length: int) -> dict[str, Any]:
    """The body as a JSON object, whatever the Content-Type said (curl -d sends form type)."""
    if not body.strip():
        raise FacefuseError(Err.INVALID_JSON, "the request body is empty; send a JSON object")
    try:
        # orjson reads the large uploads faster. What it refuses (a BOM, UTF-16, NaN,
        # nesting past 1024) or reads differently (an integer past 64 bits becomes a float)
        # goes to the standard parser, so every body reads exactly as json.loads reads it.
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        value = _parse_leniently(body)
    else:
        if _holds_huge_number(value):
            value = _parse_leniently(body)
    if not isinstance(value, dict):
        raise FacefuseError(Err.INVALID_JSON, "the body must be a JSON object")
    _check_shape(value, max_depth, max_list_length)
    return value


def _parse_leniently(body: bytes) -> Any:
    try:
        return json.loads(body)
    except RecursionError:
        raise FacefuseError(Err.INVALID_JSON, "the JSON is nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise FacefuseError(Err.INVALID_JSON, f"the body is not valid JSON: {_short(exc)}") from None


def _holds_huge_number(value: Any) -> bool:
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, float) and abs(node) >= _FLOAT_FROM_BIG_INTEGER:
            return True
    return False


def validate(model: type[M], data: dict[str, Any]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise describe_validation_error(exc.errors(include_url=False)) from None


def describe_validation_error(errors: Sequence[Any]) -> FacefuseError:
    """The first problem, naming the field the way a client writes it."""
    first = errors[0]
    location = _field_path([p for p in first.get("loc", ()) if p not in ("body", "query")])
    if first.get("type") == "missing":
        return FacefuseError(Err.MISSING_PARAMETER, f"{location} is required")
    message = first.get("msg", "invalid value")
    if "input" in first and _is_scalar(first["input"]):
        message += f" (got {_short(first['input'])})"
    return FacefuseError(Err.INVALID_PARAMETER, f"{location}: {message}")


def _field_path(parts: Sequence[Any]) -> str:
    path = ""
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "body"


def _check_shape(value: Any, max_depth: int, max_list_length: int) -> None:
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            raise FacefuseError(Err.INVALID_JSON, f"the JSON is nested deeper than {max_depth} levels")
        if isinstance(node, dict):
            stack.extend((child, depth + 1) for child in node.values())
        elif isinstance(node, list):
            if len(node) > max_list_length:
                raise FacefuseError(
                    Err.INVALID_PARAMETER, f"a JSON list holds {len(node)} items; at most {max_list_length}"
                )
            stack.extend((child, depth + 1) for child in node)


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool)) or value is None


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value) if not isinstance(value, Exception) else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"

"""The web console at / and the API docs at /docs (docs/api.md B.11): static files of the package.

Every page, script and style is a file shipped in the package (the console's own in
wire/console/, Swagger UI's from the swagger-ui-py wheel), so the pages work offline.
They answer with a Content-Security-Policy that allows scripts and styles from this
origin only (no inline script), no framing, and no form submission: the console sends
everything with fetch(), so a credential never lands in a URL the browser keeps.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from fastapi import APIRouter
from starlette.responses import FileResponse

from facefuse.errors import Err, FacefuseError

router = APIRouter(include_in_schema=False)

CONSOLE_DIR = Path(__file__).resolve().parents[1] / "console"
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
}
SWAGGER_UI_FILES = ("swagger-ui-bundle.js", "swagger-ui.css")
# Both pages: this origin's files only; blob: images are the console's photos and results.
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; media-src blob:; "
    "connect-src 'self'; font-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
)


SECURITY_HEADERS = {
    "Content-Security-Policy": PAGE_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(self), microphone=(), geolocation=()",
    "Cache-Control": "no-cache",  # revalidated on each load: an upgraded service serves its new console
}


def _swagger_ui_dir() -> Path:
    spec = importlib.util.find_spec("swagger_ui")  # located, not imported: only its static files are used
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the swagger-ui-py package is missing; reinstall facefuse")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


def _shipped(directory: Path, names: list[str] | tuple[str, ...]) -> dict[str, Path]:
    return {name: directory / name for name in names if (directory / name).suffix in MEDIA_TYPES}


CONSOLE_FILES = _shipped(CONSOLE_DIR, sorted(p.name for p in CONSOLE_DIR.iterdir() if p.is_file()))
SWAGGER_FILES = _shipped(_swagger_ui_dir(), SWAGGER_UI_FILES)


def _file(files: dict[str, Path], name: str) -> FileResponse:
    path = files.get(name)
    if path is None:
        raise FacefuseError(Err.NOT_FOUND, "no such file")
    return FileResponse(path, media_type=MEDIA_TYPES[path.suffix], headers=SECURITY_HEADERS)


@router.get("/")
async def console_page() -> FileResponse:
    return _file(CONSOLE_FILES, "index.html")


@router.get("/console/{name}")
async def console_file(name: str) -> FileResponse:
    return _file(CONSOLE_FILES, name)


@router.get("/docs")
async def docs_page() -> FileResponse:
    return _file(CONSOLE_FILES, "docs.html")


@router.get("/docs/assets/{name}")
async def docs_asset(name: str) -> FileResponse:
    return _file(SWAGGER_FILES, name)

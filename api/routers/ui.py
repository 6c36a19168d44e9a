"""The web gallery: ``/`` and ``/ui`` redirect to ``/ui/``; ``/ui/{file}`` serves ``api/static``.

Not in the OpenAPI document; the gallery reads the API like any client (see ``api/static/app.js``).
"""

import re
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, RedirectResponse

router = APIRouter(include_in_schema=False)

STATIC_DIR = Path(__file__).parents[1] / "static"
_STATIC_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}\.(html|js|css|png|svg|ico)$")
# The gallery is a few small files that change with each release: always revalidate.
_NO_CACHE = {"Cache-Control": "no-cache"}


def _static_file(name: str) -> Path:
    """The static file ``name``; 404 for any other name (no paths, no dot files)."""
    path = STATIC_DIR / name
    if not _STATIC_NAME.match(name) or not path.is_file():
        raise HTTPException(404, detail=f"no such file: {name}")
    return path


@router.get("/")
async def root(request: Request) -> RedirectResponse:
    return RedirectResponse(str(request.url_for("ui_index")), status_code=307)


@router.get("/ui")
async def ui_redirect(request: Request) -> RedirectResponse:
    return RedirectResponse(str(request.url_for("ui_index")), status_code=307)


@router.get("/ui/", name="ui_index")
async def ui_index() -> FileResponse:
    return FileResponse(_static_file("index.html"), headers=_NO_CACHE)


@router.get("/ui/{name}")
async def ui_file(name: str) -> FileResponse:
    return FileResponse(_static_file(name), headers=_NO_CACHE)

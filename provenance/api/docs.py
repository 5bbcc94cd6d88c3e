"""``/docs``: the OpenAPI document in Swagger UI, served from this service with nothing fetched from a CDN.

FastAPI's default page loads Swagger UI's script and stylesheet from a CDN with no integrity check: whoever controls
that CDN (or the path to it) runs script on our origin. Here the assets come from the pinned ``fastapi-offline``
wheel (Swagger UI 5, which reads OpenAPI 3.1), the page and its start-up script are our own static files (no inline
script, so the page keeps a strict Content-Security-Policy), and ``/redoc`` is gone.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

from provenance.api.routes.pages import STATIC_DIR

router = APIRouter(include_in_schema=False)

_ASSETS = {"swagger-ui-bundle.js": "text/javascript; charset=utf-8", "swagger-ui.css": "text/css; charset=utf-8"}
#: Swagger UI's page relaxes only what the bundle needs: inline style attributes and data: icons.
DOCS_CSP = (b"default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; "
            b"object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")


def swagger_ui_dir() -> Path:
    import fastapi_offline

    return Path(fastapi_offline.__file__).resolve().parent / "static"


@router.get("/docs")
def docs_page() -> FileResponse:
    return FileResponse(STATIC_DIR / "docs.html", media_type="text/html; charset=utf-8",
                        headers={"Cache-Control": "no-cache"})


@router.get("/docs/assets/{name}")
def docs_asset(name: str) -> FileResponse:
    media_type = _ASSETS.get(name)
    if media_type is None:
        raise HTTPException(404, f"no docs asset {name[:100]!r}")
    return FileResponse(swagger_ui_dir() / name, media_type=media_type, headers={"Cache-Control": "max-age=86400"})

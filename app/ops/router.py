"""Operations endpoints: liveness, readiness, metrics and the self-hosted API docs."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from importlib import resources
from pathlib import Path

import structlog
from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from pydantic import BaseModel
from sqlalchemy import text
from starlette.responses import Response
from starlette.staticfiles import StaticFiles

from app.db import database_of
from app.errors import ServiceUnavailable
from app.migrate import current_revisions
from app.ops import metrics

router = APIRouter(tags=["operations"])
log = structlog.get_logger("app.ops")

DOCS_ASSETS_PATH = "/docs/assets"
READINESS_TIMEOUT_SECONDS = 5.0


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    database: str
    schema_revision: list[str]


@router.get("/healthz", summary="Liveness: the process is up")
async def healthz() -> Health:
    """Answers without touching the database, so a database outage does not restart pods."""
    return Health(status="ok")


@router.get(
    "/readyz",
    summary="Readiness: the database answers and its schema is at the newest migration",
    responses={503: {"description": "Database unreachable or schema not at head"}},
)
async def readyz(request: Request) -> Readiness:
    """503 until the database answers *and* carries the newest Alembic revision.

    A process that would serve an old schema must not receive traffic: a missing
    column on a write path would fail requests that the load balancer sent it.
    """
    expected: frozenset[str] = request.app.state.head_revisions
    try:
        async with asyncio.timeout(READINESS_TIMEOUT_SECONDS):
            async with database_of(request).connect() as connection:
                await connection.execute(text("SELECT 1"))
                current = await current_revisions(connection)
    except Exception as exc:  # whatever the cause, the process is not ready
        log.warning("readiness check failed", error_type=type(exc).__name__)
        raise ServiceUnavailable("The database is unreachable.") from exc
    if current != expected:
        raise ServiceUnavailable(
            "The database schema is not at the newest migration; run `samverkan migrate`.",
            extra={"schema_revision": sorted(current), "expected_revision": sorted(expected)},
        )
    return Readiness(status="ready", database="ok", schema_revision=sorted(current))


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def get_metrics() -> Response:
    body, content_type = metrics.render_latest()
    return Response(body, media_type=content_type)


def swagger_assets_dir() -> Path:
    """Swagger UI 5 (renders OpenAPI 3.1), shipped by the swagger-ui-py package."""
    return Path(str(resources.files("swagger_ui") / "static"))


def _docs_page(openapi_url: str, title: str) -> tuple[str, str]:
    """The docs page and a Content-Security-Policy that forbids every other origin.

    The CSP is the proof that the page loads nothing from the internet: a browser
    refuses any script, style, image or fetch that is not from this server.
    """
    html = get_swagger_ui_html(
        openapi_url=openapi_url,
        title=title,
        swagger_js_url=f"{DOCS_ASSETS_PATH}/swagger-ui-bundle.js",
        swagger_css_url=f"{DOCS_ASSETS_PATH}/swagger-ui.css",
        swagger_favicon_url=f"{DOCS_ASSETS_PATH}/favicon-32x32.png",
        # Swagger UI would otherwise send the spec to validator.swagger.io for a badge.
        swagger_ui_parameters={"validatorUrl": None, "tryItOutEnabled": False},
    ).body
    page = bytes(html).decode()
    scripts = _inline_scripts(page)
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
        for s in scripts
    )
    csp = (
        "default-src 'none'; "
        f"script-src 'self' {hashes}; "
        "style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; "
        "font-src 'self'; "
        "connect-src 'self'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
    return page, csp


def _inline_scripts(page: str) -> list[str]:
    scripts = []
    start = 0
    while (open_at := page.find("<script>", start)) != -1:
        close_at = page.index("</script>", open_at)
        scripts.append(page[open_at + len("<script>") : close_at])
        start = close_at
    return scripts


def install_docs(app: FastAPI, *, openapi_url: str, title: str) -> None:
    """Serve Swagger UI and its assets from this process: municipal networks are closed."""
    page, csp = _docs_page(openapi_url, title)
    app.mount(DOCS_ASSETS_PATH, StaticFiles(directory=swagger_assets_dir()), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(page, headers={"Content-Security-Policy": csp})

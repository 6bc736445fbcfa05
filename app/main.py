"""The application factory."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from app import __version__
from app.actions.router import router as actions_router
from app.agencies.router import router as agencies_router
from app.audit import refusals
from app.audit.checkpoints import CheckpointSigner
from app.audit.router import router as audit_router
from app.auth.router import router as auth_router
from app.cases.router import router as cases_router
from app.clients.router import router as clients_router
from app.config import Settings, get_settings
from app.consents import uploads
from app.consents.router import router as consents_router
from app.db import Database
from app.emergency.router import router as emergency_router
from app.entries.router import router as entries_router
from app.errors import document_problems, install_error_handlers
from app.events.router import router as events_router
from app.goals.router import router as goals_router
from app.holds.router import router as holds_router
from app.idempotency import deps as idempotency
from app.individuals.router import guardians_router
from app.individuals.router import router as individuals_router
from app.lagesbild.router import router as lagesbild_router
from app.logging import configure_logging
from app.meetings.router import router as meetings_router
from app.middleware import RequestContextMiddleware
from app.migrate import head_revisions
from app.oidc.providers import load_providers
from app.oidc.router import router as oidc_router
from app.ops.router import install_docs
from app.ops.router import router as ops_router
from app.policy import get_engine
from app.policy.router import router as policy_router
from app.security import ProviderTokenVerifier, TokenService
from app.statistics.router import router as statistics_router
from app.users.router import router as users_router
from app.webhooks.router import router as webhooks_router
from app.work.router import router as work_router

API_PREFIX = "/api/v1"
OPENAPI_URL = f"{API_PREFIX}/openapi.json"

log = structlog.get_logger("app")


def create_app(settings: Settings | None = None, database: Database | None = None) -> FastAPI:
    """Build the app. ``database`` is injected by tests; otherwise it comes from settings.

    Called by uvicorn as a factory (``app.main:create_app``) in every worker process.
    """
    settings = settings or get_settings()
    configure_logging(level=settings.log_level, fmt=settings.effective_log_format)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = database or Database.from_settings(settings)
        app.state.database = db
        log.info("started", version=__version__, env=settings.env.value)
        try:
            yield
        finally:
            await app.state.provider_tokens.aclose()
            await db.dispose()
            log.info("stopped")

    app = FastAPI(
        title="Samverkan",
        version=__version__,
        summary="Case coordination for SIG, Trefas and SSPF, with consent-gated sharing "
        "and a tamper-evident audit log.",
        openapi_url=OPENAPI_URL if settings.docs_enabled else None,
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.settings = settings
    # Parsed and validated once: a broken policy file stops the app here.
    app.state.policy = get_engine()
    app.state.identity_providers = load_providers(settings)
    app.state.head_revisions = head_revisions()
    if database is not None:
        # Available before the lifespan runs, for test clients that skip it.
        app.state.database = database

    _document_problems_in_openapi(app)
    install_error_handlers(app)
    idempotency.install(app)
    refusals.install(app)
    app.add_middleware(
        RequestContextMiddleware,
        max_body_bytes=settings.max_body_bytes,
        routes=app.router.routes,
        large_bodies=[
            (
                "PUT",
                re.compile(rf"^{API_PREFIX}/consents/[^/]+/document$"),
                # the form, and a multipart envelope around it
                app.state.policy.reference.settings.documents.max_bytes + uploads.ENVELOPE,
            )
        ],
    )
    if settings.trusted_proxy_list:
        # Outermost: the client address every later layer (audit origin, login throttle,
        # access log) sees is the one the trusted proxy names. uvicorn's own handling is
        # off (app.cli), so nothing else trusts a forwarded header.
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxy_list)
    app.state.tokens = TokenService(settings)
    app.state.provider_tokens = ProviderTokenVerifier(settings)
    app.state.checkpoint_signer = CheckpointSigner(settings)
    app.include_router(ops_router)
    for router in (
        auth_router,
        oidc_router,
        agencies_router,
        users_router,
        clients_router,
        policy_router,
        individuals_router,
        guardians_router,
        cases_router,
        consents_router,
        entries_router,
        emergency_router,
        actions_router,
        goals_router,
        meetings_router,
        work_router,
        lagesbild_router,
        statistics_router,
        events_router,
        webhooks_router,
        holds_router,
        audit_router,
    ):
        app.include_router(router, prefix=API_PREFIX)
    if settings.docs_enabled:
        install_docs(app, openapi_url=OPENAPI_URL, title="Samverkan API")
    return app


def _document_problems_in_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_problems(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    summary=app.summary,
                    routes=app.routes,
                )
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

from __future__ import annotations

from fastapi import APIRouter, Request

from app.db import SessionDep
from app.oidc import service as oidc_service
from app.oidc.schemas import ProviderRead

router = APIRouter(prefix="/auth", tags=["auth"])


@router.get("/providers")
async def list_providers(request: Request, session: SessionDep) -> list[ProviderRead]:
    """The identity providers users may sign in through (public: for the sign-in page).
    Nothing personal; not audited."""
    return await oidc_service.list_providers(session, request.app.state.identity_providers)

"""POST /auth/token, POST /auth/revoke, GET /auth/me."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Form, Request

from app.auth import service as auth_service
from app.auth.deps import CurrentActor, OriginDep, TokensDep
from app.auth.schemas import Me, TokenResponse
from app.config import Settings
from app.db import SessionDep
from app.errors import ValidationFailed
from app.inputs import require_body_media_type

router = APIRouter(prefix="/auth", tags=["auth"])

_FIELD = {"max_length": 4096}


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


@router.post(
    "/token",
    dependencies=[Depends(require_body_media_type)],
    response_model_exclude_none=True,
    responses={
        401: {"description": "Invalid credentials"},
        415: {"description": "Not a form"},
        429: {"description": "Throttled"},
    },
)
async def issue_token(
    request: Request,
    session: SessionDep,
    tokens: TokensDep,
    origin: OriginDep,
    grant_type: Annotated[Literal["password", "client_credentials", "refresh_token"], Form()],
    username: Annotated[str | None, Form(**_FIELD)] = None,
    password: Annotated[str | None, Form(**_FIELD)] = None,
    client_id: Annotated[str | None, Form(**_FIELD)] = None,
    client_secret: Annotated[str | None, Form(**_FIELD)] = None,
    refresh_token: Annotated[str | None, Form(max_length=65536)] = None,
) -> TokenResponse:
    """OAuth2 token endpoint (form-encoded): password, client_credentials or refresh_token.

    Unknown user, wrong password and deactivated account give the same 401 in about the
    same time; repeated failures per username or per address give 429 with Retry-After.
    """
    settings = _settings(request)
    if grant_type == "password":
        if username is None or password is None:
            raise _missing("username", "password")
        grant = await auth_service.password_grant(
            session, tokens, settings, username=username, password=password, origin=origin
        )
    elif grant_type == "client_credentials":
        if client_id is None or client_secret is None:
            raise _missing("client_id", "client_secret")
        grant = await auth_service.client_credentials_grant(
            session,
            tokens,
            settings,
            client_id=client_id,
            client_secret=client_secret,
            origin=origin,
        )
    else:
        if refresh_token is None:
            raise _missing("refresh_token")
        grant = await auth_service.refresh_grant(
            session, tokens, settings, refresh_token=refresh_token, origin=origin
        )
    return TokenResponse(
        access_token=grant.access_token,
        expires_in=grant.expires_in,
        refresh_token=grant.refresh_token,
    )


def _missing(*fields: str) -> ValidationFailed:
    errors = [
        {"field": f"body.{f}", "loc": ["body", f], "type": "missing", "message": "Field required"}
        for f in fields
    ]
    return ValidationFailed("This grant type needs more fields.", extra={"errors": errors})


@router.post(
    "/revoke",
    status_code=200,
    dependencies=[Depends(require_body_media_type)],
    responses={415: {"description": "Not a form"}},
)
async def revoke_token(
    session: SessionDep,
    tokens: TokensDep,
    origin: OriginDep,
    token: Annotated[str, Form(max_length=65536)],
) -> dict[str, str]:
    """Sign out: revoke a refresh token and every token rotated from the same sign-in."""
    await auth_service.revoke_refresh_token(session, tokens, refresh_token=token, origin=origin)
    return {"status": "revoked"}


@router.get("/me", responses={401: {"description": "No or invalid token"}})
async def read_me(actor: CurrentActor) -> Me:
    """The caller as the server sees it now (roles and agency as of this request)."""
    return Me(
        id=actor.id,
        kind=actor.kind.value,
        username=actor.username,
        display_name=actor.name,
        agency_id=actor.agency_id,
        roles=sorted(r.value for r in actor.roles),
        scopes=sorted(actor.scopes),
        auth_method=actor.auth_method,
    )

"""FastAPI dependencies: the token service and the current actor."""

from __future__ import annotations

import uuid
from typing import Annotated

import structlog
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.audit.records import Origin
from app.auth import service as auth_service
from app.auth.actor import Actor
from app.db import SessionDep
from app.errors import Unauthorized
from app.security import InvalidToken, TokenService, TokenType

_bearer = HTTPBearer(auto_error=False, description="Access token from POST /auth/token")
log = structlog.get_logger("app.auth")


async def token_service(request: Request) -> TokenService:
    tokens: TokenService = request.app.state.tokens
    return tokens


TokensDep = Annotated[TokenService, Depends(token_service)]


async def origin_of(request: Request) -> Origin:
    client = request.client
    return Origin(
        request_id=getattr(request.state, "request_id", None),
        client_address=client.host if client else None,
    )


OriginDep = Annotated[Origin, Depends(origin_of)]


async def current_actor(
    session: SessionDep,
    tokens: TokensDep,
    origin: OriginDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Actor:
    """The caller, re-read from the database: 401 for any token problem, all alike."""
    if credentials is None:
        raise Unauthorized("A bearer access token is required.")
    try:
        claims = tokens.decode(credentials.credentials, expected_type=TokenType.ACCESS)
        kind, _, raw_id = claims.subject.partition(":")
        subject_id = uuid.UUID(raw_id)
        raw_sign_in = claims.extra.get("sid")
        sign_in_id = uuid.UUID(str(raw_sign_in)) if raw_sign_in is not None else None
    except (InvalidToken, ValueError) as exc:
        log.info("access token rejected", reason=str(exc))
        raise Unauthorized("The access token is invalid or expired.") from exc
    actor = await auth_service.load_actor(
        session, kind=kind, subject_id=subject_id, origin=origin, sign_in_id=sign_in_id
    )
    if actor is None:
        raise Unauthorized("The access token is invalid or expired.")
    structlog.contextvars.bind_contextvars(
        actor_kind=actor.kind.value, actor_id=str(actor.id), agency_id=str(actor.agency_id)
    )
    return actor


CurrentActor = Annotated[Actor, Depends(current_actor)]

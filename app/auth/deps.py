"""FastAPI dependencies: the token service and the current actor."""

from __future__ import annotations

import uuid
from typing import Annotated

import structlog
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.records import Origin
from app.auth import service as auth_service
from app.auth.actor import Actor
from app.config import Settings
from app.db import SessionDep
from app.errors import Forbidden, ServiceUnavailable, Unauthorized
from app.oidc import service as oidc_service
from app.oidc.providers import Provider, provider_for
from app.security import (
    InvalidToken,
    ProviderTokenVerifier,
    ProviderUnavailable,
    TokenService,
    TokenType,
    unverified_claims,
)

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


class _Refused(Exception):
    def __init__(self, reason: str, status: int = 401) -> None:
        self.reason = reason
        self.status = status


async def _actor_of(
    session: AsyncSession, tokens: TokenService, origin: Origin, token: str, request: Request
) -> Actor:
    """The live caller behind an access token; :class:`_Refused` saying why not,
    :class:`ProviderUnavailable` when a provider's keys cannot be had.

    A token is checked by the issuer it names: a configured identity provider (its issuer
    and audience) checks its own, this deployment checks the rest. Which one is read from
    the token before it is verified, and that issuer then requires exactly those values."""
    providers: dict[str, Provider] = request.app.state.identity_providers
    unverified = unverified_claims(token, tokens.max_bytes) if providers else None
    provider = (
        provider_for(providers, unverified.get("iss"), unverified.get("aud"))
        if unverified is not None
        else None
    )
    if provider is not None:
        verifier: ProviderTokenVerifier = request.app.state.provider_tokens
        try:
            return await oidc_service.provider_actor(session, verifier, provider, token, origin)
        except InvalidToken as exc:
            log.info("provider token rejected", provider=provider.id, reason=str(exc))
            raise _Refused(f"provider {provider.id}: invalid or expired access token") from exc
        except oidc_service.Refused as refused:
            raise _Refused(refused.reason, refused.status) from refused
    try:
        claims = tokens.decode(token, expected_type=TokenType.ACCESS)
        kind, _, raw_id = claims.subject.partition(":")
        subject_id = uuid.UUID(raw_id)
        raw_sign_in = claims.extra.get("sid")
        sign_in_id = uuid.UUID(str(raw_sign_in)) if raw_sign_in is not None else None
    except (InvalidToken, ValueError) as exc:
        log.info("access token rejected", reason=str(exc))
        raise _Refused("invalid or expired access token") from exc
    actor = await auth_service.load_actor(
        session, kind=kind, subject_id=subject_id, origin=origin, sign_in_id=sign_in_id
    )
    if actor is None:
        raise _Refused("sign-in ended, account inactive or client revoked")
    return actor


async def actor_if_signed_in(
    session: AsyncSession, tokens: TokenService, origin: Origin, request: Request
) -> Actor | None:
    """The caller of ``request`` if it carries a live access token, else ``None`` (for
    recording a request refused before the route's dependencies ran)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    try:
        return await _actor_of(session, tokens, origin, token.strip(), request)
    except (_Refused, ProviderUnavailable):
        return None


async def current_actor(
    request: Request,
    session: SessionDep,
    tokens: TokensDep,
    origin: OriginDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Actor:
    """The caller, re-read from the database: 401 for any token problem, all alike. A
    token presented but refused is recorded (``auth.failure``, rate-limited per address)."""
    if credentials is None:
        raise Unauthorized("A bearer access token is required.")
    try:
        actor = await _actor_of(session, tokens, origin, credentials.credentials, request)
    except ProviderUnavailable as down:
        log.warning("identity provider unavailable", reason=str(down))
        raise ServiceUnavailable(
            "The identity provider that issued the token cannot be reached; try again soon.",
            headers={"Retry-After": "30"},
        ) from down
    except _Refused as refused:
        if refused.status == 403:  # recorded where it was decided (auth.no_role)
            raise Forbidden("Your sign-in gives no role in Samverkan.") from refused
        settings: Settings = request.app.state.settings
        auth_service.record_token_failure(
            session, settings, action="auth.failure", reason=refused.reason, origin=origin
        )
        raise Unauthorized("The access token is invalid or expired.") from refused
    structlog.contextvars.bind_contextvars(
        actor_kind=actor.kind.value, actor_id=str(actor.id), agency_id=str(actor.agency_id)
    )
    return actor


CurrentActor = Annotated[Actor, Depends(current_actor)]

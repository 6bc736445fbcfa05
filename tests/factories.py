"""Plain factory functions: ``make_x(session, **overrides)``; no framework."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.agencies.models import Agency, AgencyKind
from app.audit.models import AuditEvent
from app.audit.records import Origin
from app.auth import service as auth_service
from app.auth.actor import Actor
from app.auth.models import SignIn
from app.security import TokenService, TokenType
from app.users import service as user_service
from app.users.models import Role, User
from tests.oidc_provider import provider_tokens_of

PASSWORD = "correct horse battery staple"


async def make_agency(session: AsyncSession, **overrides: object) -> Agency:
    now = datetime.now(UTC)
    values: dict[str, object] = {
        "id": uuid.uuid4(),
        "name": f"Agency {uuid.uuid4().hex[:8]}",
        "kind": AgencyKind.SOCIALTJANST.value,
        "organisation_number": "2120000142",
        "municipality": "Stockholm",
        "created_at": now,
        "updated_at": now,
    }
    values.update(overrides)
    agency = Agency(**values)
    session.add(agency)
    await session.flush()
    return agency


async def make_user(
    session: AsyncSession,
    *,
    roles: set[Role] | None = None,
    agency: Agency | None = None,
    password: str | None = None,
    username: str | None = None,
) -> User:
    """A user; without ``password`` no hash is computed (fast), so it cannot sign in.
    The user has a live sign-in (:func:`factory_sign_in`), which :func:`bearer` tokens name."""
    agency = agency or await make_agency(session)
    user = await user_service.insert_user(
        session,
        username=username or f"user.{uuid.uuid4().hex[:10]}",
        display_name="Test User",
        agency_id=agency.id,
        roles=roles or {Role.CASEWORKER},
        password=password,
    )
    session.add(SignIn(id=factory_sign_in(user.id), user_id=user.id, started_at=datetime.now(UTC)))
    await session.flush()
    return user


def factory_sign_in(user_id: uuid.UUID) -> uuid.UUID:
    """The sign-in of a factory-made user (tokens of a user must name a live sign-in)."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"test-sign-in:{user_id}")


def actor_for(user: User) -> Actor:
    return auth_service.user_actor(user, Origin(request_id="test"))


def access_token_for(app: FastAPI, subject: str, **extra: object) -> str:
    """An access token for ``subject``; a user's names the factory sign-in unless
    ``sid`` is given (``sid=None`` leaves it out)."""
    tokens: TokenService = app.state.tokens
    kind, _, raw_id = subject.partition(":")
    if kind == "user" and "sid" not in extra:
        extra["sid"] = str(factory_sign_in(uuid.UUID(raw_id)))
    claims = {k: v for k, v in extra.items() if v is not None}
    return tokens.issue(
        subject=subject, token_type=TokenType.ACCESS, ttl_seconds=300, extra=claims
    ).token


def bearer(app: FastAPI, user: User) -> dict[str, str]:
    """The user's access token: this deployment's, or, in a test's ``sign_in=oidc`` variant
    (tests/oidc_provider.py), the one their agency's provider issues."""
    provider_tokens = provider_tokens_of(app)
    token = provider_tokens.token_for(user) if provider_tokens is not None else None
    return {"Authorization": f"Bearer {token or access_token_for(app, f'user:{user.id}')}"}


async def audit_events_after(connection: AsyncConnection, seq: int) -> list[AuditEvent]:
    """The audit records written after ``seq``, oldest first (read on the test connection)."""
    async with AsyncSession(bind=connection) as session:
        rows = await session.execute(
            select(AuditEvent).where(AuditEvent.seq > seq).order_by(AuditEvent.seq)
        )
        return list(rows.scalars())


async def audit_head(connection: AsyncConnection) -> int:
    value = (await connection.execute(select(func.coalesce(func.max(AuditEvent.seq), 0)))).scalar()
    return int(value or 0)


async def fresh_sign_in(session: AsyncSession, app: FastAPI, user: User) -> dict[str, str]:
    """The headers of a new sign-in of ``user`` (as after signing in again)."""
    sign_in = SignIn(id=uuid.uuid4(), user_id=user.id, started_at=datetime.now(UTC))
    session.add(sign_in)
    await session.flush()
    token = access_token_for(app, f"user:{user.id}", sid=str(sign_in.id))
    return {"Authorization": f"Bearer {token}"}

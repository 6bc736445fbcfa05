"""Sign-in, token refresh and the actor behind a token.

Every grant is audited: ``auth.login`` / ``auth.client_login`` / ``auth.refresh`` when
it succeeds, and the matching ``*_failed`` / ``*_throttled`` / ``auth.refresh_reuse``
denial when it does not, written even though the request ends in an error.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit import writer as audit
from app.audit.models import Decision
from app.audit.records import Origin, Record
from app.auth import throttle
from app.auth.actor import Actor, ActorKind
from app.auth.models import RefreshToken, SignIn
from app.clients.models import IntegrationClient
from app.config import Settings
from app.db import keep_whatever_the_outcome, rows_of
from app.errors import TooManyRequests, Unauthorized
from app.inputs import has_controls
from app.security import InvalidToken, TokenService, TokenType, verify_secret
from app.users.models import User, parse_roles

INVALID_CREDENTIALS = "Invalid credentials."


@dataclass(frozen=True, slots=True)
class TokenGrant:
    access_token: str
    expires_in: int
    refresh_token: str | None = None


def _now() -> datetime:
    return datetime.now(UTC)


def user_actor(user: User, origin: Origin) -> Actor:
    """The actor a user is, with roles and agency as stored now."""
    return _user_actor(
        user.id, user.agency_id, user.roles, user.username, user.display_name, origin
    )


def _user_actor(
    user_id: uuid.UUID, agency_id: uuid.UUID, roles: str, username: str, name: str, origin: Origin
) -> Actor:
    return Actor(
        kind=ActorKind.USER,
        id=user_id,
        agency_id=agency_id,
        roles=parse_roles(roles),
        scopes=frozenset(),
        username=username,
        name=name,
        origin=origin,
    )


class SignInEnd(StrEnum):
    """Why a sign-in ended (``sign_in.ended_reason``)."""

    SIGNED_OUT = "signed_out"
    TOKEN_REUSE = "refresh_token_reuse"  # noqa: S105 - a reason, not a secret
    PASSWORD_CHANGED = "password_changed"  # noqa: S105 - a reason, not a secret
    DEACTIVATED = "deactivated"
    ACCESS_CHANGED = "roles_or_agency_changed"


# The user behind a token, if the token's sign-in has not ended: one statement, the same
# round trip the request made before sign-ins were state.
_SIGNED_IN_USER = (
    select(User.id, User.agency_id, User.roles, User.username, User.display_name)
    .join(SignIn, SignIn.user_id == User.id)
    .where(
        User.id == bindparam("user_id"),
        User.active.is_(True),
        SignIn.id == bindparam("sign_in_id"),
        SignIn.ended_at.is_(None),
    )
)


async def load_actor(
    session: AsyncSession,
    *,
    kind: str,
    subject_id: uuid.UUID,
    origin: Origin,
    sign_in_id: uuid.UUID | None = None,
) -> Actor | None:
    """The active user of a live sign-in, or the unrevoked client, behind a token; else
    ``None``. A user's token without a sign-in is never accepted."""
    if kind == ActorKind.USER:
        if sign_in_id is None:
            return None
        found = await rows_of(
            session, _SIGNED_IN_USER, {"user_id": subject_id, "sign_in_id": sign_in_id}
        )
        if not found:
            return None
        user_id, agency_id, roles, username, name = found[0]
        return _user_actor(user_id, agency_id, roles, username, name, origin)
    if kind == ActorKind.CLIENT:
        client = await session.get(IntegrationClient, subject_id)
        if client is None or client.revoked_at is not None:
            return None
        return Actor(
            kind=ActorKind.CLIENT,
            id=client.id,
            agency_id=client.agency_id,
            roles=frozenset(),
            scopes=frozenset(s for s in client.scopes.split(",") if s),
            username=client.client_id,
            name=client.name,
            origin=origin,
            auth_method="client_credentials",
        )
    return None


async def _check_throttle(
    session: AsyncSession, keys: list[str], action: str, origin: Origin, now: datetime
) -> None:
    until = await throttle.blocked_until(session, keys, now)
    if until is None:
        return
    if until.tzinfo is None:  # SQLite returns naive UTC
        until = until.replace(tzinfo=UTC)
    retry_after = max(1, int((until - now).total_seconds()) + 1)
    audit.append_whatever_the_outcome(
        session,
        Record(
            action=action,
            decision=Decision.DENY,
            reason="throttled",
            flags=["denied", "throttled"],
            origin=origin,
        ),
    )
    raise TooManyRequests(
        "Too many failed sign-ins; try again later.", headers={"Retry-After": str(retry_after)}
    )


def record_token_failure(
    session: AsyncSession, settings: Settings, *, action: str, reason: str, origin: Origin
) -> None:
    """A presented token that is not a live one of this deployment: recorded (``action``,
    denied), at most ``token_failures_recorded_per_address`` times per address and
    throttle window, so that a flood of forged tokens cannot grow the log without bound.
    Past the limit nothing more is written for that address until the window ends."""
    now = _now()
    key = throttle.key_for("token", origin.client_address or "unknown")
    limit = settings.token_failures_recorded_per_address
    window = timedelta(seconds=settings.login_throttle_window_seconds)
    record = Record(
        action=action, decision=Decision.DENY, reason=reason, flags=["denied"], origin=origin
    )

    async def within_limit(target: AsyncSession) -> bool:
        if await throttle.blocked_until(target, [key], now) is not None:
            return False
        await throttle.register_failure(target, [(key, limit)], now, window)
        return True

    audit.append_whatever_the_outcome(session, record, only_if=within_limit)


def _fail_sign_in(
    session: AsyncSession,
    settings: Settings,
    *,
    limits: list[tuple[str, int]],
    record: Record,
    now: datetime,
) -> Unauthorized:
    """Count the failure and record it whatever happens to the request's transaction."""
    window = timedelta(seconds=settings.login_throttle_window_seconds)

    async def count(target: AsyncSession) -> None:
        await throttle.register_failure(target, limits, now, window)

    keep_whatever_the_outcome(session, count)
    audit.append_whatever_the_outcome(session, record)
    return Unauthorized(INVALID_CREDENTIALS, extra={"error": "invalid_grant"})


async def _issue(
    session: AsyncSession,
    tokens: TokenService,
    settings: Settings,
    user: User,
    *,
    family_id: uuid.UUID | None = None,
) -> TokenGrant:
    """Tokens of a sign-in: a new one (``family_id`` None) or the one being refreshed.
    Both tokens name the sign-in in ``sid``."""
    now = _now()
    if family_id is None:
        family_id = uuid.uuid4()
        session.add(SignIn(id=family_id, user_id=user.id, started_at=now))
    access = tokens.issue(
        subject=f"user:{user.id}",
        token_type=TokenType.ACCESS,
        ttl_seconds=settings.access_token_ttl_seconds,
        extra={"sid": str(family_id)},
    )
    refresh_id = uuid.uuid4()
    refresh = tokens.issue(
        subject=f"user:{user.id}",
        token_type=TokenType.REFRESH,
        ttl_seconds=settings.refresh_token_ttl_seconds,
        token_id=str(refresh_id),
        extra={"sid": str(family_id)},
    )
    session.add(
        RefreshToken(
            id=refresh_id,
            family_id=family_id,
            user_id=user.id,
            issued_at=now,
            expires_at=now + timedelta(seconds=settings.refresh_token_ttl_seconds),
        )
    )
    await session.flush()
    return TokenGrant(
        access_token=access.token,
        expires_in=settings.access_token_ttl_seconds,
        refresh_token=refresh.token,
    )


async def password_grant(
    session: AsyncSession,
    tokens: TokenService,
    settings: Settings,
    *,
    username: str,
    password: str,
    origin: Origin,
) -> TokenGrant:
    """Sign a user in. Unknown user, wrong password and inactive account look alike."""
    now = _now()
    user_key = throttle.key_for("user", username.casefold())
    address_key = throttle.key_for("addr", origin.client_address or "unknown")
    await _check_throttle(session, [user_key, address_key], "auth.login_throttled", origin, now)

    user = None
    # A name no account can have (too long, control characters: a NUL is an error on
    # PostgreSQL) is an unknown user: the same 401, counted and recorded like any other.
    if 0 < len(username) <= 64 and not has_controls(username):
        user = (
            await session.execute(select(User).where(User.username == username.casefold()))
        ).scalar_one_or_none()
    too_long = len(password.encode("utf-8", "replace")) > settings.password_max_bytes
    # Always one argon2 verification, so every failure takes the same time.
    password_ok = await verify_secret(
        "" if too_long else password, None if too_long or user is None else user.password_hash
    )
    if user is None or not password_ok or not user.active:
        reason = (
            "unknown user"
            if user is None
            else ("wrong password" if not password_ok else "inactive account")
        )
        raise _fail_sign_in(
            session,
            settings,
            limits=[
                (user_key, settings.login_max_failures_per_username),
                (address_key, settings.login_max_failures_per_address),
            ],
            record=Record(
                action="auth.login_failed",
                decision=Decision.DENY,
                actor_user_id=user.id if user else None,
                actor_agency_id=user.agency_id if user else None,
                reason=reason,
                flags=["denied"],
                origin=origin,
            ),
            now=now,
        )
    await throttle.clear(session, user_key)
    grant = await _issue(session, tokens, settings, user)
    await audit.append(
        session,
        user_actor(user, origin).record(
            "auth.login", resource_type="user", resource_id=str(user.id)
        ),
    )
    return grant


async def client_credentials_grant(
    session: AsyncSession,
    tokens: TokenService,
    settings: Settings,
    *,
    client_id: str,
    client_secret: str,
    origin: Origin,
) -> TokenGrant:
    """Sign an integration client in; clients get access tokens only, no refresh."""
    now = _now()
    client_key = throttle.key_for("client", client_id)
    address_key = throttle.key_for("addr", origin.client_address or "unknown")
    await _check_throttle(
        session, [client_key, address_key], "auth.client_login_throttled", origin, now
    )
    client = None
    if 0 < len(client_id) <= 40 and not has_controls(client_id):
        client = (
            await session.execute(
                select(IntegrationClient).where(IntegrationClient.client_id == client_id)
            )
        ).scalar_one_or_none()
    too_long = len(client_secret.encode("utf-8", "replace")) > settings.password_max_bytes
    secret_ok = await verify_secret(
        "" if too_long else client_secret,
        None if too_long or client is None else client.secret_hash,
    )
    if client is None or not secret_ok or client.revoked_at is not None:
        raise _fail_sign_in(
            session,
            settings,
            limits=[
                (client_key, settings.login_max_failures_per_username),
                (address_key, settings.login_max_failures_per_address),
            ],
            record=Record(
                action="auth.client_login_failed",
                decision=Decision.DENY,
                actor_client_id=client.id if client else None,
                actor_agency_id=client.agency_id if client else None,
                reason="unknown client" if client is None else "wrong secret or revoked",
                flags=["denied"],
                origin=origin,
            ),
            now=now,
        )
    await throttle.clear(session, client_key)
    access = tokens.issue(
        subject=f"client:{client.id}",
        token_type=TokenType.ACCESS,
        ttl_seconds=settings.access_token_ttl_seconds,
    )
    await audit.append(
        session,
        Record(
            action="auth.client_login",
            actor_client_id=client.id,
            actor_agency_id=client.agency_id,
            resource_type="client",
            resource_id=str(client.id),
            origin=origin,
            auth_method="client_credentials",
        ),
    )
    return TokenGrant(access_token=access.token, expires_in=settings.access_token_ttl_seconds)


async def revoke_family(
    session: AsyncSession, family_id: uuid.UUID, now: datetime, reason: SignInEnd
) -> None:
    """End one sign-in: its access tokens at their next request, its refresh tokens now."""
    await session.execute(
        update(SignIn)
        .where(SignIn.id == family_id, SignIn.ended_at.is_(None))
        .values(ended_at=now, ended_reason=reason.value)
    )
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )


async def revoke_all_for_user(session: AsyncSession, user_id: uuid.UUID, reason: SignInEnd) -> None:
    """End every sign-in of ``user_id`` (password changed, deactivated, roles or agency
    changed): every token of theirs stops working at its next use."""
    now = _now()
    await session.execute(
        update(SignIn)
        .where(SignIn.user_id == user_id, SignIn.ended_at.is_(None))
        .values(ended_at=now, ended_reason=reason.value)
    )
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )


async def refresh_grant(
    session: AsyncSession,
    tokens: TokenService,
    settings: Settings,
    *,
    refresh_token: str,
    origin: Origin,
) -> TokenGrant:
    """Rotate a refresh token. Presenting one that was already used revokes its family:
    either the legitimate holder or a thief has the newer one, and neither can be told
    apart from here."""
    now = _now()
    invalid = Unauthorized(INVALID_CREDENTIALS, extra={"error": "invalid_grant"})
    try:
        claims = tokens.decode(refresh_token, expected_type=TokenType.REFRESH)
        token_id = uuid.UUID(claims.token_id)
    except (InvalidToken, ValueError) as exc:
        record_token_failure(
            session,
            settings,
            action="auth.refresh_failed",
            reason="not a refresh token of this deployment",
            origin=origin,
        )
        raise invalid from exc
    row = await session.get(RefreshToken, token_id)
    if row is None or claims.subject != f"user:{row.user_id}":
        raise invalid
    claimed = await session.execute(
        update(RefreshToken)
        .where(
            RefreshToken.id == token_id,
            RefreshToken.used_at.is_(None),
            RefreshToken.revoked_at.is_(None),
        )
        .values(used_at=now)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        family_id, user_id = row.family_id, row.user_id

        async def revoke(target: AsyncSession) -> None:
            await revoke_family(target, family_id, now, SignInEnd.TOKEN_REUSE)

        keep_whatever_the_outcome(session, revoke)
        audit.append_whatever_the_outcome(
            session,
            Record(
                action="auth.refresh_reuse",
                decision=Decision.DENY,
                actor_user_id=user_id,
                resource_type="refresh_token_family",
                resource_id=str(family_id),
                reason="refresh token presented again; family revoked",
                flags=["denied", "token_reuse"],
                origin=origin,
            ),
        )
        raise invalid
    user = await session.get(User, row.user_id)
    if user is None or not user.active:
        raise invalid
    grant = await _issue(session, tokens, settings, user, family_id=row.family_id)
    await audit.append(
        session,
        user_actor(user, origin).record(
            "auth.refresh", resource_type="refresh_token_family", resource_id=str(row.family_id)
        ),
    )
    return grant


def _sign_in_of(tokens: TokenService, token: str) -> tuple[uuid.UUID, uuid.UUID] | None:
    """(sign-in, user) a refresh or an access token of this deployment names, if any."""
    for token_type in (TokenType.REFRESH, TokenType.ACCESS):
        try:
            claims = tokens.decode(token, expected_type=token_type)
            kind, _, raw_user = claims.subject.partition(":")
            if kind != ActorKind.USER:
                return None
            return uuid.UUID(str(claims.extra.get("sid"))), uuid.UUID(raw_user)
        except (InvalidToken, ValueError):
            continue
    return None


async def revoke_refresh_token(
    session: AsyncSession, tokens: TokenService, *, refresh_token: str, origin: Origin
) -> None:
    """Sign out: end the sign-in the token (refresh or access) belongs to, and so every
    token of it. Unknown or invalid tokens are ignored (RFC 7009: the answer must not tell
    whether the token was valid)."""
    found = _sign_in_of(tokens, refresh_token)
    if found is None:
        return
    sign_in_id, user_id = found
    sign_in = await session.get(SignIn, sign_in_id)
    if sign_in is None or sign_in.user_id != user_id:
        return
    await revoke_family(session, sign_in_id, _now(), SignInEnd.SIGNED_OUT)
    await audit.append(
        session,
        Record(
            action="auth.logout",
            actor_user_id=user_id,
            resource_type="refresh_token_family",
            resource_id=str(sign_in_id),
            origin=origin,
        ),
    )

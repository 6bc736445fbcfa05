"""Sign-in through the agencies' own identity providers: the sign-in page's list, and the
actor behind a provider-issued access token.

The token is checked by :class:`app.security.ProviderTokenVerifier`. The account it speaks
for is found by the provider, its issuer and the token's ``sub`` (API.md), and must belong
to the provider's agency; an administrator links it (``identity`` on the account), or,
where the provider's entry says ``on_first_sign_in``, the first valid token creates it.

Roles: the account's roles are the ceiling an administrator set (for an account created at
first sign-in, every role the provider can map except ``admin``); the token's claims say
which of them apply now, so the agency's directory can take a role away at once. Where the
entry lists acceptable ``acr`` values, a token without one of them gives no content role
(caseworker, coordinator). A token that leaves no role is a 403, recorded.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.agencies.models import Agency
from app.audit import flags
from app.audit import writer as audit
from app.audit.models import Decision
from app.audit.records import Origin, Record
from app.auth.actor import Actor, ActorKind
from app.inputs import has_controls
from app.oidc.providers import Provider, Provisioning
from app.oidc.schemas import ProviderRead
from app.security import ProviderTokenVerifier
from app.users.models import CONTENT_ROLES, Role, User, format_roles, parse_roles


@dataclass(frozen=True, slots=True)
class Refused(Exception):
    """The token is valid but speaks for no one who may act here: ``status`` 401 (no live
    account) or 403 (an account, but no role)."""

    status: int
    reason: str


def _agency_query(provider: Provider) -> Select[uuid.UUID]:
    query = select(Agency.id).where(Agency.organisation_number == provider.agency)
    if provider.agency_kind is not None:
        query = query.where(Agency.kind == provider.agency_kind.value)
    return query.limit(2)


async def agency_of(session: AsyncSession, provider: Provider) -> uuid.UUID | None:
    """The one registered agency the provider speaks for; ``None`` if there is none, or
    more than one (then the entry needs ``agency_kind``)."""
    found = list((await session.execute(_agency_query(provider))).scalars())
    return found[0] if len(found) == 1 else None


async def list_providers(
    session: AsyncSession, providers: dict[str, Provider]
) -> list[ProviderRead]:
    """A provider whose agency is not registered (or not told apart) is left out: nobody
    can sign in through it."""
    listed: list[ProviderRead] = []
    for provider in providers.values():
        agency_id = await agency_of(session, provider)
        if agency_id is not None:
            listed.append(
                ProviderRead(
                    id=provider.id, name=provider.name, agency_id=agency_id, issuer=provider.issuer
                )
            )
    return listed


def _linked(provider: Provider, subject: str) -> Select[User]:
    """The account linked to this provider and subject, in the provider's agency."""
    query = (
        select(User)
        .join(Agency, Agency.id == User.agency_id)
        .where(
            User.identity_issuer == provider.issuer,
            User.identity_subject == subject,
            User.identity_provider == provider.id,
            Agency.organisation_number == provider.agency,
        )
    )
    if provider.agency_kind is not None:
        query = query.where(Agency.kind == provider.agency_kind.value)
    return query


def _display_name(provider: Provider, claims: dict[str, Any]) -> str | None:
    value = claims.get(provider.display_name_claim)
    if isinstance(value, str) and 0 < len(value.strip()) <= 200 and not has_controls(value):
        return value.strip()
    return None


def provisioned_username(provider: Provider, subject: str) -> str:
    """A stable username for an account created at first sign-in (the subject itself may
    be anything up to 255 characters)."""
    digest = hashlib.sha256(f"{provider.issuer}|{subject}".encode()).hexdigest()[:24]
    return f"oidc-{digest}"


async def _provision(
    session: AsyncSession, provider: Provider, subject: str, claims: dict[str, Any], origin: Origin
) -> User:
    """The account of a first sign-in (``provisioning: on_first_sign_in``), recorded as
    ``user.provision`` (for review when it can open case content)."""
    agency_id = await agency_of(session, provider)
    if agency_id is None:
        raise Refused(401, f"provider {provider.id}: its agency is not registered")
    ceiling = provider.mappable_roles() - {Role.ADMIN}
    now = datetime.now(UTC)
    user = User(
        id=uuid.uuid4(),
        username=provisioned_username(provider, subject),
        display_name=_display_name(provider, claims) or provider.name,
        agency_id=agency_id,
        roles=format_roles(ceiling),
        active=True,
        password_hash=None,
        created_at=now,
        updated_at=now,
        identity_provider=provider.id,
        identity_issuer=provider.issuer,
        identity_subject=subject,
    )
    try:
        async with session.begin_nested():
            session.add(user)
    except IntegrityError:
        # The same person's first two requests at once: the other one created it.
        existing: User | None = (
            await session.execute(_linked(provider, subject))
        ).scalar_one_or_none()
        if existing is None:
            raise
        return existing
    await audit.append(
        session,
        Record(
            action="user.provision",
            actor_user_id=user.id,
            actor_agency_id=agency_id,
            actor_roles=[r.value for r in ceiling],
            resource_type="user",
            resource_id=str(user.id),
            reason=f"first sign-in through {provider.id}",
            flags=[flags.ACCOUNT_CHANGE] if ceiling & CONTENT_ROLES else [],
            origin=origin,
            auth_method=provider.auth_method,
        ),
    )
    return user


def roles_now(provider: Provider, user: User, claims: dict[str, Any]) -> frozenset[Role]:
    """The roles this token gives: mapped from its claims, within the account's ceiling,
    without content roles unless the authentication level is one the entry accepts."""
    roles = provider.roles_from(claims) & parse_roles(user.roles)
    if provider.acr_values and claims.get("acr") not in provider.acr_values:
        roles -= CONTENT_ROLES
    return roles


async def provider_actor(
    session: AsyncSession,
    verifier: ProviderTokenVerifier,
    provider: Provider,
    token: str,
    origin: Origin,
) -> Actor:
    """The actor behind ``provider``'s token, re-read from the database at every request.

    Raises :class:`app.security.InvalidToken` (401), :class:`app.security.ProviderUnavailable`
    (503) or :class:`Refused`."""
    claims = await verifier.verify(token, issuer=provider.issuer, audience=provider.audience)
    subject: str = claims["sub"]
    user: User | None = (await session.execute(_linked(provider, subject))).scalar_one_or_none()
    if user is None:
        if provider.provisioning is not Provisioning.ON_FIRST_SIGN_IN:
            raise Refused(401, f"provider {provider.id}: no account is linked to this subject")
        user = await _provision(session, provider, subject, claims, origin)
    if not user.active:
        raise Refused(401, f"provider {provider.id}: the account is inactive")
    roles = roles_now(provider, user, claims)
    if not roles:
        audit.append_whatever_the_outcome(
            session,
            Record(
                action="auth.no_role",
                decision=Decision.DENY,
                actor_user_id=user.id,
                actor_agency_id=user.agency_id,
                resource_type="user",
                resource_id=str(user.id),
                reason=f"provider {provider.id}: the token's claims give no role here",
                flags=[flags.DENIED],
                origin=origin,
                auth_method=provider.auth_method,
            ),
        )
        raise Refused(403, "no role")
    return Actor(
        kind=ActorKind.USER,
        id=user.id,
        agency_id=user.agency_id,
        roles=roles,
        scopes=frozenset(),
        username=user.username,
        name=_display_name(provider, claims) or user.display_name,
        origin=origin,
        auth_method=provider.auth_method,
    )

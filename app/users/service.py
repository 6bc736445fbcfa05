"""User accounts, managed by administrators only. Every read and change is audited."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.agencies import service as agency_service
from app.audit import flags
from app.audit import writer as audit
from app.auth import service as auth_service
from app.auth.actor import Actor
from app.errors import Conflict, NotFound, ValidationFailed
from app.oidc import service as oidc_service
from app.oidc.providers import Provider
from app.pagination import Page, cursor_uuid, decode_cursor, encode_cursor
from app.policy import enforce
from app.policy.engine import Action
from app.policy.entities import AccountFacts
from app.security import hash_secret_async
from app.users.models import CONTENT_ROLES, Role, User, format_roles, parse_roles
from app.users.schemas import IdentityLink, IdentityRead, UserCreate, UserRead, UserUpdate


def to_read(user: User) -> UserRead:
    return UserRead(
        id=user.id,
        username=user.username,
        display_name=user.display_name,
        agency_id=user.agency_id,
        roles=sorted(parse_roles(user.roles)),
        active=user.active,
        identity=(
            IdentityRead(
                provider=user.identity_provider,
                issuer=user.identity_issuer,
                subject=user.identity_subject,
            )
            if user.identity_provider and user.identity_issuer and user.identity_subject
            else None
        ),
    )


async def _admin(session: AsyncSession, actor: Actor, action: str, user_id: str | None) -> None:
    """``account.manage``: administrators (policies/duties.cedar); else an audited 403."""
    enforce.require(
        session,
        actor,
        Action.ACCOUNT_MANAGE,
        AccountFacts(id=uuid.UUID(user_id) if user_id else uuid.uuid4(), agency_id=actor.agency_id),
        audit_action=action,
        hidden=False,
        resource_type="user",
        resource_id=user_id,
    )


def _check_duties(
    actor: Actor, account_id: uuid.UUID, agency_id: uuid.UUID, roles: set[Role]
) -> None:
    """The roles an account would hold, decided by the decision point: administrator and
    auditor never together (422 naming ``body.roles``)."""
    decision = enforce.decide(
        actor,
        Action.ACCOUNT_MANAGE,
        AccountFacts(id=account_id, agency_id=agency_id, roles=frozenset(r.value for r in roles)),
    )
    if not decision.allowed:
        raise ValidationFailed.for_field(
            "body.roles",
            "The roles admin and auditor are never held by one account.",
            "separation_of_duties",
        )


def _account_change(
    *,
    roles_before: set[Role],
    roles: set[Role],
    password_reset: bool,
    moved: bool,
    linked: bool = False,
) -> list[str]:
    """``account_change`` when the change could give someone access to case content: a new
    content role, a password set by an administrator, a move to another agency, a link to
    an identity at a provider (whoever holds it can now act as the account)."""
    gains_content = bool((roles - roles_before) & CONTENT_ROLES)
    opens = roles & CONTENT_ROLES and (password_reset or moved or linked)
    return [flags.ACCOUNT_CHANGE] if gains_content or opens else []


async def _link(
    session: AsyncSession,
    providers: dict[str, Provider],
    user: User,
    link: IdentityLink | None,
) -> None:
    """Link ``user`` to ``link`` (or unlink): the provider must be configured and speak
    for the account's agency (422 naming ``body.identity.provider``), and the identity
    must not belong to another account (409)."""
    if link is None:
        user.identity_provider = user.identity_issuer = user.identity_subject = None
        return
    provider = providers.get(link.provider)
    if provider is None:
        raise ValidationFailed.for_field(
            "body.identity.provider", "No such identity provider is configured.", "unknown"
        )
    if await oidc_service.agency_of(session, provider) != user.agency_id:
        raise ValidationFailed.for_field(
            "body.identity.provider",
            "That provider does not speak for the account's agency.",
            "other_agency",
        )
    taken = await session.execute(
        select(User.id).where(
            User.identity_issuer == provider.issuer,
            User.identity_subject == link.subject,
            User.id != user.id,
        )
    )
    if taken.first() is not None:
        raise Conflict("That identity is linked to another account.")
    user.identity_provider = provider.id
    user.identity_issuer = provider.issuer
    user.identity_subject = link.subject


async def username_taken(session: AsyncSession, username: str) -> bool:
    found = await session.execute(select(User.id).where(User.username == username.casefold()))
    return found.first() is not None


async def create_user(
    session: AsyncSession, actor: Actor, *, data: UserCreate, providers: dict[str, Provider]
) -> User:
    """409 if the username (in any letter case) or the identity exists; 422 if the agency
    or the provider does not, or the provider is another agency's."""
    await _admin(session, actor, "user.create", None)
    await agency_service.ensure_exists(session, agency_id=data.agency_id, field="body.agency_id")
    _check_duties(actor, uuid.uuid4(), data.agency_id, set(data.roles))
    if await username_taken(session, data.username):
        raise Conflict("That username is taken.")
    user = await insert_user(
        session,
        username=data.username,
        display_name=data.display_name,
        agency_id=data.agency_id,
        roles=set(data.roles),
        password=data.password,
    )
    if data.identity is not None:
        await _link(session, providers, user, data.identity)
        await session.flush()
    await audit.append(
        session,
        actor.record(
            "user.create",
            resource_type="user",
            resource_id=str(user.id),
            flags=_account_change(
                roles_before=set(),
                roles=set(data.roles),
                password_reset=data.password is not None,
                moved=False,
                linked=data.identity is not None,
            ),
        ),
    )
    return user


async def insert_user(
    session: AsyncSession,
    *,
    username: str,
    display_name: str,
    agency_id: uuid.UUID,
    roles: set[Role],
    password: str | None,
) -> User:
    """Insert without authorisation or audit: for the CLI and the demo, which audit."""
    now = datetime.now(UTC)
    user = User(
        id=uuid.uuid4(),
        username=username.casefold(),
        display_name=display_name,
        agency_id=agency_id,
        roles=format_roles(roles),
        active=True,
        password_hash=await hash_secret_async(password) if password else None,
        created_at=now,
        updated_at=now,
    )
    session.add(user)
    await session.flush()
    return user


async def get_user(session: AsyncSession, actor: Actor, *, user_id: uuid.UUID) -> User:
    await _admin(session, actor, "user.read", str(user_id))
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound("No such user.")
    await audit.append(
        session, actor.record("user.read", resource_type="user", resource_id=str(user.id))
    )
    return user


def _sign_in_end(
    user: User, data: UserUpdate, previous_roles: str, previous_agency: uuid.UUID
) -> auth_service.SignInEnd | None:
    """Whether this change ends the user's sign-ins: a new password, deactivation, or
    different roles or agency (a token must not carry access its holder no longer has,
    nor be the old account's access for whoever reset the password)."""
    if data.active is False:
        return auth_service.SignInEnd.DEACTIVATED
    if data.password is not None:
        return auth_service.SignInEnd.PASSWORD_CHANGED
    if user.roles != previous_roles or user.agency_id != previous_agency:
        return auth_service.SignInEnd.ACCESS_CHANGED
    return None


async def update_user(
    session: AsyncSession,
    actor: Actor,
    *,
    user_id: uuid.UUID,
    data: UserUpdate,
    providers: dict[str, Provider],
) -> User:
    """Changes take effect at the user's next request. Deactivation also revokes every
    refresh token. An administrator cannot deactivate or demote themselves (lock-out)."""
    await _admin(session, actor, "user.update", str(user_id))
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound("No such user.")
    changes = data.model_dump(exclude_unset=True)
    if user.id == actor.id and (
        changes.get("active") is False
        or ("roles" in changes and Role.ADMIN not in set(changes["roles"] or ()))
    ):
        raise Conflict("Administrators cannot deactivate or demote themselves.")
    previous_roles, previous_agency = user.roles, user.agency_id
    for field in ("display_name", "active"):
        if changes.get(field) is not None:
            setattr(user, field, changes[field])
    if data.agency_id is not None:
        await agency_service.ensure_exists(
            session, agency_id=data.agency_id, field="body.agency_id"
        )
        user.agency_id = data.agency_id
    if data.roles is not None:
        _check_duties(actor, user.id, user.agency_id, set(data.roles))
        user.roles = format_roles(set(data.roles))
    if data.password is not None:
        user.password_hash = await hash_secret_async(data.password)
    previous_identity = (user.identity_issuer, user.identity_subject)
    if "identity" in changes:
        await _link(session, providers, user, data.identity)
    elif user.identity_provider is not None and user.agency_id != previous_agency:
        # Moved to another agency: the link stays only if its provider speaks for it.
        await _link(
            session,
            providers,
            user,
            IdentityLink(provider=user.identity_provider, subject=user.identity_subject or ""),
        )
    linked = (user.identity_issuer, user.identity_subject) != previous_identity
    user.updated_at = datetime.now(UTC)
    ended = _sign_in_end(user, data, previous_roles, previous_agency)
    if ended is not None:
        await auth_service.revoke_all_for_user(session, user.id, ended)
    await session.flush()
    await audit.append(
        session,
        actor.record(
            "user.update",
            resource_type="user",
            resource_id=str(user.id),
            reason="changed: " + ",".join(sorted(changes)),
            flags=_account_change(
                roles_before=set(parse_roles(previous_roles)),
                roles=set(parse_roles(user.roles)),
                password_reset=data.password is not None,
                moved=user.agency_id != previous_agency,
                linked=linked and user.identity_issuer is not None,
            ),
        ),
    )
    return user


async def list_users(
    session: AsyncSession, actor: Actor, *, limit: int, cursor: str | None
) -> Page[UserRead]:
    await _admin(session, actor, "user.list", None)
    key = decode_cursor(cursor, 2)
    query = select(User).order_by(User.username, User.id).limit(limit + 1)
    if key is not None:
        query = query.where(
            (User.username > key[0]) | ((User.username == key[0]) & (User.id > cursor_uuid(key[1])))
        )
    rows = list((await session.execute(query)).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    await audit.append(session, actor.record("user.list", resource_type="user"))
    next_cursor = encode_cursor([rows[-1].username, str(rows[-1].id)]) if more else None
    return Page[UserRead](items=[to_read(u) for u in rows], next_cursor=next_cursor)

"""Integration clients: created, listed and revoked by administrators, all audited."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.agencies import service as agency_service
from app.audit import writer as audit
from app.auth.actor import Actor
from app.clients.models import IntegrationClient, Scope
from app.clients.schemas import ClientCreate, ClientCreated, ClientRead
from app.errors import NotFound
from app.pagination import Page, cursor_uuid, decode_cursor, encode_cursor
from app.policy import enforce
from app.policy.engine import Action
from app.policy.entities import AgencyFacts
from app.security import hash_secret_async, new_client_id, new_client_secret


def to_read(client: IntegrationClient) -> ClientRead:
    return ClientRead(
        id=client.id,
        client_id=client.client_id,
        name=client.name,
        agency_id=client.agency_id,
        scopes=[Scope(s) for s in client.scopes.split(",") if s],
        created_at=client.created_at,
        revoked_at=client.revoked_at,
    )


async def _admin(session: AsyncSession, actor: Actor, action: str, client_id: str | None) -> None:
    enforce.require(
        session,
        actor,
        Action.CLIENT_MANAGE,
        AgencyFacts(id=actor.agency_id),
        audit_action=action,
        hidden=False,
        resource_type="client",
        resource_id=client_id,
    )


async def create_client(
    session: AsyncSession, actor: Actor, *, data: ClientCreate
) -> ClientCreated:
    """The secret is returned once and stored only as an argon2id hash."""
    await _admin(session, actor, "client.create", None)
    await agency_service.ensure_exists(session, agency_id=data.agency_id, field="body.agency_id")
    secret = new_client_secret()
    client = IntegrationClient(
        id=uuid.uuid4(),
        client_id=new_client_id(),
        name=data.name,
        agency_id=data.agency_id,
        scopes=",".join(sorted({s.value for s in data.scopes})),
        secret_hash=await hash_secret_async(secret),
        created_at=datetime.now(UTC),
    )
    session.add(client)
    await session.flush()
    await audit.append(
        session, actor.record("client.create", resource_type="client", resource_id=str(client.id))
    )
    return ClientCreated(**to_read(client).model_dump(), client_secret=secret)


async def _get(session: AsyncSession, client_id: uuid.UUID) -> IntegrationClient:
    client = await session.get(IntegrationClient, client_id)
    if client is None:
        raise NotFound("No such client.")
    return client


async def get_client(
    session: AsyncSession, actor: Actor, *, client_id: uuid.UUID
) -> IntegrationClient:
    await _admin(session, actor, "client.read", str(client_id))
    client = await _get(session, client_id)
    await audit.append(
        session, actor.record("client.read", resource_type="client", resource_id=str(client.id))
    )
    return client


async def revoke_client(session: AsyncSession, actor: Actor, *, client_id: uuid.UUID) -> None:
    """Its access tokens stop working at the next request; revoking twice is a no-op."""
    await _admin(session, actor, "client.revoke", str(client_id))
    client = await _get(session, client_id)
    if client.revoked_at is None:
        client.revoked_at = datetime.now(UTC)
        await session.flush()
    await audit.append(
        session, actor.record("client.revoke", resource_type="client", resource_id=str(client.id))
    )


async def list_clients(
    session: AsyncSession, actor: Actor, *, limit: int, cursor: str | None
) -> Page[ClientRead]:
    await _admin(session, actor, "client.list", None)
    key = decode_cursor(cursor, 1)
    query = select(IntegrationClient).order_by(IntegrationClient.id).limit(limit + 1)
    if key is not None:
        query = query.where(IntegrationClient.id > cursor_uuid(key[0]))
    rows = list((await session.execute(query)).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    await audit.append(session, actor.record("client.list", resource_type="client"))
    next_cursor = encode_cursor([str(rows[-1].id)]) if more else None
    return Page[ClientRead](items=[to_read(c) for c in rows], next_cursor=next_cursor)

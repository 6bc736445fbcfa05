"""Agencies: admins create and change them; every signed-in actor may read the directory."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from stdnum.se import orgnr

from app.agencies.models import Agency, AgencyKind
from app.agencies.schemas import AgencyCreate, AgencyRead, AgencyUpdate
from app.audit import writer as audit
from app.auth.actor import Actor
from app.errors import NotFound, ValidationFailed
from app.pagination import Page, cursor_uuid, decode_cursor, encode_cursor
from app.policy import enforce
from app.policy.engine import Action
from app.policy.entities import AgencyFacts


def to_read(agency: Agency) -> AgencyRead:
    return AgencyRead(
        id=agency.id,
        name=agency.name,
        kind=AgencyKind(agency.kind),
        organisation_number=orgnr.format(agency.organisation_number),
        municipality=agency.municipality,
    )


async def create_agency(session: AsyncSession, actor: Actor, *, data: AgencyCreate) -> Agency:
    """Admin only; audited as ``agency.create``."""
    enforce.require(
        session,
        actor,
        Action.AGENCY_MANAGE,
        AgencyFacts(id=actor.agency_id),
        audit_action="agency.create",
        hidden=False,
        resource_type="agency",
    )
    now = datetime.now(UTC)
    agency = Agency(
        id=uuid.uuid4(),
        name=data.name,
        kind=data.kind.value,
        organisation_number=data.organisation_number,
        municipality=data.municipality,
        created_at=now,
        updated_at=now,
    )
    session.add(agency)
    await session.flush()
    await audit.append(
        session, actor.record("agency.create", resource_type="agency", resource_id=str(agency.id))
    )
    return agency


async def get_agency(session: AsyncSession, *, agency_id: uuid.UUID) -> Agency:
    agency = await session.get(Agency, agency_id)
    if agency is None:
        raise NotFound("No such agency.")
    return agency


async def kind_of(session: AsyncSession, agency_id: uuid.UUID) -> str:
    """The agency's kind (socialtjanst, polis, ...), which several rules depend on.

    Asked once per agency and request: a page of entries asks it for every item.
    """
    known: dict[uuid.UUID, str] = session.info.setdefault(_KINDS, {})
    if agency_id not in known:
        known[agency_id] = (
            await session.execute(select(Agency.kind).where(Agency.id == agency_id))
        ).scalar_one()
    return known[agency_id]


def remember_kinds(session: AsyncSession, kinds: dict[uuid.UUID, str]) -> None:
    """Kinds read by a larger statement, kept for :func:`kind_of` in this request."""
    session.info.setdefault(_KINDS, {}).update(kinds)


_KINDS = "samverkan.agency_kinds"


async def ensure_exists(session: AsyncSession, *, agency_id: uuid.UUID, field: str) -> None:
    """422 naming ``field`` when a request refers to an agency that does not exist."""
    if await session.get(Agency, agency_id) is None:
        raise ValidationFailed.for_field(field, "No such agency.", "unknown_agency")


async def update_agency(
    session: AsyncSession, actor: Actor, *, agency_id: uuid.UUID, data: AgencyUpdate
) -> Agency:
    """Admin only; audited as ``agency.update`` with the changed field names."""
    enforce.require(
        session,
        actor,
        Action.AGENCY_MANAGE,
        AgencyFacts(id=actor.agency_id),
        audit_action="agency.update",
        hidden=False,
        resource_type="agency",
        resource_id=str(agency_id),
    )
    agency = await get_agency(session, agency_id=agency_id)
    changes = data.model_dump(exclude_unset=True)
    for field, value in changes.items():
        setattr(agency, field, value.value if field == "kind" and value else value)
    agency.updated_at = datetime.now(UTC)
    await session.flush()
    await audit.append(
        session,
        actor.record(
            "agency.update",
            resource_type="agency",
            resource_id=str(agency.id),
            reason="changed: " + ",".join(sorted(changes)),
        ),
    )
    return agency


async def list_agencies(
    session: AsyncSession, *, limit: int, cursor: str | None
) -> Page[AgencyRead]:
    """The agency directory, by name. Not personal data, so not audited."""
    key = decode_cursor(cursor, 2)
    query = select(Agency).order_by(Agency.name, Agency.id).limit(limit + 1)
    if key is not None:
        query = query.where(tuple_(Agency.name, Agency.id) > (key[0], cursor_uuid(key[1])))
    rows = list((await session.execute(query)).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor([rows[-1].name, str(rows[-1].id)]) if more else None
    return Page[AgencyRead](items=[to_read(a) for a in rows], next_cursor=next_cursor)

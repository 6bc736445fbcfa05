"""Registering, showing and looking up external references.

A reference is registered by the caller's agency, in the namespace of that agency: two
municipalities may both have a Treserva case "2026-0412". Whoever may see an individual's
identity sees the references of that individual and of their cases; nobody else does, and
a lookup finds only what the caller may identify (app.policy.filters), like a search by
personnummer.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, delete, exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.actor import Actor
from app.cases.models import Case
from app.errors import Conflict, ValidationFailed
from app.external_refs.models import ExternalRef
from app.external_refs.schemas import ExternalRefIn, ExternalRefRead
from app.individuals.models import Individual

_QUERY = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]{0,63}):([\x21-\x7e]{1,128})$")


def parse_query(text: str) -> tuple[str, str]:
    """``SYSTEM:ID`` from ``?external_ref=``; a 422 (the value not echoed) otherwise."""
    match = _QUERY.match(text)
    if match is None:
        raise ValidationFailed.for_field(
            "query.external_ref", "Give the reference as SYSTEM:ID, e.g. treserva:2026-0412."
        )
    return match.group(1), match.group(2)


def _refers(system: str, external_id: str, target: ColumnElement[bool]) -> ColumnElement[bool]:
    return exists(
        select(ExternalRef.id).where(
            ExternalRef.system == system, ExternalRef.external_id == external_id, target
        )
    )


def refers_to_individual(system: str, external_id: str) -> ColumnElement[bool]:
    """Some agency registered ``system:external_id`` for the individual (combine it with
    the identity filter: a lookup must not confirm what the caller may not see)."""
    return _refers(system, external_id, ExternalRef.individual_id == Individual.id)


def refers_to_case(system: str, external_id: str) -> ColumnElement[bool]:
    """Some agency registered ``system:external_id`` for the case."""
    return _refers(system, external_id, ExternalRef.case_id == Case.id)


async def register(
    session: AsyncSession,
    actor: Actor,
    refs: list[ExternalRefIn],
    *,
    individual_id: uuid.UUID | None = None,
    case_id: uuid.UUID | None = None,
    field: str = "body.external_refs",
) -> None:
    """Add the caller's agency's references to an individual or a case: 422 for the same
    reference twice in one request, 409 if the agency has it on another record already."""
    seen: set[tuple[str, str]] = set()
    for index, ref in enumerate(refs):
        key = (ref.system, ref.id)
        if key in seen:
            raise ValidationFailed.for_field(
                f"{field}.{index}", "The same reference is given twice.", "duplicate"
            )
        seen.add(key)
    for index, (system, external_id) in enumerate(seen):
        taken = await session.execute(
            select(ExternalRef.id).where(
                ExternalRef.agency_id == actor.agency_id,
                ExternalRef.system == system,
                ExternalRef.external_id == external_id,
            )
        )
        if taken.first() is not None:
            raise Conflict(
                f"Your agency has already registered a reference given in {field} "
                f"(number {index + 1} of the distinct ones) on another record."
            )
    now = datetime.now(UTC)
    session.add_all(
        ExternalRef(
            id=uuid.uuid4(),
            agency_id=actor.agency_id,
            system=system,
            external_id=external_id,
            individual_id=individual_id,
            case_id=case_id,
            created_at=now,
            created_by=actor.id,
        )
        for system, external_id in sorted(seen)
    )
    await session.flush()


async def replace_own(
    session: AsyncSession,
    actor: Actor,
    refs: list[ExternalRefIn],
    *,
    case_id: uuid.UUID | None = None,
    individual_id: uuid.UUID | None = None,
) -> None:
    """PATCH: the caller's agency's references on the case (or individual) become
    ``refs``; other agencies' stay as they are."""
    owner = (
        ExternalRef.case_id == case_id
        if case_id is not None
        else ExternalRef.individual_id == individual_id
    )
    await session.execute(
        delete(ExternalRef).where(owner, ExternalRef.agency_id == actor.agency_id)
    )
    await register(session, actor, refs, case_id=case_id, individual_id=individual_id)


_OF_INDIVIDUAL = select(ExternalRef).order_by(
    ExternalRef.agency_id, ExternalRef.system, ExternalRef.external_id
)


async def shown(
    session: AsyncSession,
    *,
    individual_id: uuid.UUID | None = None,
    case_id: uuid.UUID | None = None,
) -> list[ExternalRefRead]:
    """The references of one individual or one case. Callers decide first whether the
    reader may see the identity; without it, they show none."""
    query = _OF_INDIVIDUAL.where(
        ExternalRef.individual_id == individual_id
        if individual_id is not None
        else ExternalRef.case_id == case_id
    )
    return [
        ExternalRefRead(system=r.system, id=r.external_id, agency_id=r.agency_id)
        for r in (await session.execute(query)).scalars()
    ]

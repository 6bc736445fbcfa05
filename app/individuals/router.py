from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from app.audit.deps import audited
from app.auth.deps import CurrentActor
from app.db import SessionDep
from app.idempotency.deps import creates, idempotent
from app.individuals import changes as change_service
from app.individuals import service as individual_service
from app.individuals.schemas import (
    GuardianCreate,
    GuardianRead,
    GuardianUpdate,
    IndividualCreate,
    IndividualRead,
    IndividualUpdate,
    IndividualVersionRead,
)
from app.pagination import Page

router = APIRouter(prefix="/individuals", tags=["individuals"])
guardians_router = APIRouter(prefix="/guardians", tags=["individuals"])
_401: dict[int | str, dict[str, str]] = {401: {"description": "No or invalid token"}}


@router.post(
    "",
    dependencies=[audited("individual.create"), idempotent()],
    status_code=201,
    responses={
        **_401,
        403: {"description": "Not a coordinator"},
        409: {"description": "Already registered by your agency"},
    },
)
@creates
async def create_individual(
    data: IndividualCreate, actor: CurrentActor, session: SessionDep
) -> IndividualRead:
    return await individual_service.create_individual(session, actor, data=data)


@router.get("", dependencies=[audited("individual.search")], responses=_401)
async def search_individuals(
    actor: CurrentActor,
    session: SessionDep,
    personal_number: Annotated[str | None, Query(min_length=10, max_length=13)] = None,
    external_ref: Annotated[
        str | None, Query(max_length=200, description="`SYSTEM:ID`, e.g. `treserva:2026-0412`.")
    ] = None,
) -> Page[IndividualRead]:
    """Search by personnummer or samordningsnummer, or by an external reference (one of the
    two); audited like a read. Few hits (at most one per registering agency and
    reference): one page (`next_cursor` null)."""
    return await individual_service.search_individuals(
        session, actor, personal_number=personal_number, external_ref=external_ref
    )


@router.get(
    "/{individual_id}",
    dependencies=[audited("individual.read")],
    responses={**_401, 404: {"description": "Unknown or not yours"}},
)
async def get_individual(
    individual_id: uuid.UUID, actor: CurrentActor, session: SessionDep
) -> IndividualRead:
    return await individual_service.get_individual(session, actor, individual_id=individual_id)


_CHANGE: dict[int | str, dict[str, str]] = {
    **_401,
    403: {"description": "Not a coordinator of the registering agency"},
    404: {"description": "Unknown or not yours"},
    409: {"description": "The personnummer is registered already, or too many guardians"},
}


@router.patch("/{individual_id}", dependencies=[audited("individual.update")], responses=_CHANGE)
async def update_individual(
    individual_id: uuid.UUID, data: IndividualUpdate, actor: CurrentActor, session: SessionDep
) -> IndividualRead:
    """The registering agency's coordinators: names, a personnummer attached to a reserve
    id (or corrected), protected identity on or off, your agency's external references.
    Versioned: `GET /individuals/{id}/versions`."""
    return await change_service.update_individual(
        session, actor, individual_id=individual_id, data=data
    )


@router.get(
    "/{individual_id}/versions",
    dependencies=[audited("individual.versions")],
    responses={**_401, 404: {"description": "Unknown, or you may not see the identity"}},
)
async def list_individual_versions(
    individual_id: uuid.UUID, actor: CurrentActor, session: SessionDep
) -> Page[IndividualVersionRead]:
    """Every change of the individual and their guardians: who, when, the values replaced.
    Identity data: only where you may see the identity. One page."""
    return await change_service.list_versions(session, actor, individual_id=individual_id)


@router.post(
    "/{individual_id}/guardians",
    dependencies=[audited("guardian.add"), idempotent()],
    status_code=201,
    responses=_CHANGE,
)
@creates
async def add_guardian(
    individual_id: uuid.UUID, data: GuardianCreate, actor: CurrentActor, session: SessionDep
) -> GuardianRead:
    return await change_service.add_guardian(session, actor, individual_id=individual_id, data=data)


@guardians_router.patch(
    "/{guardian_id}", dependencies=[audited("guardian.update")], responses=_CHANGE
)
async def update_guardian(
    guardian_id: uuid.UUID, data: GuardianUpdate, actor: CurrentActor, session: SessionDep
) -> GuardianRead:
    """Custody, names, personnummer, contact (`null` clears number or contact)."""
    return await change_service.update_guardian(session, actor, guardian_id=guardian_id, data=data)

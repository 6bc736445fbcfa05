from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response

from app.audit.deps import audited
from app.auth.deps import CurrentActor
from app.cases import links as link_service
from app.cases import service as case_service
from app.cases.models import CaseStatus, Programme
from app.cases.schemas import (
    CaseCreate,
    CaseRead,
    CaseUpdate,
    LinkCreate,
    LinkCreated,
    LinkRead,
    ParticipantCreate,
    ParticipantRead,
)
from app.db import SessionDep
from app.errors import ONE_RESOURCE
from app.idempotency.deps import creates, idempotent
from app.pagination import CursorQuery, LimitQuery, Page

router = APIRouter(prefix="/cases", tags=["cases"])
_ONE = ONE_RESOURCE
_CHANGE = {**_ONE, 409: {"description": "Not possible in the case's state"}}


@router.post(
    "", dependencies=[audited("case.create"), idempotent()], status_code=201, responses=_ONE
)
@creates
async def create_case(data: CaseCreate, actor: CurrentActor, session: SessionDep) -> CaseRead:
    return await case_service.create_case(session, actor, data=data)


@router.get("", dependencies=[audited("case.list")], responses=_ONE)
async def list_cases(
    actor: CurrentActor,
    session: SessionDep,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
    status: CaseStatus | None = None,
    programme: Programme | None = None,
    personal_number: Annotated[str | None, Query(min_length=10, max_length=13)] = None,
    external_ref: Annotated[
        str | None, Query(max_length=200, description="`SYSTEM:ID`, e.g. `treserva:2026-0412`.")
    ] = None,
) -> Page[CaseRead]:
    """Cases your agency takes part in, newest first."""
    return await case_service.list_cases(
        session,
        actor,
        limit=limit,
        cursor=cursor,
        status=status,
        programme=programme,
        personal_number=personal_number,
        external_ref=external_ref,
    )


@router.get("/{case_id}", dependencies=[audited("case.read")], responses=_ONE)
async def get_case(case_id: uuid.UUID, actor: CurrentActor, session: SessionDep) -> CaseRead:
    return await case_service.get_case(session, actor, case_id=case_id)


@router.patch("/{case_id}", dependencies=[audited("case.update")], responses=_CHANGE)
async def update_case(
    case_id: uuid.UUID, data: CaseUpdate, actor: CurrentActor, session: SessionDep
) -> CaseRead:
    return await case_service.update_case(session, actor, case_id=case_id, data=data)


@router.post(
    "/{case_id}/participants",
    dependencies=[audited("participant.add"), idempotent()],
    status_code=201,
    responses=_CHANGE,
)
@creates
async def add_participant(
    case_id: uuid.UUID, data: ParticipantCreate, actor: CurrentActor, session: SessionDep
) -> ParticipantRead:
    return await case_service.add_participant(session, actor, case_id=case_id, data=data)


@router.get("/{case_id}/participants", dependencies=[audited("participant.list")], responses=_ONE)
async def list_participants(
    case_id: uuid.UUID, actor: CurrentActor, session: SessionDep
) -> Page[ParticipantRead]:
    """A case's agencies are few: one page (`next_cursor` null)."""
    return await case_service.list_participants(session, actor, case_id=case_id)


@router.delete(
    "/{case_id}/participants/{agency_id}",
    dependencies=[audited("participant.remove")],
    status_code=204,
    responses=_CHANGE,
)
async def remove_participant(
    case_id: uuid.UUID, agency_id: uuid.UUID, actor: CurrentActor, session: SessionDep
) -> Response:
    await case_service.remove_participant(session, actor, case_id=case_id, agency_id=agency_id)
    return Response(status_code=204)


@router.post(
    "/{case_id}/links",
    dependencies=[audited("case.link"), idempotent()],
    status_code=201,
    responses=_CHANGE,
)
@creates
async def link_case(
    case_id: uuid.UUID, data: LinkCreate, actor: CurrentActor, session: SessionDep
) -> LinkCreated:
    """Lead coordinators: this case `continues` an earlier case of the same individual (made
    on the new case, pointing at the old), or is `related` to another case you take part in.
    Each side keeps its own sharing; `consent_needed_for` names this case's agencies that no
    active consent covers yet (the old case's consent does not carry over)."""
    return await link_service.create_link(session, actor, case_id=case_id, data=data)


@router.get("/{case_id}/links", dependencies=[audited("case.links")], responses=_ONE)
async def list_links(
    case_id: uuid.UUID, actor: CurrentActor, session: SessionDep
) -> Page[LinkRead]:
    """Links made on the case or pointing at it, to cases you also take part in."""
    return await link_service.list_links(session, actor, case_id=case_id)

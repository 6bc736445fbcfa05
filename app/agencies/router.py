from __future__ import annotations

import uuid

from fastapi import APIRouter

from app.agencies import service as agency_service
from app.agencies.schemas import AgencyCreate, AgencyRead, AgencyUpdate
from app.audit.deps import audited
from app.auth.deps import CurrentActor
from app.db import SessionDep
from app.idempotency.deps import creates, idempotent
from app.pagination import CursorQuery, LimitQuery, Page

router = APIRouter(prefix="/agencies", tags=["agencies"])
_ERRORS: dict[int | str, dict[str, str]] = {
    401: {"description": "No or invalid token"},
    403: {"description": "Not an administrator"},
}


@router.post(
    "", dependencies=[audited("agency.create"), idempotent()], status_code=201, responses=_ERRORS
)
@creates
async def create_agency(data: AgencyCreate, actor: CurrentActor, session: SessionDep) -> AgencyRead:
    agency = await agency_service.create_agency(session, actor, data=data)
    return agency_service.to_read(agency)


@router.get("", responses={401: _ERRORS[401]})
async def list_agencies(
    actor: CurrentActor, session: SessionDep, limit: LimitQuery = 50, cursor: CursorQuery = None
) -> Page[AgencyRead]:
    return await agency_service.list_agencies(session, limit=limit, cursor=cursor)


@router.get("/{agency_id}", responses={**_ERRORS, 404: {"description": "No such agency"}})
async def get_agency(agency_id: uuid.UUID, actor: CurrentActor, session: SessionDep) -> AgencyRead:
    agency = await agency_service.get_agency(session, agency_id=agency_id)
    return agency_service.to_read(agency)


@router.patch(
    "/{agency_id}",
    dependencies=[audited("agency.update")],
    responses={**_ERRORS, 404: {"description": "No such agency"}},
)
async def update_agency(
    agency_id: uuid.UUID, data: AgencyUpdate, actor: CurrentActor, session: SessionDep
) -> AgencyRead:
    agency = await agency_service.update_agency(session, actor, agency_id=agency_id, data=data)
    return agency_service.to_read(agency)

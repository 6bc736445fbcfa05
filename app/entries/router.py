from __future__ import annotations

import uuid

from fastapi import APIRouter

from app.audit.deps import audited
from app.auth.deps import CurrentActor
from app.db import SessionDep
from app.entries import service as entry_service
from app.entries.schemas import CorrectionCreate, EntryCreate, EntryRead
from app.errors import ONE_RESOURCE, STATE_CHANGE
from app.idempotency.deps import creates, idempotent
from app.pagination import CursorQuery, LimitQuery, Page

router = APIRouter(tags=["sharing"])
_ONE = ONE_RESOURCE


@router.post(
    "/cases/{case_id}/entries",
    dependencies=[audited("entry.create"), idempotent()],
    status_code=201,
    responses=STATE_CHANGE,  # 409: the case is closed
)
@creates
async def create_entry(
    case_id: uuid.UUID, data: EntryCreate, actor: CurrentActor, session: SessionDep
) -> EntryRead:
    return await entry_service.create_entry(session, actor, case_id=case_id, data=data)


@router.get("/cases/{case_id}/entries", dependencies=[audited("entry.list")], responses=_ONE)
async def list_entries(
    case_id: uuid.UUID,
    actor: CurrentActor,
    session: SessionDep,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[EntryRead]:
    """Only what the sharing rule lets you read now; newest first."""
    return await entry_service.list_entries(
        session, actor, case_id=case_id, limit=limit, cursor=cursor
    )


@router.get("/entries/{entry_id}", dependencies=[audited("entry.read")], responses=_ONE)
async def get_entry(entry_id: uuid.UUID, actor: CurrentActor, session: SessionDep) -> EntryRead:
    return await entry_service.get_entry(session, actor, entry_id=entry_id)


@router.post(
    "/entries/{entry_id}/corrections",
    dependencies=[audited("entry.correct"), idempotent()],
    status_code=201,
    responses=_ONE,
)
@creates
async def correct_entry(
    entry_id: uuid.UUID, data: CorrectionCreate, actor: CurrentActor, session: SessionDep
) -> EntryRead:
    return await entry_service.correct_entry(session, actor, entry_id=entry_id, data=data)

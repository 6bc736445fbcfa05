from __future__ import annotations

import uuid

from fastapi import APIRouter

from app.audit.deps import audited
from app.auth.deps import CurrentActor
from app.db import SessionDep
from app.errors import ONE_RESOURCE, STATE_CHANGE
from app.idempotency.deps import creates, idempotent
from app.meetings import service as meeting_service
from app.meetings.schemas import MeetingCreate, MeetingRead
from app.pagination import CursorQuery, LimitQuery, Page

router = APIRouter(tags=["casework"])
_ONE = ONE_RESOURCE


@router.post(
    "/cases/{case_id}/meetings",
    dependencies=[audited("meeting.create"), idempotent()],
    status_code=201,
    responses=STATE_CHANGE,
)
@creates
async def record_meeting(
    case_id: uuid.UUID, data: MeetingCreate, actor: CurrentActor, session: SessionDep
) -> MeetingRead:
    """A meeting that was held (category `plan`), with its attendees and minutes; each
    decision becomes a planned action in the same transaction (a decision for another
    agency needs a consent covering the plan, as any action does: 403 otherwise)."""
    return await meeting_service.record_meeting(session, actor, case_id=case_id, data=data)


@router.get("/cases/{case_id}/meetings", dependencies=[audited("meeting.list")], responses=_ONE)
async def list_meetings(
    case_id: uuid.UUID,
    actor: CurrentActor,
    session: SessionDep,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[MeetingRead]:
    """The case's meetings as far as the sharing rule lets you see them; newest first."""
    return await meeting_service.list_meetings(
        session, actor, case_id=case_id, limit=limit, cursor=cursor
    )


@router.get("/meetings/{meeting_id}", dependencies=[audited("meeting.read")], responses=_ONE)
async def get_meeting(
    meeting_id: uuid.UUID, actor: CurrentActor, session: SessionDep
) -> MeetingRead:
    return await meeting_service.get_meeting(session, actor, meeting_id=meeting_id)

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response

from app.audit.deps import audited
from app.auth.deps import CurrentActor
from app.db import SessionDep
from app.emergency import service as emergency_service
from app.emergency.schemas import EmergencyAccessCreate, EmergencyAccessRead
from app.errors import ONE_RESOURCE, STATE_CHANGE
from app.idempotency.deps import creates, idempotent
from app.pagination import Page

router = APIRouter(tags=["emergency access"])
_ONE = ONE_RESOURCE
_CHANGE = STATE_CHANGE


@router.post(
    "/cases/{case_id}/emergency-access",
    dependencies=[audited("emergency.grant"), idempotent()],
    status_code=201,
    responses=_CHANGE,
)
@creates
async def request_emergency_access(
    case_id: uuid.UUID, data: EmergencyAccessCreate, actor: CurrentActor, session: SessionDep
) -> EmergencyAccessRead:
    """Break-the-glass under a legal basis from /legal-bases, with a written reason;
    time-limited, and every read under it is flagged for review. 409 on a closed case."""
    return await emergency_service.request_access(session, actor, case_id=case_id, data=data)


@router.get(
    "/cases/{case_id}/emergency-access",
    dependencies=[audited("emergency.list")],
    responses=_ONE,
)
async def list_emergency_access(
    case_id: uuid.UUID, actor: CurrentActor, session: SessionDep
) -> Page[EmergencyAccessRead]:
    """The case's grants the caller may see: its own agency's, or all for the lead
    coordinator; newest first, expired and ended ones included, in one page."""
    return await emergency_service.list_grants(session, actor, case_id=case_id)


@router.delete(
    "/emergency-access/{grant_id}",
    dependencies=[audited("emergency.end")],
    status_code=204,
    responses=_CHANGE,
)
async def end_emergency_access(
    grant_id: uuid.UUID, actor: CurrentActor, session: SessionDep
) -> Response:
    """Ends a grant early (the grantee or the lead coordinator); reads under it stop at once."""
    await emergency_service.end_grant(session, actor, grant_id=grant_id)
    return Response(status_code=204)

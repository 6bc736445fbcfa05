from __future__ import annotations

import uuid

from fastapi import APIRouter

from app.actions import service as action_service
from app.actions.schemas import ActionCreate, ActionRead, ActionUpdate
from app.audit.deps import audited
from app.auth.deps import CurrentActor
from app.db import SessionDep
from app.errors import ONE_RESOURCE, STATE_CHANGE
from app.idempotency.deps import creates, idempotent
from app.pagination import CursorQuery, LimitQuery, Page

router = APIRouter(tags=["sharing"])
_ONE = ONE_RESOURCE


@router.post(
    "/cases/{case_id}/actions",
    dependencies=[audited("action.create"), idempotent()],
    status_code=201,
    responses=STATE_CHANGE,  # 409: the case is closed
)
@creates
async def create_action(
    case_id: uuid.UUID, data: ActionCreate, actor: CurrentActor, session: SessionDep
) -> ActionRead:
    """For your own agency, or for another participating agency under an active consent
    that covers `plan` and names both agencies (403 otherwise)."""
    return await action_service.create_action(session, actor, case_id=case_id, data=data)


@router.get("/cases/{case_id}/actions", dependencies=[audited("action.list")], responses=_ONE)
async def list_actions(
    case_id: uuid.UUID,
    actor: CurrentActor,
    session: SessionDep,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[ActionRead]:
    """The case's action plan as far as the sharing rule lets you see it; oldest first."""
    return await action_service.list_actions(
        session, actor, case_id=case_id, limit=limit, cursor=cursor
    )


@router.get("/actions/{action_id}", dependencies=[audited("action.read")], responses=_ONE)
async def get_action(action_id: uuid.UUID, actor: CurrentActor, session: SessionDep) -> ActionRead:
    return await action_service.get_action(session, actor, action_id=action_id)


_CHANGE = {**_ONE, 409: {"description": "Final, or a step the status diagram does not allow"}}


@router.patch("/actions/{action_id}", dependencies=[audited("action.update")], responses=_CHANGE)
async def update_action(
    action_id: uuid.UUID, data: ActionUpdate, actor: CurrentActor, session: SessionDep
) -> ActionRead:
    """Responsible agency only: status planned → in_progress → done | cancelled (done and
    cancelled need an `outcome` and are final), assignee, due date, title, description."""
    return await action_service.update_action(session, actor, action_id=action_id, data=data)

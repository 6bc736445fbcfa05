from __future__ import annotations

import uuid

from fastapi import APIRouter

from app.audit.deps import audited
from app.auth.deps import CurrentActor
from app.db import SessionDep
from app.errors import ONE_RESOURCE, STATE_CHANGE
from app.goals import service as goal_service
from app.goals.schemas import GoalCreate, GoalRead, GoalUpdate
from app.idempotency.deps import creates, idempotent
from app.pagination import CursorQuery, LimitQuery, Page

router = APIRouter(tags=["casework"])
_ONE = ONE_RESOURCE


@router.post(
    "/cases/{case_id}/goals",
    dependencies=[audited("goal.create"), idempotent()],
    status_code=201,
    responses=STATE_CHANGE,
)
@creates
async def create_goal(
    case_id: uuid.UUID, data: GoalCreate, actor: CurrentActor, session: SessionDep
) -> GoalRead:
    """A goal of the plan (category `plan`), set today by your agency."""
    return await goal_service.create_goal(session, actor, case_id=case_id, data=data)


@router.get("/cases/{case_id}/goals", dependencies=[audited("goal.list")], responses=_ONE)
async def list_goals(
    case_id: uuid.UUID,
    actor: CurrentActor,
    session: SessionDep,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[GoalRead]:
    """The case's goals as far as the sharing rule lets you see them; oldest first."""
    return await goal_service.list_goals(
        session, actor, case_id=case_id, limit=limit, cursor=cursor
    )


@router.get("/goals/{goal_id}", dependencies=[audited("goal.read")], responses=_ONE)
async def get_goal(goal_id: uuid.UUID, actor: CurrentActor, session: SessionDep) -> GoalRead:
    return await goal_service.get_goal(session, actor, goal_id=goal_id)


@router.patch("/goals/{goal_id}", dependencies=[audited("goal.update")], responses=STATE_CHANGE)
async def follow_up_goal(
    goal_id: uuid.UUID, data: GoalUpdate, actor: CurrentActor, session: SessionDep
) -> GoalRead:
    """A follow-up by the goal's agency or a lead coordinator: status, next follow-up date,
    outcome (needed once no longer open), note. Kept as a version."""
    return await goal_service.update_goal(session, actor, goal_id=goal_id, data=data)

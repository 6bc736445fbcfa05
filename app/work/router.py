from __future__ import annotations

from fastapi import APIRouter

from app.audit.deps import audited
from app.auth.deps import CurrentActor
from app.db import SessionDep
from app.pagination import LimitQuery
from app.work import service as work_service
from app.work.schemas import Work

router = APIRouter(prefix="/me", tags=["casework"])


@router.get(
    "/work",
    dependencies=[audited("work.list")],
    responses={401: {"description": "No or invalid token"}, 403: {"description": "Not case staff"}},
)
async def my_work(actor: CurrentActor, session: SessionDep, limit: LimitQuery = 50) -> Work:
    """What you have to do, as far as you may see it: overdue actions, goals to follow up,
    consents running out, threat reviews due, and threats raised on your agency's cases.
    Each item: `{id, kind, case_id, due_on}`; at most `limit` items a list."""
    return await work_service.my_work(session, actor, limit=limit)

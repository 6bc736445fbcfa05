from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query

from app.audit.deps import audited
from app.auth.deps import CurrentActor
from app.cases.models import Programme
from app.db import SessionDep
from app.errors import SIGNED_IN
from app.statistics import service as statistics_service
from app.statistics.schemas import GroupBy, Statistics

router = APIRouter(tags=["follow-up"])


@router.get(
    "/statistics",
    dependencies=[audited("statistics.read")],
    responses={**SIGNED_IN, 403: {"description": "Not a coordinator or an auditor"}},
    response_model_by_alias=True,
)
async def get_statistics(
    actor: CurrentActor,
    session: SessionDep,
    group_by: GroupBy = GroupBy.PROGRAMME,
    programme: Programme | None = None,
    from_: Annotated[date | None, Query(alias="from")] = None,
    to: date | None = None,
) -> Statistics:
    """Counts over the cases your agency takes part in, by group, over the period (this
    year so far unless given): individuals, cases opened and closed (by reason), consents
    active at the end and withdrawn, goals set by status, actions done and done by their
    due date, the median days from opening to the first action. Every count from 1 to 4
    is `"<5"`, and as many more as keep one from being worked out from the totals."""
    return await statistics_service.statistics(
        session, actor, group_by=group_by, start=from_, end=to, programme=programme
    )

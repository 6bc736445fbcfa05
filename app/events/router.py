from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.audit.deps import audited
from app.auth.deps import CurrentActor
from app.db import SessionDep
from app.events import service as event_service
from app.events.schemas import EventPage
from app.pagination import LimitQuery

router = APIRouter(tags=["events"])
_ERRORS: dict[int | str, dict[str, str]] = {
    401: {"description": "No or invalid token"},
    403: {"description": "Your role does not read events"},
}

AfterQuery = Annotated[
    str | None, Query(max_length=512, description="`next_cursor` of the previous page.")
]


@router.get("/events", dependencies=[audited("event.list")], responses=_ERRORS)
async def list_events(
    actor: CurrentActor, session: SessionDep, limit: LimitQuery = 50, after: AfterQuery = None
) -> EventPage:
    """What happened, oldest first: ids and type only (read the resource with your own
    rights). Only events about what you may read now; poll with `next_cursor` as `after`."""
    return await event_service.feed(session, actor, after=after, limit=limit)

from __future__ import annotations

import uuid

from fastapi import APIRouter

from app.audit.deps import audited
from app.auth.deps import CurrentActor
from app.db import SessionDep
from app.errors import ONE_RESOURCE, STATE_CHANGE
from app.holds import service as hold_service
from app.holds.models import HoldStatus
from app.holds.schemas import LegalHoldCreate, LegalHoldDecision, LegalHoldLift, LegalHoldRead
from app.idempotency.deps import creates, idempotent
from app.pagination import CursorQuery, LimitQuery, Page

router = APIRouter(tags=["retention"])


@router.post(
    "/legal-holds",
    dependencies=[audited("legal_hold.request"), idempotent()],
    status_code=201,
    responses=STATE_CHANGE,
)
@creates
async def request_hold(
    data: LegalHoldCreate, actor: CurrentActor, session: SessionDep
) -> LegalHoldRead:
    """Ask for a hold (bevarande) on a case or an individual: retention culls nothing of it
    from now on, and an auditor approves or rejects the request."""
    return await hold_service.request_hold(session, actor, data=data)


@router.get("/legal-holds", dependencies=[audited("legal_hold.list")])
async def list_holds(
    actor: CurrentActor,
    session: SessionDep,
    status: HoldStatus | None = None,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[LegalHoldRead]:
    """Auditors: every hold; coordinators: their agency's. Newest request first."""
    return await hold_service.list_holds(session, actor, status=status, limit=limit, cursor=cursor)


@router.get(
    "/legal-holds/{hold_id}", dependencies=[audited("legal_hold.read")], responses=ONE_RESOURCE
)
async def get_hold(hold_id: uuid.UUID, actor: CurrentActor, session: SessionDep) -> LegalHoldRead:
    return await hold_service.get_hold(session, actor, hold_id=hold_id)


@router.post(
    "/legal-holds/{hold_id}/lift",
    dependencies=[audited("legal_hold.lift")],
    responses=STATE_CHANGE,
)
async def request_lift(
    hold_id: uuid.UUID, data: LegalHoldLift, actor: CurrentActor, session: SessionDep
) -> LegalHoldRead:
    """Ask for an active hold to be lifted; it protects until an auditor approves."""
    return await hold_service.request_lift(session, actor, hold_id=hold_id, data=data)


@router.post(
    "/legal-holds/{hold_id}/approve",
    dependencies=[audited("legal_hold.approve")],
    responses=STATE_CHANGE,
)
async def approve(
    hold_id: uuid.UUID, data: LegalHoldDecision, actor: CurrentActor, session: SessionDep
) -> LegalHoldRead:
    """An auditor approves the pending request (the hold, or its lifting)."""
    return await hold_service.decide(session, actor, hold_id=hold_id, data=data, approve=True)


@router.post(
    "/legal-holds/{hold_id}/reject",
    dependencies=[audited("legal_hold.reject")],
    responses=STATE_CHANGE,
)
async def reject(
    hold_id: uuid.UUID, data: LegalHoldDecision, actor: CurrentActor, session: SessionDep
) -> LegalHoldRead:
    """An auditor rejects the pending request (the hold, or its lifting)."""
    return await hold_service.decide(session, actor, hold_id=hold_id, data=data, approve=False)

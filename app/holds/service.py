"""Legal holds: asked for (and their lifting asked for) by a coordinator, decided by an
auditor who did not ask; each step audited with the case and individual it is about. What
a hold protects, and from when, is app.retention's (``PROTECTING``)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit import writer as audit
from app.auth.actor import Actor
from app.cases import service as case_service
from app.errors import Conflict
from app.holds.models import HoldStatus, LegalHold
from app.holds.schemas import LegalHoldCreate, LegalHoldDecision, LegalHoldLift, LegalHoldRead
from app.individuals import changes as individual_changes
from app.pagination import Page, decode_cursor, encode_cursor
from app.policy import enforce, filters
from app.policy.engine import Action
from app.policy.entities import HoldFacts


def _now() -> datetime:
    return datetime.now(UTC)


def to_read(hold: LegalHold) -> LegalHoldRead:
    return LegalHoldRead.model_validate(hold, from_attributes=True)


def _fields(hold: LegalHold) -> dict[str, Any]:
    return {
        "resource_type": "legal_hold",
        "resource_id": str(hold.id),
        "case_id": hold.case_id,
        "individual_id": hold.individual_id,
    }


async def _require_target(
    session: AsyncSession,
    actor: Actor,
    *,
    case_id: uuid.UUID | None,
    individual_id: uuid.UUID | None,
    audit_action: str,
) -> tuple[uuid.UUID, uuid.UUID | None, str]:
    """(individual, case, policy id) once the caller may see the target (404 otherwise)
    and ask for a hold on it (403 otherwise)."""
    if case_id is not None:
        case, _, decision = await case_service.load_case(
            session, actor, case_id, action=Action.HOLD_REQUEST, audit_action=audit_action
        )
        return case.individual_id, case.id, decision.policy_id
    assert individual_id is not None
    individual, _, decision = await individual_changes.load_individual(
        session, actor, individual_id, action=Action.HOLD_REQUEST, audit_action=audit_action
    )
    return individual.id, None, decision.policy_id


async def request_hold(
    session: AsyncSession, actor: Actor, *, data: LegalHoldCreate
) -> LegalHoldRead:
    individual_id, case_id, policy_id = await _require_target(
        session,
        actor,
        case_id=data.case_id,
        individual_id=data.individual_id,
        audit_action="legal_hold.request",
    )
    hold = LegalHold(
        id=uuid.uuid4(),
        individual_id=individual_id,
        case_id=case_id,
        agency_id=actor.agency_id,
        status=HoldStatus.REQUESTED.value,
        reason=data.reason,
        requested_by=actor.id,
        requested_at=_now(),
    )
    session.add(hold)
    return await _recorded(session, actor, hold, "legal_hold.request", policy_id)


async def _recorded(
    session: AsyncSession,
    actor: Actor,
    hold: LegalHold,
    action: str,
    policy_id: str,
    reason: str | None = None,
) -> LegalHoldRead:
    """The change's audit record (naming the case and the individual), then the hold."""
    await audit.append(
        session, actor.record(action, policy_id=policy_id, reason=reason, **_fields(hold))
    )
    return to_read(hold)


async def _load(
    session: AsyncSession,
    actor: Actor,
    hold_id: uuid.UUID,
    audit_action: str,
    *,
    for_change: bool = True,
) -> tuple[LegalHold, str]:
    """The hold if the caller may read it (404 as for none otherwise); locked when it is
    to be changed, so that two decisions on one request never both win."""
    query = select(LegalHold).where(LegalHold.id == hold_id)
    if for_change:
        query = query.with_for_update()
    hold = (await session.execute(query)).scalar_one_or_none()
    if hold is None:
        raise enforce.not_found(
            session,
            actor,
            audit_action=audit_action,
            resource_type="legal_hold",
            resource_id=str(hold_id),
        )
    decision = enforce.require(
        session,
        actor,
        Action.HOLD_READ,
        facts(hold),
        audit_action=audit_action,
        hidden=True,
        **_fields(hold),
    )
    return hold, decision.policy_id


def facts(hold: LegalHold) -> HoldFacts:
    pending_by = (
        hold.lift_requested_by
        if hold.status == HoldStatus.LIFT_REQUESTED.value and hold.lift_requested_by
        else hold.requested_by
    )
    return HoldFacts(id=hold.id, agency_id=hold.agency_id, requested_by=pending_by)


async def get_hold(session: AsyncSession, actor: Actor, *, hold_id: uuid.UUID) -> LegalHoldRead:
    hold, policy_id = await _load(session, actor, hold_id, "legal_hold.read", for_change=False)
    audit.append_at_commit(
        session, [actor.record("legal_hold.read", policy_id=policy_id, **_fields(hold))]
    )
    return to_read(hold)


async def list_holds(
    session: AsyncSession,
    actor: Actor,
    *,
    status: HoldStatus | None,
    limit: int,
    cursor: str | None,
) -> Page[LegalHoldRead]:
    """The holds the caller may read (filters.holds_visible_to, as hold.read decides),
    newest request first; each one shown is audited as a read of it."""
    query = select(LegalHold).where(filters.holds_visible_to(actor))
    if status is not None:
        query = query.where(LegalHold.status == status.value)
    key = decode_cursor(cursor, 2)
    if key is not None:
        at, last_id = datetime.fromisoformat(key[0]), uuid.UUID(key[1])
        query = query.where(
            (LegalHold.requested_at < at)
            | ((LegalHold.requested_at == at) & (LegalHold.id < last_id))
        )
    rows = list(
        (
            await session.execute(
                query.order_by(LegalHold.requested_at.desc(), LegalHold.id.desc()).limit(limit + 1)
            )
        ).scalars()
    )
    shown = rows[:limit]
    audit.append_at_commit(
        session,
        [
            *(actor.record("legal_hold.read", **_fields(hold)) for hold in shown),
            actor.record(
                "legal_hold.list", resource_type="legal_hold", reason=f"{len(shown)} hold(s)"
            ),
        ],
    )
    last = shown[-1] if shown and len(rows) > limit else None
    return Page[LegalHoldRead](
        items=[to_read(h) for h in shown],
        next_cursor=encode_cursor([last.requested_at.isoformat(), str(last.id)]) if last else None,
    )


async def request_lift(
    session: AsyncSession, actor: Actor, *, hold_id: uuid.UUID, data: LegalHoldLift
) -> LegalHoldRead:
    """A coordinator who may ask for a hold on its target asks for its lifting; the hold
    protects until an auditor approves."""
    hold, _ = await _load(session, actor, hold_id, "legal_hold.lift")
    _, _, policy_id = await _require_target(
        session,
        actor,
        case_id=hold.case_id,
        individual_id=None if hold.case_id else hold.individual_id,
        audit_action="legal_hold.lift",
    )
    if hold.status != HoldStatus.ACTIVE.value:
        raise Conflict(f"Only an active hold can be lifted; this one is {hold.status}.")
    hold.status = HoldStatus.LIFT_REQUESTED.value
    hold.lift_reason = data.reason
    hold.lift_requested_by = actor.id
    hold.lift_requested_at = _now()
    return await _recorded(session, actor, hold, "legal_hold.lift", policy_id)


async def decide(
    session: AsyncSession,
    actor: Actor,
    *,
    hold_id: uuid.UUID,
    data: LegalHoldDecision,
    approve: bool,
) -> LegalHoldRead:
    """An auditor approves or rejects the pending request: a hold (-> active / rejected)
    or its lifting (-> lifted / active again). 409 when nothing is pending."""
    audit_action = "legal_hold.approve" if approve else "legal_hold.reject"
    hold, _ = await _load(session, actor, hold_id, audit_action)
    decision = enforce.require(
        session,
        actor,
        Action.HOLD_DECIDE,
        facts(hold),
        audit_action=audit_action,
        hidden=False,
        detail="A hold is decided by an auditor who did not ask for it.",
        **_fields(hold),
    )
    now = _now()
    if hold.status == HoldStatus.REQUESTED.value:
        hold.status = (HoldStatus.ACTIVE if approve else HoldStatus.REJECTED).value
        hold.decided_by, hold.decided_at, hold.decision_note = actor.id, now, data.note
    elif hold.status == HoldStatus.LIFT_REQUESTED.value:
        if approve:
            hold.status = HoldStatus.LIFTED.value
            hold.lifted_by, hold.lifted_at = actor.id, now
        else:
            hold.status = HoldStatus.ACTIVE.value
            hold.lift_reason = hold.lift_requested_by = hold.lift_requested_at = None
        hold.decision_note = data.note
    else:
        raise Conflict(f"Nothing to decide: the hold is {hold.status}.")
    return await _recorded(
        session, actor, hold, audit_action, decision.policy_id, reason=hold.status
    )

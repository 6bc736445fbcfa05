"""Emergency access (break-the-glass): a participating agency's user invokes a legal basis
from policies/legal_bases.yaml, with a written reason, for a limited time. The grant and
every read under it are audited with the legal basis and flagged for review.

A grant belongs to the agency its user belonged to when it was issued: a user who moves to
another agency reads nothing more under it (app.policy.filters.grant_live). It ends when it
expires, when the grantee or the lead coordinator ends it, or when the case is closed."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.agencies import service as agency_service
from app.audit import writer as audit
from app.audit.records import Record
from app.auth.actor import Actor
from app.cases import service as case_service
from app.cases.models import Case
from app.emergency.models import EmergencyGrant, EmergencyGrantCategory
from app.emergency.schemas import EmergencyAccessCreate, EmergencyAccessRead, GrantStatus
from app.errors import Conflict, ValidationFailed
from app.events import service as events
from app.events.models import EventType, ResourceType
from app.pagination import Page
from app.policy import enforce, filters, get_engine
from app.policy.engine import DEFAULT_DENY, Action, PolicyDecision
from app.policy.entities import CaseFacts, GrantFacts


def _status(grant: EmergencyGrant, now: datetime) -> GrantStatus:
    if grant.ended_at is not None and grant.ended_at <= now:
        return GrantStatus.ENDED
    if grant.expires_at <= now:
        return GrantStatus.EXPIRED
    return GrantStatus.ACTIVE


async def _to_read(session: AsyncSession, grant: EmergencyGrant) -> EmergencyAccessRead:
    categories = await session.execute(
        select(EmergencyGrantCategory.category)
        .where(EmergencyGrantCategory.grant_id == grant.id)
        .order_by(EmergencyGrantCategory.category)
    )
    return EmergencyAccessRead(
        id=grant.id,
        case_id=grant.case_id,
        legal_basis=grant.legal_basis,
        categories=list(categories.scalars()),
        expires_at=grant.expires_at,
        user_id=grant.user_id,
        agency_id=grant.agency_id,
        reason=grant.reason,
        created_at=grant.created_at,
        ended_at=grant.ended_at if grant.ended_at else None,
        status=_status(grant, datetime.now(UTC)),
    )


def _facts(grant: EmergencyGrant, case: CaseFacts) -> GrantFacts:
    return GrantFacts(id=grant.id, agency_id=grant.agency_id, grantee_id=grant.user_id, case=case)


def _record(
    actor: Actor,
    action: str,
    grant: EmergencyGrant,
    decision: PolicyDecision,
    individual_id: uuid.UUID,
    **extra: object,
) -> Record:
    return actor.record(
        action,
        resource_type="emergency_grant",
        resource_id=str(grant.id),
        case_id=grant.case_id,
        individual_id=individual_id,
        basis="case_participant",
        legal_basis=grant.legal_basis,
        policy_id=decision.policy_id,
        **extra,  # type: ignore[arg-type]
    )


async def request_access(
    session: AsyncSession, actor: Actor, *, case_id: uuid.UUID, data: EmergencyAccessCreate
) -> EmergencyAccessRead:
    """404 to whoever may not see the case; 409 on a closed case; 422 for an unknown
    basis, and where the decision point refuses the request (``emergency.request``: a
    basis not open to the caller's agency kind, or categories it does not open); 403 where
    a forbid rules it out whatever the basis (an integration client). Default
    categories: all the basis opens."""
    case, case_facts, _ = await case_service.load_case(
        session, actor, case_id, action=Action.CASE_READ, audit_action="emergency.grant"
    )
    case_service.require_open(case)
    basis = get_engine().reference.legal_bases.get(data.legal_basis)
    if basis is None:
        raise ValidationFailed.for_field("body.legal_basis", "Unknown legal basis.", "unknown")
    categories = set(data.categories or basis.categories)
    request = {
        "agency_kind": await agency_service.kind_of(session, actor.agency_id),
        "used_by": sorted(k.value for k in basis.used_by),
        "opens": sorted(basis.categories),
        "categories": sorted(categories),
    }
    decision = enforce.decide(
        actor, Action.EMERGENCY_REQUEST, case_facts, context={"request": request}
    )
    if not decision.allowed and decision.policy_id != DEFAULT_DENY:
        # a rule forbids this caller any break-the-glass (an integration client): a 403
        raise enforce.deny(
            session,
            actor,
            audit_action="emergency.grant",
            policy_id=decision.policy_id,
            hidden=False,
            resource_type="emergency_grant",
            case_id=case.id,
            individual_id=case.individual_id,
        )
    if not decision.allowed:
        raise ValidationFailed.for_field(
            "body.legal_basis",
            "This legal basis is not open to your agency, or does not open these categories.",
            "not_allowed",
        )
    now = datetime.now(UTC)
    grant = EmergencyGrant(
        id=uuid.uuid4(),
        case_id=case.id,
        user_id=actor.id,
        agency_id=actor.agency_id,
        legal_basis=basis.code,
        reason=data.reason,
        created_at=now,
        expires_at=now + timedelta(hours=basis.max_duration_hours),
    )
    session.add(grant)
    await session.flush()
    session.add_all(EmergencyGrantCategory(grant_id=grant.id, category=c) for c in categories)
    await session.flush()
    await events.emit(
        session,
        EventType.EMERGENCY_GRANTED,
        resource_type=ResourceType.EMERGENCY_GRANT,
        resource_id=grant.id,
        case_id=case.id,
        individual_id=case.individual_id,
    )
    await audit.append(
        session,
        actor.record(
            "emergency.grant",
            resource_type="emergency_grant",
            resource_id=str(grant.id),
            case_id=case.id,
            individual_id=case.individual_id,
            basis="emergency_access",
            legal_basis=basis.code,
            policy_id=decision.policy_id,
            reason=data.reason,
            flags=["emergency_access"],
        ),
    )
    return await _to_read(session, grant)


async def list_grants(
    session: AsyncSession, actor: Actor, *, case_id: uuid.UUID
) -> Page[EmergencyAccessRead]:
    """The case's grants the caller may see (its own agency's; all of them for the lead
    coordinator), newest first: filtered in SQL, each confirmed by the decision point."""
    case, case_facts, list_decision = await case_service.load_case(
        session, actor, case_id, action=Action.CASE_READ, audit_action="emergency.list"
    )
    rows = await session.execute(
        select(EmergencyGrant)
        .where(EmergencyGrant.case_id == case.id, filters.grants_visible_to(actor))
        .order_by(EmergencyGrant.created_at.desc(), EmergencyGrant.id.desc())
    )
    grants = list(rows.scalars())
    decisions = enforce.decide_each(
        actor, Action.EMERGENCY_READ, [_facts(g, case_facts) for g in grants]
    )
    if not all(d.allowed for d in decisions):  # the SQL filter and the policy disagree
        raise RuntimeError("emergency grant filter and policy disagree")
    await audit.append(
        session,
        actor.record(
            "emergency.list",
            resource_type="emergency_grant",
            case_id=case.id,
            individual_id=case.individual_id,
            basis="case_participant",
            policy_id=list_decision.policy_id,
            reason=f"{len(grants)} item(s)",
        ),
    )
    return Page[EmergencyAccessRead](
        items=[await _to_read(session, g) for g in grants], next_cursor=None
    )


async def end_grant(session: AsyncSession, actor: Actor, *, grant_id: uuid.UUID) -> None:
    """The grantee or the lead coordinator ends a grant early: 404 to whoever may not see
    it (as for none), 403 to whoever sees it but may not end it, 409 if it has ended."""
    grant = await session.get(EmergencyGrant, grant_id, with_for_update=True)
    fields: dict[str, Any] = {
        "resource_type": "emergency_grant",
        "resource_id": str(grant_id),
    }
    if grant is None:
        raise enforce.not_found(session, actor, audit_action="emergency.end", **fields)
    case = await session.get(Case, grant.case_id)
    assert case is not None  # foreign key
    case_facts = await case_service.case_facts(session, case)
    fields |= {"case_id": grant.case_id, "individual_id": case_facts.individual.id}
    facts = _facts(grant, case_facts)
    enforce.require(
        session,
        actor,
        Action.EMERGENCY_READ,
        facts,
        audit_action="emergency.end",
        hidden=True,
        **fields,
    )
    decision = enforce.require(
        session,
        actor,
        Action.EMERGENCY_END,
        facts,
        audit_action="emergency.end",
        hidden=False,
        **fields,
    )
    now = datetime.now(UTC)
    status = _status(grant, now)
    if status is not GrantStatus.ACTIVE:
        raise Conflict(f"The grant has {status.value} already.")
    grant.ended_at = now
    grant.ended_by = actor.id
    await session.flush()
    await events.emit(
        session,
        EventType.EMERGENCY_ENDED,
        resource_type=ResourceType.EMERGENCY_GRANT,
        resource_id=grant.id,
        case_id=grant.case_id,
        individual_id=case_facts.individual.id,
    )
    await audit.append(
        session,
        _record(
            actor, "emergency.end", grant, decision, case_facts.individual.id, reason="ended early"
        ),
    )

"""Cases and their participants. Every read and change is decided by app/policy and audited."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.agencies import service as agency_service
from app.audit import writer as audit
from app.audit.records import Record
from app.auth.actor import Actor
from app.cases.models import (
    TRANSITIONS,
    Case,
    CaseAssignment,
    CaseParticipant,
    CaseStatus,
    ClosureReason,
    Programme,
)
from app.cases.schemas import CaseCreate, CaseRead, CaseUpdate, ParticipantCreate, ParticipantRead
from app.errors import Conflict, ValidationFailed
from app.events import service as events
from app.events.models import EventType, ResourceType
from app.external_refs import service as external_refs
from app.individuals import service as individual_service
from app.individuals.models import Individual
from app.pagination import Page, cursor_datetime, cursor_uuid, decode_cursor, encode_cursor
from app.policy import enforce, filters
from app.policy.engine import Action, PolicyDecision
from app.policy.entities import CaseFacts
from app.users.models import User


def _now() -> datetime:
    return datetime.now(UTC)


async def _participants(session: AsyncSession, case_id: uuid.UUID) -> list[ParticipantRead]:
    rows = (
        await session.execute(
            select(CaseParticipant)
            .where(CaseParticipant.case_id == case_id)
            .order_by(CaseParticipant.added_at, CaseParticipant.agency_id)
        )
    ).scalars()
    assignments = (
        await session.execute(select(CaseAssignment).where(CaseAssignment.case_id == case_id))
    ).scalars()
    users: dict[uuid.UUID, list[uuid.UUID]] = {}
    for assignment in assignments:
        users.setdefault(assignment.agency_id, []).append(assignment.user_id)
    return [
        ParticipantRead(
            agency_id=p.agency_id,
            user_ids=sorted(users.get(p.agency_id, []), key=str),
            added_at=p.added_at,
        )
        for p in rows
    ]


async def case_facts(session: AsyncSession, case: Case) -> CaseFacts:
    return await case_facts_of(session, case.individual_id, case.id)


async def case_facts_of(
    session: AsyncSession, individual_id: uuid.UUID, case_id: uuid.UUID
) -> CaseFacts:
    """The facts of a case of ``individual_id`` (an entry or action row carries both ids),
    without loading the case row."""
    known = await individual_service.facts_of(session, individual_id)
    assert known is not None  # foreign key
    return known.cases[case_id]


async def load_case(
    session: AsyncSession, actor: Actor, case_id: uuid.UUID, *, action: Action, audit_action: str
) -> tuple[Case, CaseFacts, PolicyDecision]:
    """The case if the caller may see it *and* do ``action``: 404 when it may not see it
    (as for a case that does not exist), 403 when it may see it but not do this."""
    case = await session.get(Case, case_id)
    if case is None:
        await individual_service.decoy_decision(session, actor, Action.CASE_READ, grounds=False)
        raise enforce.not_found(
            session,
            actor,
            audit_action=audit_action,
            resource_type="case",
            resource_id=str(case_id),
        )
    facts = await case_facts(session, case)
    fields: dict[str, Any] = {
        "resource_type": "case",
        "resource_id": str(case.id),
        "case_id": case.id,
        "individual_id": case.individual_id,
    }
    read = enforce.require(
        session, actor, Action.CASE_READ, facts, audit_action=audit_action, hidden=True, **fields
    )
    if action is Action.CASE_READ:
        return case, facts, read
    decision = enforce.require(
        session, actor, action, facts, audit_action=audit_action, hidden=False, **fields
    )
    return case, facts, decision


def require_open(case: Case) -> None:
    """A closed case takes no new work (entries, actions, consents, participants, grants):
    409 until its lead coordinator reopens it."""
    if case.status == CaseStatus.CLOSED:
        raise Conflict("The case is closed: reopen it first.")


async def to_read(
    session: AsyncSession,
    actor: Actor,
    case: Case,
    facts: CaseFacts,
    identity: PolicyDecision | None = None,
) -> CaseRead:
    individual = await session.get(Individual, case.individual_id)
    assert individual is not None
    if identity is None:
        identity = await individual_service.identity_decision(session, actor, facts.individual)
    return CaseRead(
        id=case.id,
        individual=await individual_service.to_read(
            session, actor, individual, facts.individual, identity
        ),
        programme=Programme(case.programme),
        lead_agency_id=case.lead_agency_id,
        status=CaseStatus(case.status),
        closure_reason=ClosureReason(case.closure_reason) if case.closure_reason else None,
        participants=await _participants(session, case.id),
        created_at=case.created_at,
        updated_at=case.updated_at,
        closed_at=case.closed_at,
        external_refs=await external_refs.shown(session, case_id=case.id)
        if identity.allowed
        else [],
    )


def _shown_record(
    actor: Actor,
    action: str,
    case: Case,
    decision: PolicyDecision,
    identity: PolicyDecision,
    **extra: Any,
) -> Record:
    """A case read: the case was shown to a participant; the individual's name and number
    on the basis the identity decision names (own agency, consent id, legal basis)."""
    if not identity.allowed:
        return _record(actor, action, case, decision, **extra)
    return _record(
        actor, action, case, identity, **individual_service.identity_basis(identity), **extra
    )


def _record(
    actor: Actor, action: str, case: Case, decision: PolicyDecision, **extra: Any
) -> Record:
    """A record about the case; ``extra`` may name another basis than participation."""
    fields: dict[str, Any] = {"basis": "case_participant"} | extra
    return actor.record(
        action,
        resource_type="case",
        resource_id=str(case.id),
        case_id=case.id,
        individual_id=case.individual_id,
        policy_id=decision.policy_id,
        **fields,
    )


async def create_case(session: AsyncSession, actor: Actor, *, data: CaseCreate) -> CaseRead:
    """Lead agency = the caller's; the caller's agency takes part and the caller is assigned."""
    individual = await session.get(Individual, data.individual_id)
    fields: dict[str, Any] = {"resource_type": "case", "individual_id": data.individual_id}
    if individual is None:
        raise enforce.not_found(session, actor, audit_action="case.create", **fields)
    facts = await individual_service.facts(session, individual)
    enforce.require(
        session,
        actor,
        Action.INDIVIDUAL_READ,
        facts,
        audit_action="case.create",
        hidden=True,
        **fields,
    )
    decision = enforce.require(
        session,
        actor,
        Action.CASE_CREATE,
        facts,
        audit_action="case.create",
        hidden=False,
        **fields,
    )
    now = _now()
    case = Case(
        id=uuid.uuid4(),
        individual_id=individual.id,
        programme=data.programme.value,
        lead_agency_id=actor.agency_id,
        status=CaseStatus.OPEN.value,
        closure_reason=None,
        created_by=actor.id,
        created_at=now,
        updated_at=now,
        closed_at=None,
    )
    session.add(case)
    await session.flush()
    session.add(
        CaseParticipant(case_id=case.id, agency_id=actor.agency_id, added_at=now, added_by=actor.id)
    )
    session.add(CaseAssignment(case_id=case.id, user_id=actor.id, agency_id=actor.agency_id))
    await session.flush()
    await external_refs.register(session, actor, data.external_refs, case_id=case.id)
    await _emit(session, EventType.CASE_OPENED, case)
    await audit.append(session, _record(actor, "case.create", case, decision))
    return await to_read(session, actor, case, await case_facts(session, case))


async def _emit(
    session: AsyncSession, type: EventType, case: Case, agency_id: uuid.UUID | None = None
) -> None:
    """A case's event; a participant's names the agency that joined or left."""
    await events.emit(
        session,
        type,
        resource_type=ResourceType.CASE if agency_id is None else ResourceType.PARTICIPANT,
        resource_id=case.id if agency_id is None else agency_id,
        case_id=case.id,
        individual_id=case.individual_id,
    )


async def get_case(session: AsyncSession, actor: Actor, *, case_id: uuid.UUID) -> CaseRead:
    case, facts, decision = await load_case(
        session, actor, case_id, action=Action.CASE_READ, audit_action="case.read"
    )
    identity = await individual_service.identity_decision(session, actor, facts.individual)
    result = await to_read(session, actor, case, facts, identity)
    await audit.append(session, _shown_record(actor, "case.read", case, decision, identity))
    return result


async def update_case(
    session: AsyncSession, actor: Actor, *, case_id: uuid.UUID, data: CaseUpdate
) -> CaseRead:
    case, _, decision = await load_case(
        session, actor, case_id, action=Action.CASE_UPDATE, audit_action="case.update"
    )
    current = CaseStatus(case.status)
    target = data.status or current
    if target is CaseStatus.CLOSED and data.status is not None and data.closure_reason is None:
        raise ValidationFailed.for_field(
            "body.closure_reason", "Closing a case needs a closure_reason.", "missing"
        )
    if data.status is not CaseStatus.CLOSED and data.closure_reason is not None:
        raise ValidationFailed.for_field(
            "body.closure_reason", "closure_reason is only for closing.", "unexpected"
        )
    if target is not current and target not in TRANSITIONS[current]:
        raise Conflict(f"A case cannot go from {current.value} to {target.value}.")
    changes = []
    if data.external_refs is not None:
        if target is CaseStatus.CLOSED:
            require_open(case)  # a closed case takes no new references
        await external_refs.replace_own(session, actor, data.external_refs, case_id=case.id)
        changes.append("external references")
    now = _now()
    if data.status is not None:
        case.status = target.value
        if target is CaseStatus.CLOSED:
            case.closure_reason = data.closure_reason.value if data.closure_reason else None
            case.closed_at = now
        elif current is CaseStatus.CLOSED:  # reopened: sharing through the case resumes
            case.closure_reason = None
            case.closed_at = None
        changes.append(f"status {current.value} -> {target.value}")
    case.updated_at = now
    await session.flush()
    closed = target is CaseStatus.CLOSED and current is not CaseStatus.CLOSED
    await _emit(session, EventType.CASE_CLOSED if closed else EventType.CASE_UPDATED, case)
    await audit.append(
        session, _record(actor, "case.update", case, decision, reason="; ".join(changes))
    )
    return await to_read(session, actor, case, await case_facts(session, case))


async def list_cases(
    session: AsyncSession,
    actor: Actor,
    *,
    limit: int,
    cursor: str | None,
    status: CaseStatus | None,
    programme: Programme | None,
    personal_number: str | None,
    external_ref: str | None = None,
) -> Page[CaseRead]:
    """Cases the caller's agency takes part in, filtered in SQL by the same rule as
    ``case.read``. ``personal_number`` matches only where the caller may see the
    individual's identity, so a search never confirms that a person exists."""
    key = decode_cursor(cursor, 2)
    query = select(Case).where(filters.cases_visible_to(actor))
    if status is not None:
        query = query.where(Case.status == status.value)
    if programme is not None:
        query = query.where(Case.programme == programme.value)
    if personal_number is not None or external_ref is not None:
        # found only where the caller may see who it is about
        query = query.join(Individual, Individual.id == Case.individual_id).where(
            filters.individuals_with_identity_visible_to(actor, datetime.now(UTC))
        )
    if personal_number is not None:
        number = individual_service.parse_number(personal_number, "query.personal_number")
        query = query.where(Individual.personal_number == number.value)
    if external_ref is not None:
        query = query.where(external_refs.refers_to_case(*external_refs.parse_query(external_ref)))
    if key is not None:
        created = cursor_datetime(key[0])
        query = query.where(
            (Case.created_at < created)
            | ((Case.created_at == created) & (Case.id < cursor_uuid(key[1])))
        )
    rows = list(
        (
            await session.execute(
                query.order_by(Case.created_at.desc(), Case.id.desc()).limit(limit + 1)
            )
        ).scalars()
    )
    more = len(rows) > limit
    rows = rows[:limit]
    items = []
    for case in rows:
        facts = await case_facts(session, case)
        identity = await individual_service.identity_decision(session, actor, facts.individual)
        items.append(await to_read(session, actor, case, facts, identity))
        await audit.append(
            session,
            _shown_record(
                actor,
                "case.read",
                case,
                enforce.decide(actor, Action.CASE_READ, facts),
                identity,
                reason="list",
            ),
        )
    await audit.append(
        session, actor.record("case.list", resource_type="case", reason=f"{len(items)} item(s)")
    )
    next_cursor = (
        encode_cursor([rows[-1].created_at.isoformat(), str(rows[-1].id)]) if more else None
    )
    return Page[CaseRead](items=items, next_cursor=next_cursor)


async def add_participant(
    session: AsyncSession, actor: Actor, *, case_id: uuid.UUID, data: ParticipantCreate
) -> ParticipantRead:
    case, _, decision = await load_case(
        session, actor, case_id, action=Action.PARTICIPANT_MANAGE, audit_action="participant.add"
    )
    require_open(case)
    await agency_service.ensure_exists(session, agency_id=data.agency_id, field="body.agency_id")
    if await session.get(CaseParticipant, (case.id, data.agency_id)) is not None:
        raise Conflict("That agency already takes part in the case.")
    users = list((await session.execute(select(User).where(User.id.in_(data.user_ids)))).scalars())
    if len(users) != len(set(data.user_ids)) or any(u.agency_id != data.agency_id for u in users):
        raise ValidationFailed.for_field(
            "body.user_ids", "Every assigned user must belong to the added agency.", "wrong_agency"
        )
    now = _now()
    session.add(
        CaseParticipant(case_id=case.id, agency_id=data.agency_id, added_at=now, added_by=actor.id)
    )
    for user in users:
        session.add(CaseAssignment(case_id=case.id, user_id=user.id, agency_id=data.agency_id))
    case.updated_at = now
    await session.flush()
    await _emit(session, EventType.PARTICIPANT_ADDED, case, data.agency_id)
    await audit.append(
        session,
        _record(actor, "participant.add", case, decision, reason=f"agency {data.agency_id}"),
    )
    return ParticipantRead(
        agency_id=data.agency_id, user_ids=sorted((u.id for u in users), key=str), added_at=now
    )


async def list_participants(
    session: AsyncSession, actor: Actor, *, case_id: uuid.UUID
) -> Page[ParticipantRead]:
    case, _, decision = await load_case(
        session, actor, case_id, action=Action.CASE_READ, audit_action="participant.list"
    )
    await audit.append(session, _record(actor, "participant.list", case, decision))
    return Page[ParticipantRead](items=await _participants(session, case.id), next_cursor=None)


async def remove_participant(
    session: AsyncSession, actor: Actor, *, case_id: uuid.UUID, agency_id: uuid.UUID
) -> None:
    """The removed agency's access ends at its next request (decisions read participants
    from the database every time). The lead agency cannot be removed."""
    case, _, decision = await load_case(
        session, actor, case_id, action=Action.PARTICIPANT_MANAGE, audit_action="participant.remove"
    )
    if agency_id == case.lead_agency_id:
        raise Conflict("The lead agency cannot leave its own case.")
    removed = await session.execute(
        delete(CaseParticipant).where(
            CaseParticipant.case_id == case.id, CaseParticipant.agency_id == agency_id
        )
    )
    if removed.rowcount == 0:  # type: ignore[attr-defined]
        raise Conflict("That agency does not take part in the case.")
    await session.execute(
        delete(CaseAssignment).where(
            CaseAssignment.case_id == case.id, CaseAssignment.agency_id == agency_id
        )
    )
    case.updated_at = _now()
    await session.flush()
    await _emit(session, EventType.PARTICIPANT_REMOVED, case, agency_id)
    await audit.append(
        session,
        _record(actor, "participant.remove", case, decision, reason=f"agency {agency_id}"),
    )

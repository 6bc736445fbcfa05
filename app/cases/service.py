"""Cases and their participants. Every read and change is decided by app/policy and audited."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.agencies import service as agency_service
from app.audit import writer as audit
from app.audit.records import Record
from app.auth.actor import Actor
from app.cases.models import (
    RAISED_THREAT,
    REVIEW_INTERVAL_DAYS,
    TRANSITIONS,
    Case,
    CaseAssignment,
    CaseParticipant,
    CaseStatus,
    ClosureReason,
    CustodyStatus,
    ExitStatus,
    Programme,
    ThreatLevel,
)
from app.cases.schemas import (
    CaseCreate,
    CaseRead,
    CaseUpdate,
    CustodyRead,
    ExitRead,
    ParticipantCreate,
    ParticipantRead,
)
from app.db import on_postgresql
from app.errors import Conflict, ValidationFailed
from app.events import service as events
from app.events.models import EventType, ResourceType
from app.external_refs import service as external_refs
from app.individuals import service as individual_service
from app.individuals.models import Individual
from app.pagination import Page, cursor_datetime, cursor_uuid, decode_cursor, encode_cursor
from app.policy import enforce, filters, get_engine, reads
from app.policy.engine import Action, Basis, PolicyDecision
from app.policy.entities import CaseFacts, EntryFacts, Grounds
from app.policy.filters import PLAN, THREAT_ASSESSMENT
from app.policy.grounds import grounds_for
from app.policy.reads import SharedKind
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


async def case_facts(session: AsyncSession, case: Case, reader: Actor | None = None) -> CaseFacts:
    return await case_facts_of(session, case.individual_id, case.id, reader)


async def case_facts_of(
    session: AsyncSession,
    individual_id: uuid.UUID,
    case_id: uuid.UUID,
    reader: Actor | None = None,
) -> CaseFacts:
    """The facts of a case of ``individual_id`` (an entry or action row carries both ids),
    without loading the case row (``reader``: app.individuals.service.facts_of)."""
    known = await individual_service.facts_of(session, individual_id, reader)
    assert known is not None  # foreign key
    return known.cases[case_id]


async def recorded_facts(
    session: AsyncSession,
    row: Any,
    case: CaseFacts | None,
    *,
    source_agency_id: uuid.UUID,
    category: str,
) -> EntryFacts:
    """The facts of information one agency recorded on a case in one category (an entry,
    a goal, a meeting, the threat assessment): decided as ``entry.read``. ``row`` carries
    ``id``, ``case_id`` and ``individual_id``."""
    if case is None:
        case = await case_facts_of(session, row.individual_id, row.case_id)
    return EntryFacts(
        id=row.id,
        source_agency_id=source_agency_id,
        category=category,
        case=case,
        source_agency_kind=await agency_service.kind_of(session, source_agency_id),
    )


def plan_record_kind(model: type[Any], resource_type: str) -> SharedKind[Any, EntryFacts]:
    """Goals and meetings: information of category ``plan`` recorded on a case by the
    agency in the row's ``agency_id``, read like an entry of that agency (``entry.read``)."""

    async def facts(session: AsyncSession, row: Any, case: CaseFacts | None) -> EntryFacts:
        return await recorded_facts(
            session, row, case, source_agency_id=row.agency_id, category=PLAN
        )

    def record(actor: Actor, action: str, row: Any, decision: PolicyDecision) -> Record:
        return actor.record(
            action,
            policy_id=decision.policy_id,
            **kind.fields(row),
            **individual_service.read_basis(decision, "own_agency"),
        )

    kind: SharedKind[Any, EntryFacts] = SharedKind(
        model=model,
        resource_type=resource_type,
        read=Action.ENTRY_READ,
        facts=facts,
        visible=filters.plan_records_visible_to(model),
        record=record,
    )
    return kind


async def case_page(
    session: AsyncSession,
    actor: Actor,
    kind: SharedKind[Any, Any],
    *,
    case_id: uuid.UUID,
    limit: int,
    cursor: str | None,
    newest_first: bool,
) -> tuple[list[Any], str | None, CaseFacts, list[Any] | None]:
    """A page of the case's rows of ``kind`` the caller may read (app.policy.reads), once it
    may see the case (404 otherwise); audited as ``<kind>.list`` and a read per row. Last,
    ``kind.shown`` of each row where the page's statement asked it (PostgreSQL), else
    ``None``."""
    # One moment for the case's grounds (asked with its facts), the page's filter and its
    # decisions, so that the filter and the decision point answer alike.
    now = datetime.now(UTC)
    case, facts, decision, grounds = await _load_case(
        session,
        actor,
        case_id,
        action=Action.CASE_READ,
        audit_action=f"{kind.resource_type}.list",
        read_only=True,
        grounds_at=now,
    )
    assert grounds is not None  # asked at ``now``
    rows, next_cursor, shown = await reads.read_page(
        session,
        actor,
        kind,
        case=case,
        case_facts=facts,
        grounds=grounds,
        now=now,
        list_policy_id=decision.policy_id,
        limit=limit,
        cursor=cursor,
        newest_first=newest_first,
    )
    return rows, next_cursor, facts, shown


async def load_case(
    session: AsyncSession,
    actor: Actor,
    case_id: uuid.UUID,
    *,
    action: Action,
    audit_action: str,
    read_only: bool = False,
) -> tuple[Case, CaseFacts, PolicyDecision]:
    """The case if the caller may see it *and* do ``action``: 404 when it may not see it
    (as for a case that does not exist), 403 when it may see it but not do this.
    ``read_only``: the caller only reads the case (a list of its items, a new item on
    it), which then is a detached copy, not loaded by the ORM (docs/performance.md)."""
    case, facts, decision, _ = await _load_case(
        session,
        actor,
        case_id,
        action=action,
        audit_action=audit_action,
        read_only=read_only,
        grounds_at=None,
    )
    return case, facts, decision


# The case's row (as reads.row_for_reading asks it) and, in the same statement, its
# individual's facts and its grounds: what a page of the case's rows is decided on.
_CASE_COLUMNS, _CASE_KEYS = reads.columns_of(Case)
_CASE_FACTS_AND_GROUNDS = individual_service.beside_facts_and_grounds(
    select(*_CASE_COLUMNS).where(Case.id == bindparam("case_id")),
    individual_id=select(Case.individual_id)
    .where(Case.id == bindparam("case_id"))
    .scalar_subquery(),
    case_id=bindparam("case_id"),
)


async def _load_case(
    session: AsyncSession,
    actor: Actor,
    case_id: uuid.UUID,
    *,
    action: Action,
    audit_action: str,
    read_only: bool,
    grounds_at: datetime | None,
) -> tuple[Case, CaseFacts, PolicyDecision, Grounds | None]:
    """:func:`load_case`, and with ``grounds_at`` the case's grounds at that moment, asked
    with its facts in one statement (a page of the case's rows is decided on them); read
    only, on PostgreSQL, the case's row is asked in that statement too."""
    asked = None
    case: Case | None
    if read_only and grounds_at is not None and on_postgresql(session):
        found, asked = await individual_service.read_beside(
            session,
            actor,
            _CASE_FACTS_AND_GROUNDS,
            {"case_id": case_id},
            keys=_CASE_KEYS,
            now=grounds_at,
        )
        case = reads.copy_of(Case, _CASE_KEYS, found[0]) if found else None
    elif read_only:
        case = await reads.row_for_reading(session, Case, case_id)
    else:
        case = await session.get(Case, case_id)
    if case is None:
        await individual_service.decoy_decision(
            session,
            actor,
            Action.CASE_READ,
            grounds=grounds_at is not None,
            asked=asked is not None,
        )
        raise enforce.not_found(
            session,
            actor,
            audit_action=audit_action,
            resource_type="case",
            resource_id=str(case_id),
        )
    grounds = None
    if grounds_at is None:
        facts = await case_facts(session, case, actor)
    else:
        known, grounds = asked or await individual_service.facts_and_grounds(
            session, actor, individual_id=case.individual_id, case_id=case.id, now=grounds_at
        )
        assert known is not None  # foreign key
        facts = known.cases[case.id]
    fields: dict[str, Any] = {
        "resource_type": "case",
        "resource_id": str(case.id),
        "case_id": case.id,
        "individual_id": case.individual_id,
    }
    if action is Action.CASE_READ:
        read = enforce.require(
            session, actor, action, facts, audit_action=audit_action, hidden=True, **fields
        )
        return case, facts, read, grounds
    _, decision = enforce.require_to_see_and(
        session, actor, Action.CASE_READ, action, facts, audit_action=audit_action, **fields
    )
    return case, facts, decision, grounds


def require_open(case: Case | CaseFacts) -> None:
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
    threat = await threat_decision(session, actor, case, facts)
    if threat.allowed and threat.basis is not Basis.POLICY:
        audit.append_at_commit(session, [_threat_record(actor, case, threat)])
    shown = threat.allowed
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
        custody=CustodyRead(status=CustodyStatus(case.custody_status), release_on=case.release_on),
        exit=ExitRead(status=ExitStatus(case.exit_status), requested_on=case.exit_requested_on),
        threat_level=ThreatLevel(case.threat_level) if shown else None,
        threat_reviewed_on=case.threat_reviewed_on if shown else None,
        threat_review_due_on=case.threat_review_due_on if shown else None,
        threat_flagged=case.threat_flagged_at is not None if shown else None,
    )


def threat_source(case: Case) -> uuid.UUID:
    """The agency whose information the threat assessment is: the one that recorded it,
    or, before any was recorded, the lead agency (so that "none yet" is shown exactly where
    an assessment would be, and a hidden one cannot be told from none)."""
    return case.threat_agency_id or case.lead_agency_id


async def threat_decision(
    session: AsyncSession, actor: Actor, case: Case, facts: CaseFacts
) -> PolicyDecision:
    """``entry.read`` of the threat assessment: category ``threat_assessment``."""
    threat = await recorded_facts(
        session, case, facts, source_agency_id=threat_source(case), category=THREAT_ASSESSMENT
    )
    grounds = await grounds_for(
        session, actor, individual_id=case.individual_id, case_id=case.id, now=_now()
    )
    return enforce.decide(actor, Action.ENTRY_READ, threat, grounds)


def _threat_record(actor: Actor, case: Case, decision: PolicyDecision) -> Record:
    """The threat assessment shown to another agency: on the consent or legal basis named,
    flagged as a sensitive category."""
    basis = individual_service.read_basis(decision, "own_agency")
    basis["flags"].append("sensitive_category")
    return actor.record(
        "case.read",
        resource_type="threat_assessment",
        resource_id=str(case.id),
        case_id=case.id,
        individual_id=case.individual_id,
        policy_id=decision.policy_id,
        **basis,
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
        return case_record(actor, action, case, decision, **extra)
    return case_record(
        actor, action, case, identity, **individual_service.identity_basis(identity), **extra
    )


def case_record(
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
    await emit_case_event(session, EventType.CASE_OPENED, case)
    await audit.append(session, case_record(actor, "case.create", case, decision))
    return await to_read(session, actor, case, await case_facts(session, case))


async def emit_case_event(
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
    """The lead coordinators change status, references, custody and exit; a coordinator of
    a participating agency that records threat assessments records the threat. A closed
    case changes nothing but its status (reopening)."""
    case, facts, decision = await load_case(
        session, actor, case_id, action=Action.CASE_READ, audit_action="case.update"
    )
    fields: dict[str, Any] = {
        "resource_type": "case",
        "resource_id": str(case.id),
        "case_id": case.id,
        "individual_id": case.individual_id,
    }
    for needed, given in (
        (Action.CASE_UPDATE, data.case_fields_given),
        (Action.THREAT_RECORD, data.threat_given),
    ):
        if given:
            decision = enforce.require(
                session, actor, needed, facts, audit_action="case.update", hidden=False, **fields
            )
    current, target = _status_move(case, data)
    changes = []
    flags: list[str] = []
    content = data.external_refs is not None or data.custody or data.exit or data.threat_given
    if content and target is CaseStatus.CLOSED:
        require_open(case)  # a closed case takes no new information
    if data.external_refs is not None:
        await external_refs.replace_own(session, actor, data.external_refs, case_id=case.id)
        changes.append("external references")
    changes += _set_details(case, data)
    now = _now()
    raised = False
    if data.threat_given:
        raised = await _record_threat(session, actor, case, data, now)
        changes.append("threat assessment")
        if raised:
            flags.append("threat_raised")
    if data.status is not None:
        _move(case, data, current, target, now)
        changes.append(f"status {current.value} -> {target.value}")
    case.updated_at = now
    await session.flush()
    closed = target is CaseStatus.CLOSED and current is not CaseStatus.CLOSED
    if raised:  # in place of case.updated: seen only by whoever may read the threat
        await events.emit(
            session,
            EventType.CASE_THREAT_RAISED,
            resource_type=ResourceType.THREAT,
            resource_id=case.id,
            case_id=case.id,
            individual_id=case.individual_id,
        )
    else:
        await emit_case_event(
            session, EventType.CASE_CLOSED if closed else EventType.CASE_UPDATED, case
        )
    await audit.append(
        session,
        case_record(actor, "case.update", case, decision, reason="; ".join(changes), flags=flags),
    )
    return await to_read(session, actor, case, await case_facts(session, case))


def _status_move(case: Case, data: CaseUpdate) -> tuple[CaseStatus, CaseStatus]:
    """The status now and the one asked for: 422 for a closure without a reason (or a
    reason without a closure), 409 for a move the diagram does not allow."""
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
    return current, target


def _move(
    case: Case, data: CaseUpdate, current: CaseStatus, target: CaseStatus, now: datetime
) -> None:
    case.status = target.value
    if target is CaseStatus.CLOSED:
        case.closure_reason = data.closure_reason.value if data.closure_reason else None
        case.closed_at = now
    elif current is CaseStatus.CLOSED:  # reopened: sharing through the case resumes
        case.closure_reason = None
        case.closed_at = None


def _set_details(case: Case, data: CaseUpdate) -> list[str]:
    """Custody and exit, as given; what changed, for the audit record (not the values)."""
    changed = []
    if data.custody is not None:
        case.custody_status = data.custody.status.value
        case.release_on = data.custody.release_on
        changed.append("custody")
    if data.exit is not None:
        case.exit_status = data.exit.status.value
        case.exit_requested_on = data.exit.requested_on
        changed.append("exit")
    return changed


async def _record_threat(
    session: AsyncSession, actor: Actor, case: Case, data: CaseUpdate, now: datetime
) -> bool:
    """The assessment: a level with the day it was assessed (not in the future) and the
    next review (by default after the level's interval); the caller's agency becomes its
    source. True if it raised the level to high or critical (flagged for the lead
    coordinators until the next review)."""
    if data.threat_level is None:
        raise ValidationFailed.for_field(
            "body.threat_level", "A threat assessment names the level.", "missing"
        )
    if data.threat_reviewed_on is None:
        raise ValidationFailed.for_field(
            "body.threat_reviewed_on", "A threat level needs the day it was assessed.", "missing"
        )
    if data.threat_reviewed_on > now.date():
        raise ValidationFailed.for_field(
            "body.threat_reviewed_on", "The assessment cannot be dated in the future.", "future"
        )
    due = data.threat_review_due_on
    if due is not None and due < data.threat_reviewed_on:
        raise ValidationFailed.for_field(
            "body.threat_review_due_on", "The next review comes after the assessment.", "before"
        )
    category = get_engine().reference.categories[THREAT_ASSESSMENT]
    kind = await agency_service.kind_of(session, actor.agency_id)
    if not category.recorded_by_kind(kind):
        raise enforce.deny(
            session,
            actor,
            audit_action="case.update",
            policy_id="categories.recorded_by",
            hidden=False,
            detail="Your agency does not record threat assessments (policies/categories.yaml).",
            resource_type="case",
            resource_id=str(case.id),
            case_id=case.id,
            individual_id=case.individual_id,
        )
    level = data.threat_level
    before = ThreatLevel(case.threat_level)
    order = list(ThreatLevel)
    raised = level in RAISED_THREAT and order.index(level) > order.index(before)
    if due is None and level is not ThreatLevel.NONE:
        due = data.threat_reviewed_on + timedelta(days=REVIEW_INTERVAL_DAYS[level])
    case.threat_level = level.value
    case.threat_reviewed_on = data.threat_reviewed_on
    case.threat_review_due_on = due if level is not ThreatLevel.NONE else None
    case.threat_agency_id = actor.agency_id
    case.threat_flagged_at = now if raised else None
    return raised


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
    await emit_case_event(session, EventType.PARTICIPANT_ADDED, case, data.agency_id)
    await audit.append(
        session,
        case_record(actor, "participant.add", case, decision, reason=f"agency {data.agency_id}"),
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
    await audit.append(session, case_record(actor, "participant.list", case, decision))
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
    await emit_case_event(session, EventType.PARTICIPANT_REMOVED, case, agency_id)
    await audit.append(
        session,
        case_record(actor, "participant.remove", case, decision, reason=f"agency {agency_id}"),
    )

"""Meetings: recorded by case staff of a participating agency (the meeting's agency) once
held; read under the sharing rule as information of category ``plan`` recorded by that
agency. Each decision becomes a planned action in the same transaction, under the rules of
planning (app.actions.service.plan_action). Attendees' names: staff names to the case's
participating agencies' staff, guardians' names only with the individual's identity."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.actions import service as action_service
from app.actions.models import CaseAction
from app.actions.schemas import ActionCreate
from app.audit import writer as audit
from app.auth.actor import Actor
from app.cases import service as case_service
from app.cases.models import CaseParticipant
from app.errors import ValidationFailed
from app.events import service as events
from app.events.models import EventType, ResourceType
from app.individuals import service as individual_service
from app.individuals.models import Guardian
from app.meetings.models import Meeting, MeetingAttendee, MeetingKind
from app.meetings.schemas import AttendeeRead, MeetingCreate, MeetingRead
from app.pagination import Page
from app.policy import filters, reads
from app.policy.engine import Action
from app.policy.entities import CaseFacts, EntryFacts
from app.policy.reads import SharedKind
from app.users.models import User

DECISION_TYPE = "meeting_decision"


def _now() -> datetime:
    return datetime.now(UTC)


MEETINGS: SharedKind[Meeting, EntryFacts] = case_service.plan_record_kind(Meeting, "meeting")

_ATTENDEES = (
    select(MeetingAttendee, User.display_name, Guardian.given_name, Guardian.family_name)
    .outerjoin(User, User.id == MeetingAttendee.user_id)
    .outerjoin(Guardian, Guardian.id == MeetingAttendee.guardian_id)
    .where(MeetingAttendee.meeting_id.in_(bindparam("meeting_ids", expanding=True)))
    .order_by(MeetingAttendee.meeting_id, MeetingAttendee.position)
)


async def _to_reads(
    session: AsyncSession, actor: Actor, meetings: list[Meeting], case_facts: CaseFacts
) -> list[MeetingRead]:
    """The meetings of one case as the caller may see them: staff names only to staff of a
    participating agency, guardians' names only with the identity, and the decisions'
    actions only as far as the sharing rule shows them."""
    if not meetings:
        return []
    ids = [m.id for m in meetings]
    staff_names = actor.agency_id in case_facts.participant_agency_ids
    identity = await individual_service.identity_decision(session, actor, case_facts.individual)
    named = False
    attendees: dict[uuid.UUID, list[AttendeeRead]] = {i: [] for i in ids}
    for row, display_name, given, family in (
        await session.execute(_ATTENDEES, {"meeting_ids": ids})
    ).all():
        named = named or (identity.allowed and row.guardian_id is not None)
        attendees[row.meeting_id].append(
            AttendeeRead(
                agency_id=row.agency_id,
                user_id=row.user_id,
                display_name=display_name if staff_names else None,
                guardian_id=row.guardian_id,
                name=f"{given} {family}" if identity.allowed and row.guardian_id else None,
                role=row.role,
            )
        )
    if named:  # a guardian's name is the individual's identity data: on its own basis
        individual_id = case_facts.individual.id
        audit.append_at_commit(
            session,
            [
                actor.record(
                    "individual.read",
                    resource_type="individual",
                    resource_id=str(individual_id),
                    individual_id=individual_id,
                    policy_id=identity.policy_id,
                    reason="guardians attending a meeting",
                    **individual_service.identity_basis(identity),
                )
            ],
        )
    actions: dict[uuid.UUID, list[uuid.UUID]] = {i: [] for i in ids}
    visible = select(CaseAction.meeting_id, CaseAction.id).where(
        CaseAction.meeting_id.in_(ids), filters.actions_visible_to(actor, _now())
    )
    for meeting_id, action_id in (
        await session.execute(visible.order_by(CaseAction.created_at, CaseAction.id))
    ).all():
        if meeting_id is not None:
            actions[meeting_id].append(action_id)
    return [
        MeetingRead(
            id=m.id,
            case_id=m.case_id,
            agency_id=m.agency_id,
            kind=MeetingKind(m.kind),
            held_at=m.held_at,
            individual_present=m.individual_present,
            minutes=m.minutes,
            attendees=attendees[m.id],
            action_ids=actions[m.id],
            created_at=m.created_at,
        )
        for m in meetings
    ]


async def _check_attendees(
    session: AsyncSession, data: MeetingCreate, case_id: uuid.UUID, individual_id: uuid.UUID
) -> None:
    """Agencies of the case; users of the agency named; guardians of the young person. The
    same 422 for an id that does not exist and one that does not fit: nothing to learn."""
    participants = set(
        (
            await session.execute(
                select(CaseParticipant.agency_id).where(CaseParticipant.case_id == case_id)
            )
        ).scalars()
    )
    for i, attendee in enumerate(data.attendees):
        where = f"body.attendees.{i}"
        if attendee.agency_id is not None and attendee.agency_id not in participants:
            raise ValidationFailed.for_field(
                f"{where}.agency_id",
                "The agency does not take part in the case.",
                "not_participant",
            )
        if attendee.user_id is not None:
            user = await session.get(User, attendee.user_id)
            if user is None or user.agency_id != attendee.agency_id:
                raise ValidationFailed.for_field(
                    f"{where}.user_id", "The user must belong to the agency named.", "wrong_agency"
                )
        if attendee.guardian_id is not None:
            guardian = await session.get(Guardian, attendee.guardian_id)
            if guardian is None or guardian.individual_id != individual_id:
                raise ValidationFailed.for_field(
                    f"{where}.guardian_id",
                    "Not a guardian of the case's individual.",
                    "not_a_guardian",
                )


async def record_meeting(
    session: AsyncSession, actor: Actor, *, case_id: uuid.UUID, data: MeetingCreate
) -> MeetingRead:
    """The meeting, its attendees and its decisions' actions, all or nothing."""
    case, case_facts, decision = await case_service.load_case(
        session, actor, case_id, action=Action.MEETING_RECORD, audit_action="meeting.create"
    )
    case_service.require_open(case)
    now = _now()
    held_at = data.held_at if data.held_at.tzinfo else data.held_at.replace(tzinfo=UTC)
    if held_at > now:
        raise ValidationFailed.for_field(
            "body.held_at", "A meeting is recorded once held: the time is in the future.", "future"
        )
    await _check_attendees(session, data, case.id, case.individual_id)
    meeting = Meeting(
        id=uuid.uuid4(),
        case_id=case.id,
        individual_id=case.individual_id,
        agency_id=actor.agency_id,
        kind=data.kind.value,
        held_at=held_at,
        individual_present=data.individual_present,
        minutes=data.minutes,
        created_by=actor.id,
        created_at=now,
    )
    session.add(meeting)
    await session.flush()
    session.add_all(
        MeetingAttendee(
            meeting_id=meeting.id,
            position=i,
            agency_id=a.agency_id,
            user_id=a.user_id,
            guardian_id=a.guardian_id,
            role=a.role,
        )
        for i, a in enumerate(data.attendees)
    )
    await session.flush()
    for i, made in enumerate(data.decisions):
        await action_service.plan_action(
            session,
            actor,
            case,
            case_facts,
            data=ActionCreate(
                type=DECISION_TYPE,
                title=made.title,
                responsible_agency_id=made.responsible_agency_id,
                due_date=made.due_date,
            ),
            meeting_id=meeting.id,
            field=f"body.decisions.{i}",
        )
    await events.emit_about(session, EventType.MEETING_RECORDED, ResourceType.MEETING, meeting)
    await audit.append(
        session,
        actor.record(
            "meeting.create",
            policy_id=decision.policy_id,
            basis="own_agency",
            reason=f"{len(data.attendees)} attendee(s), {len(data.decisions)} decision(s)",
            **MEETINGS.fields(meeting),
        ),
    )
    [shown] = await _to_reads(session, actor, [meeting], case_facts)
    return shown


async def get_meeting(session: AsyncSession, actor: Actor, *, meeting_id: uuid.UUID) -> MeetingRead:
    meeting, facts, decision = await reads.readable(
        session, actor, MEETINGS, meeting_id, audit_action="meeting.read"
    )
    audit.append_at_commit(session, [MEETINGS.record(actor, "meeting.read", meeting, decision)])
    [shown] = await _to_reads(session, actor, [meeting], facts.case)
    return shown


async def list_meetings(
    session: AsyncSession, actor: Actor, *, case_id: uuid.UUID, limit: int, cursor: str | None
) -> Page[MeetingRead]:
    """The meetings the sharing rule lets the caller see, filtered in SQL; newest first."""
    rows, next_cursor, case_facts, _ = await case_service.case_page(
        session, actor, MEETINGS, case_id=case_id, limit=limit, cursor=cursor, newest_first=True
    )
    return Page[MeetingRead](
        items=await _to_reads(session, actor, rows, case_facts), next_cursor=next_cursor
    )

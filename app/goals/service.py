"""Goals: set by case staff of a participating agency (the goal's agency), read under the
sharing rule as information of category ``plan`` recorded by that agency, followed up by
the goal's agency or the lead agency's coordinators. Each follow-up is kept as a version;
every read, change and denial is audited with its basis."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit import writer as audit
from app.auth.actor import Actor
from app.cases import service as case_service
from app.errors import ValidationFailed
from app.events import service as events
from app.events.models import EventType, ResourceType
from app.goals.models import Goal, GoalArea, GoalFollowUp, GoalStatus
from app.goals.schemas import GoalCreate, GoalFollowUpRead, GoalRead, GoalUpdate
from app.pagination import Page
from app.policy import enforce, reads
from app.policy.engine import Action
from app.policy.entities import EntryFacts
from app.policy.reads import SharedKind


def _now() -> datetime:
    return datetime.now(UTC)


GOALS: SharedKind[Goal, EntryFacts] = case_service.plan_record_kind(Goal, "goal")

_FOLLOW_UPS = (
    select(GoalFollowUp)
    .where(GoalFollowUp.goal_id.in_(bindparam("goal_ids", expanding=True)))
    .order_by(GoalFollowUp.goal_id, GoalFollowUp.version)
)


async def _to_reads(session: AsyncSession, goals: list[Goal]) -> list[GoalRead]:
    """The goals as shown, their follow-ups loaded in one statement."""
    if not goals:
        return []
    follow_ups: dict[uuid.UUID, list[GoalFollowUp]] = {g.id: [] for g in goals}
    for row in (await session.execute(_FOLLOW_UPS, {"goal_ids": list(follow_ups)})).scalars():
        follow_ups[row.goal_id].append(row)
    return [
        GoalRead(
            id=goal.id,
            case_id=goal.case_id,
            agency_id=goal.agency_id,
            area=GoalArea(goal.area),
            description=goal.description,
            set_on=goal.set_on,
            target_date=goal.target_date,
            follow_up_on=goal.follow_up_on,
            status=GoalStatus(goal.status),
            outcome=goal.outcome,
            follow_ups=[
                GoalFollowUpRead(
                    version=f.version,
                    status=GoalStatus(f.status),
                    follow_up_on=f.follow_up_on,
                    outcome=f.outcome,
                    note=f.note,
                    recorded_by=f.recorded_by,
                    recorded_at=f.recorded_at,
                )
                for f in follow_ups[goal.id]
            ],
            created_at=goal.created_at,
            updated_at=goal.updated_at,
        )
        for goal in goals
    ]


def _not_before(value: date | None, set_on: date, field: str, what: str) -> None:
    if value is not None and value < set_on:
        raise ValidationFailed.for_field(
            field, f"The {what} cannot be before the goal was set ({set_on}).", "before_set"
        )


async def create_goal(
    session: AsyncSession, actor: Actor, *, case_id: uuid.UUID, data: GoalCreate
) -> GoalRead:
    case, _, decision = await case_service.load_case(
        session, actor, case_id, action=Action.GOAL_CREATE, audit_action="goal.create"
    )
    case_service.require_open(case)
    now = _now()
    set_on = now.date()
    _not_before(data.target_date, set_on, "body.target_date", "target date")
    _not_before(data.follow_up_on, set_on, "body.follow_up_on", "follow-up date")
    goal = Goal(
        id=uuid.uuid4(),
        case_id=case.id,
        individual_id=case.individual_id,
        agency_id=actor.agency_id,
        area=data.area.value,
        description=data.description,
        set_on=set_on,
        target_date=data.target_date,
        follow_up_on=data.follow_up_on,
        status=GoalStatus.OPEN.value,
        outcome=None,
        version=1,
        created_by=actor.id,
        created_at=now,
        updated_by=actor.id,
        updated_at=now,
    )
    session.add(goal)
    await session.flush()
    await events.emit_about(session, EventType.GOAL_UPDATED, ResourceType.GOAL, goal)
    await audit.append(
        session,
        actor.record(
            "goal.create", policy_id=decision.policy_id, basis="own_agency", **GOALS.fields(goal)
        ),
    )
    [shown] = await _to_reads(session, [goal])
    return shown


async def get_goal(session: AsyncSession, actor: Actor, *, goal_id: uuid.UUID) -> GoalRead:
    goal, _, decision = await reads.readable(
        session, actor, GOALS, goal_id, audit_action="goal.read"
    )
    audit.append_at_commit(session, [GOALS.record(actor, "goal.read", goal, decision)])
    [shown] = await _to_reads(session, [goal])
    return shown


async def update_goal(
    session: AsyncSession, actor: Actor, *, goal_id: uuid.UUID, data: GoalUpdate
) -> GoalRead:
    """404 unless the caller may see the goal; 403 unless its agency is the goal's or it is
    a lead coordinator; 409 on a closed case. A goal no longer open needs an outcome."""
    goal, facts, _ = await reads.readable(
        session, actor, GOALS, goal_id, audit_action="goal.update", for_update=True
    )
    decision = enforce.require(
        session,
        actor,
        Action.GOAL_UPDATE,
        facts,
        audit_action="goal.update",
        hidden=False,
        detail="Only the goal's agency and the lead agency's coordinators follow a goal up.",
        **GOALS.fields(goal),
    )
    case_service.require_open(facts.case)
    changes = data.model_fields_set
    status = data.status if data.status is not None else GoalStatus(goal.status)
    follow_up_on = data.follow_up_on if "follow_up_on" in changes else goal.follow_up_on
    outcome = data.outcome if "outcome" in changes else goal.outcome
    _not_before(follow_up_on, goal.set_on, "body.follow_up_on", "follow-up date")
    if status is not GoalStatus.OPEN and not outcome:
        raise ValidationFailed.for_field(
            "body.outcome", "Say how it went: a goal no longer open needs an outcome.", "required"
        )
    before = goal.status
    goal.status = status.value
    goal.follow_up_on = follow_up_on
    goal.outcome = outcome
    goal.version += 1
    goal.updated_by = actor.id
    goal.updated_at = _now()
    session.add(
        GoalFollowUp(
            goal_id=goal.id,
            version=goal.version - 1,
            status=goal.status,
            follow_up_on=follow_up_on,
            outcome=outcome,
            note=data.note,
            recorded_by=actor.id,
            recorded_at=goal.updated_at,
        )
    )
    await session.flush()
    await events.emit_about(session, EventType.GOAL_UPDATED, ResourceType.GOAL, goal)
    moved = f"; status {before} -> {goal.status}" if before != goal.status else ""
    await audit.append(
        session,
        actor.record(
            "goal.update",
            policy_id=decision.policy_id,
            basis="own_agency" if goal.agency_id == actor.agency_id else "lead_coordinator",
            reason=f"changed {', '.join(sorted(changes))}{moved}",
            **GOALS.fields(goal),
        ),
    )
    [shown] = await _to_reads(session, [goal])
    return shown


async def list_goals(
    session: AsyncSession, actor: Actor, *, case_id: uuid.UUID, limit: int, cursor: str | None
) -> Page[GoalRead]:
    """The goals the sharing rule lets the caller see, filtered in SQL; oldest first."""
    rows, next_cursor, _case_facts, _ = await case_service.case_page(
        session, actor, GOALS, case_id=case_id, limit=limit, cursor=cursor, newest_first=False
    )
    return Page[GoalRead](items=await _to_reads(session, rows), next_cursor=next_cursor)

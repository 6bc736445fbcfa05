"""Actions (insatser): planned by a participating agency for itself, or — under a consent
that covers the plan and names both agencies — for another participating agency; read under
the sharing rule; moved on and closed only by the responsible agency. Every read, change
and denial is audited with its basis."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.actions.models import FINAL, TRANSITIONS, ActionStatus, CaseAction
from app.actions.schemas import ActionCreate, ActionRead, ActionUpdate
from app.agencies import service as agency_service
from app.audit import writer as audit
from app.audit.records import Origin, Record
from app.auth.actor import Actor
from app.auth.service import user_actor
from app.cases import service as case_service
from app.cases.models import Case, CaseParticipant
from app.errors import Conflict, ValidationFailed
from app.events import service as events
from app.events.models import EventType, ResourceType
from app.individuals.service import read_basis
from app.pagination import Page
from app.policy import enforce, filters, reads
from app.policy.engine import Action, PolicyDecision
from app.policy.entities import ActionFacts, CaseFacts, Grounds
from app.policy.grounds import grounds_for
from app.policy.reads import SharedKind
from app.users.models import User


def _now() -> datetime:
    return datetime.now(UTC)


async def _facts(
    session: AsyncSession, action: CaseAction, case: CaseFacts | None = None
) -> ActionFacts:
    if case is None:
        case = await case_service.case_facts_of(session, action.individual_id, action.case_id)
    return ActionFacts(
        id=action.id,
        source_agency_id=action.source_agency_id,
        responsible_agency_id=action.responsible_agency_id,
        case=case,
        source_agency_kind=await agency_service.kind_of(session, action.source_agency_id),
        responsible_agency_kind=await agency_service.kind_of(session, action.responsible_agency_id),
    )


def _read_record(
    actor: Actor, audit_action: str, action: CaseAction, decision: PolicyDecision
) -> Record:
    return actor.record(
        audit_action,
        policy_id=decision.policy_id,
        **ACTIONS.fields(action),
        **read_basis(decision, "own_agency"),
    )


ACTIONS: SharedKind[CaseAction, ActionFacts] = SharedKind(
    model=CaseAction,
    resource_type="action",
    read=Action.ACTION_READ,
    facts=_facts,
    visible=filters.actions_visible_to,
    record=_read_record,
)


def _to_read(action: CaseAction) -> ActionRead:
    return ActionRead(
        id=action.id,
        case_id=action.case_id,
        type=action.type,
        title=action.title,
        description=action.description,
        source_agency_id=action.source_agency_id,
        responsible_agency_id=action.responsible_agency_id,
        assignee_id=action.assignee_id,
        due_date=action.due_date,
        status=ActionStatus(action.status),
        meeting_id=action.meeting_id,
        outcome=action.outcome,
        created_at=action.created_at,
        updated_at=action.updated_at,
    )


async def _check_assignee(
    session: AsyncSession,
    assignee_id: uuid.UUID,
    facts: ActionFacts,
    field: str = "body.assignee_id",
) -> None:
    """The assignee is an active user of the responsible agency whom the decision point
    lets read the action (so not an administrator or auditor). The same 422 for a user that
    does not exist and one of another agency: nothing to learn."""
    user = await session.get(User, assignee_id)
    if (
        user is None
        or not user.active
        or user.agency_id != facts.responsible_agency_id
        or not enforce.decide(user_actor(user, Origin()), Action.ACTION_READ, facts).allowed
    ):
        raise ValidationFailed.for_field(
            field,
            "The assignee must be an active caseworker or coordinator of the responsible agency.",
            "not_assignable",
        )


async def create_action(
    session: AsyncSession, actor: Actor, *, case_id: uuid.UUID, data: ActionCreate
) -> ActionRead:
    case, case_facts, _ = await case_service.load_case(
        session, actor, case_id, action=Action.CASE_READ, audit_action="action.create"
    )
    case_service.require_open(case)
    return _to_read(await plan_action(session, actor, case, case_facts, data=data))


async def plan_action(
    session: AsyncSession,
    actor: Actor,
    case: Case,
    case_facts: CaseFacts,
    *,
    data: ActionCreate,
    meeting_id: uuid.UUID | None = None,
    field: str = "body",
) -> CaseAction:
    """An action planned on an open case the caller may see (a meeting's decision names its
    ``meeting_id``; ``field`` is where its input sits in the request): 422 for a responsible
    agency outside the case, 403 for another agency without a consent covering the plan.
    Written, announced and audited here."""
    if await session.get(CaseParticipant, (case.id, data.responsible_agency_id)) is None:
        raise ValidationFailed.for_field(
            f"{field}.responsible_agency_id",
            "The responsible agency must take part in the case.",
            "not_participant",
        )
    now = _now()
    action = CaseAction(
        id=uuid.uuid4(),
        case_id=case.id,
        individual_id=case.individual_id,
        source_agency_id=actor.agency_id,
        responsible_agency_id=data.responsible_agency_id,
        type=data.type,
        title=data.title,
        description=data.description,
        assignee_id=data.assignee_id,
        due_date=data.due_date,
        status=ActionStatus.PLANNED.value,
        outcome=None,
        meeting_id=meeting_id,
        created_by=actor.id,
        created_at=now,
        updated_by=actor.id,
        updated_at=now,
    )
    facts = await _facts(session, action, case_facts)
    if data.assignee_id is not None:
        await _check_assignee(session, data.assignee_id, facts, f"{field}.assignee_id")
    # Planning for another agency shares the plan with it: only consents count, never an
    # emergency grant (break-the-glass opens reads, not disclosures).
    grounds = await grounds_for(
        session, actor, individual_id=case.individual_id, case_id=case.id, now=now
    )
    decision = enforce.decide(
        actor, Action.ACTION_CREATE, facts, Grounds(consents=grounds.consents)
    )
    if not decision.allowed:
        raise enforce.deny(
            session,
            actor,
            audit_action="action.create",
            policy_id=decision.policy_id,
            hidden=False,
            detail=(
                "No active consent covers sharing the plan with the responsible agency; "
                "plan the action for your own agency, or register such a consent first."
            ),
            resource_type="action",
            case_id=case.id,
            individual_id=case.individual_id,
        )
    session.add(action)
    await session.flush()
    await events.emit_about(session, EventType.ACTION_PLANNED, ResourceType.ACTION, action)
    await audit.append(session, _read_record(actor, "action.create", action, decision))
    return action


async def get_action(session: AsyncSession, actor: Actor, *, action_id: uuid.UUID) -> ActionRead:
    action, _, decision = await reads.readable(
        session, actor, ACTIONS, action_id, audit_action="action.read"
    )
    audit.append_at_commit(session, [_read_record(actor, "action.read", action, decision)])
    return _to_read(action)


async def update_action(
    session: AsyncSession, actor: Actor, *, action_id: uuid.UUID, data: ActionUpdate
) -> ActionRead:
    """404 unless the caller may see the action; 403 unless its agency is responsible for
    it; 409 for a final action or a move the status diagram does not allow."""
    action, facts, _ = await reads.readable(
        session, actor, ACTIONS, action_id, audit_action="action.update", for_update=True
    )
    decision = enforce.require(
        session,
        actor,
        Action.ACTION_UPDATE,
        facts,
        audit_action="action.update",
        hidden=False,
        detail="Only the responsible agency changes an action.",
        **ACTIONS.fields(action),
    )
    current = ActionStatus(action.status)
    if current in FINAL:
        raise Conflict(f"The action is {current.value}; it cannot change any more.")
    changes = data.model_fields_set
    new_status = data.status if data.status is not None else current
    if new_status is not current and new_status not in TRANSITIONS[current]:
        raise Conflict(f"An action cannot go from {current.value} to {new_status.value}.")
    outcome = data.outcome if "outcome" in changes else action.outcome
    if new_status in FINAL and not outcome:
        raise ValidationFailed.for_field(
            "body.outcome", "Say how it went: done and cancelled need an outcome.", "required"
        )
    if "assignee_id" in changes and data.assignee_id is not None:
        await _check_assignee(session, data.assignee_id, facts)
    for name in sorted(changes):
        setattr(action, name, getattr(data, name))
    action.status = new_status.value
    action.updated_by = actor.id
    action.updated_at = _now()
    await session.flush()
    moved = f"; status {current.value} -> {new_status.value}" if new_status is not current else ""
    await events.emit_about(session, EventType.ACTION_UPDATED, ResourceType.ACTION, action)
    await audit.append(
        session,
        actor.record(
            "action.update",
            policy_id=decision.policy_id,
            basis="own_agency",
            reason=f"changed {', '.join(sorted(changes))}{moved}",
            **ACTIONS.fields(action),
        ),
    )
    return _to_read(action)


async def list_actions(
    session: AsyncSession, actor: Actor, *, case_id: uuid.UUID, limit: int, cursor: str | None
) -> Page[ActionRead]:
    """Only the actions the sharing rule lets the caller see, filtered in SQL; oldest first
    (a plan reads in order). One audit record per action returned, with its basis."""
    rows, next_cursor, _case_facts, _ = await case_service.case_page(
        session, actor, ACTIONS, case_id=case_id, limit=limit, cursor=cursor, newest_first=False
    )
    return Page[ActionRead](items=[_to_read(a) for a in rows], next_cursor=next_cursor)

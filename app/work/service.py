"""The caller's work list: each list one SQL statement, filtered by the same rules as the
reads (app/policy/filters.py), so it shows only what the caller may see; every item shown
is audited as a read of it."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, exists, false, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.actions.models import CaseAction
from app.audit import writer as audit
from app.audit.records import Record
from app.auth.actor import Actor
from app.cases.models import Case, CaseStatus, ThreatLevel
from app.consents.models import Consent
from app.goals.models import Goal, GoalStatus
from app.policy import enforce, filters
from app.policy.engine import Action
from app.policy.entities import AgencyFacts
from app.users.models import Role
from app.work.schemas import Work, WorkItem, WorkKind

# id, case id, individual id, due: every list's columns
Items = Select[uuid.UUID, uuid.UUID, uuid.UUID, Any]

FOLLOW_UP_DAYS = 7
CONSENT_DAYS = 30
REVIEW_DAYS = 7
_OPEN_ACTION = ("planned", "in_progress")


def _open_case_taken_part_in(actor: Actor) -> Any:
    return and_(Case.status != CaseStatus.CLOSED.value, filters.cases_visible_to(actor))


def _overdue_actions(actor: Actor, now: datetime, today: date) -> Items:
    return (
        select(CaseAction.id, CaseAction.case_id, CaseAction.individual_id, CaseAction.due_date)
        .join(Case, Case.id == CaseAction.case_id)
        .where(
            CaseAction.responsible_agency_id == actor.agency_id,
            or_(CaseAction.assignee_id.is_(None), CaseAction.assignee_id == actor.id),
            CaseAction.status.in_(_OPEN_ACTION),
            CaseAction.due_date < today,
            _open_case_taken_part_in(actor),
            filters.actions_visible_to(actor, now),
        )
        .order_by(CaseAction.due_date, CaseAction.id)
    )


def _follow_ups(actor: Actor, now: datetime, today: date) -> Items:
    lead = Case.lead_agency_id == actor.agency_id if Role.COORDINATOR in actor.roles else false()
    return (
        select(Goal.id, Goal.case_id, Goal.individual_id, Goal.follow_up_on)
        .join(Case, Case.id == Goal.case_id)
        .where(
            Goal.status == GoalStatus.OPEN.value,
            Goal.follow_up_on <= today + timedelta(days=FOLLOW_UP_DAYS),
            or_(Goal.agency_id == actor.agency_id, lead),
            _open_case_taken_part_in(actor),
            filters.plan_records_visible_to(Goal)(actor, now),
        )
        .order_by(Goal.follow_up_on, Goal.id)
    )


def _consents_expiring(actor: Actor, now: datetime) -> Items:
    successor = aliased(Consent)
    return (
        select(Consent.id, Consent.case_id, Consent.individual_id, Consent.valid_until)
        .join(Case, Case.id == Consent.case_id)
        .where(
            filters.consent_active(now),
            Consent.valid_until <= now + timedelta(days=CONSENT_DAYS),
            ~exists(select(successor.id).where(successor.supersedes_id == Consent.id)),
            Case.lead_agency_id == actor.agency_id,
            _open_case_taken_part_in(actor),
        )
        .order_by(Consent.valid_until, Consent.id)
    )


def _threats(actor: Actor, now: datetime, today: date, *, raised: bool) -> Items:
    query = select(Case.id, Case.id, Case.individual_id, Case.threat_review_due_on).where(
        Case.threat_level != ThreatLevel.NONE.value,
        _open_case_taken_part_in(actor),
        filters.threat_visible_to(actor, now),
    )
    if raised:
        query = query.where(
            Case.threat_flagged_at.is_not(None),
            Case.lead_agency_id == actor.agency_id if Role.COORDINATOR in actor.roles else false(),
        )
    else:
        query = query.where(
            Case.threat_agency_id == actor.agency_id,
            Case.threat_review_due_on <= today + timedelta(days=REVIEW_DAYS),
        )
    return query.order_by(Case.threat_review_due_on, Case.id)


def _record(actor: Actor, kind: WorkKind, row: Any, policy_id: str) -> Record:
    """The read of one item: what it is, on which case; shown as one's own work (the
    filters admit only the caller's agency's items, or its lead cases' plan and consents)."""
    resource, read = {
        WorkKind.ACTION: ("action", "action.read"),
        WorkKind.GOAL: ("goal", "goal.read"),
        WorkKind.CONSENT: ("consent", "consent.read"),
    }.get(kind, ("threat_assessment", "case.read"))
    return actor.record(
        read,
        resource_type=resource,
        resource_id=str(row[0]),
        case_id=row[1],
        individual_id=row[2],
        policy_id=policy_id,
        basis="own_agency",
        reason=f"work list: {kind.value}",
    )


async def my_work(session: AsyncSession, actor: Actor, *, limit: int) -> Work:
    """Case staff only (403 otherwise): ``work.list``; at most ``limit`` items a list."""
    decision = enforce.require(
        session,
        actor,
        Action.WORK_LIST,
        AgencyFacts(id=actor.agency_id),
        audit_action="work.list",
        hidden=False,
        resource_type="work",
    )
    now = datetime.now(UTC)
    today = now.date()
    lists: dict[str, tuple[WorkKind, Items]] = {
        "overdue_actions": (WorkKind.ACTION, _overdue_actions(actor, now, today)),
        "follow_ups_due": (WorkKind.GOAL, _follow_ups(actor, now, today)),
        "consents_expiring": (WorkKind.CONSENT, _consents_expiring(actor, now)),
        "reviews_due": (WorkKind.THREAT_REVIEW, _threats(actor, now, today, raised=False)),
        "threats_raised": (WorkKind.THREAT_RAISED, _threats(actor, now, today, raised=True)),
    }
    found: dict[str, list[WorkItem]] = {}
    records: list[Record] = []
    for name, (kind, query) in lists.items():
        rows = (await session.execute(query.limit(limit))).all()
        found[name] = [
            WorkItem(id=row[0], kind=kind, case_id=row[1], due_on=_day(row[3])) for row in rows
        ]
        records += [_record(actor, kind, row, decision.policy_id) for row in rows]
    total = sum(len(items) for items in found.values())
    records.append(
        actor.record(
            "work.list",
            resource_type="work",
            policy_id=decision.policy_id,
            reason=f"{total} item(s)",
        )
    )
    audit.append_at_commit(session, records)
    return Work(**found)


def _day(value: date | datetime | None) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    return value

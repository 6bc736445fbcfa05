"""Follow-up statistics over the cases the caller's agency takes part in: counts by
programme, lead agency, sex or age band over a period, with small counts suppressed
(app/statistics/suppression.py). No names, no ids; the request is audited."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Hashable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from statistics import median
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.actions.models import ActionStatus, CaseAction
from app.agencies.models import Agency
from app.audit import writer as audit
from app.auth.actor import Actor
from app.cases.models import Case, ClosureReason, Programme
from app.consents.models import Consent
from app.errors import ValidationFailed
from app.goals.models import Goal, GoalStatus
from app.individuals.models import Individual, Sex
from app.policy import enforce, filters
from app.policy.engine import Action
from app.policy.entities import AgencyFacts
from app.statistics.schemas import Count, GroupBy, Statistics
from app.statistics.suppression import Line, suppress

SUPPRESSED = "<5"
TOTAL = "total"
AGE_BANDS = ("under_15", "15_17", "18_20", "21_25", "26_or_older")
CLOSED = [f"closed_{reason.value}" for reason in ClosureReason]
GOALS = [f"goals_{status.value}" for status in GoalStatus]
MEASURES = [
    "individuals",
    "cases_opened",
    "cases_closed",
    *CLOSED,
    "consents_active",
    "consents_withdrawn",
    *GOALS,
    "actions_done",
    "actions_done_on_time",
]
MEDIAN = "median_days_to_first_action"


def _age_band(born: date, on: date) -> str:
    age = on.year - born.year - ((on.month, on.day) < (born.month, born.day))
    if age < 15:
        return AGE_BANDS[0]
    if age < 18:
        return AGE_BANDS[1]
    if age < 21:
        return AGE_BANDS[2]
    return AGE_BANDS[3] if age < 26 else AGE_BANDS[4]


@dataclass
class _Case:
    id: uuid.UUID
    individual_id: uuid.UUID
    group: str
    opened: date
    closed: date | None
    reason: str | None


def _within(day: date | None, start: date, end: date) -> bool:
    return day is not None and start <= day <= end


async def _cases(
    session: AsyncSession, actor: Actor, group_by: GroupBy, programme: Programme | None
) -> list[_Case]:
    """The cases the caller's agency takes part in, each with its group."""
    query = (
        select(
            Case.id,
            Case.individual_id,
            Case.programme,
            Agency.name,
            Individual.sex,
            Individual.birth_date,
            Case.created_at,
            Case.closed_at,
            Case.closure_reason,
        )
        .join(Individual, Individual.id == Case.individual_id)
        .join(Agency, Agency.id == Case.lead_agency_id)
        .where(filters.cases_taken_part_in(actor))
    )
    if programme is not None:
        query = query.where(Case.programme == programme.value)
    found = []
    for row in (await session.execute(query)).all():
        opened = row.created_at.date()
        group = {
            GroupBy.PROGRAMME: row.programme,
            GroupBy.AGENCY: row.name,
            GroupBy.SEX: row.sex,
            GroupBy.AGE_BAND: _age_band(row.birth_date, opened),
        }[group_by]
        found.append(
            _Case(
                row.id,
                row.individual_id,
                group,
                opened,
                row.closed_at.date() if row.closed_at else None,
                row.closure_reason,
            )
        )
    return found


def _groups(group_by: GroupBy, cases: list[_Case]) -> list[str]:
    """Every group of the dimension (an empty one shows as zeros), agencies as found."""
    if group_by is GroupBy.PROGRAMME:
        return [p.value for p in Programme]
    if group_by is GroupBy.SEX:
        return [s.value for s in Sex]
    if group_by is GroupBy.AGE_BAND:
        return list(AGE_BANDS)
    return sorted({c.group for c in cases})


def _case_counts(
    cases: list[_Case], start: date, end: date, counts: dict[tuple[str, str], int]
) -> None:
    people: dict[str, set[uuid.UUID]] = defaultdict(set)
    for case in cases:
        if case.opened <= end and (case.closed is None or case.closed >= start):
            people[case.group].add(case.individual_id)
        if _within(case.opened, start, end):
            counts[(case.group, "cases_opened")] += 1
        if _within(case.closed, start, end):
            counts[(case.group, "cases_closed")] += 1
            counts[(case.group, f"closed_{case.reason}")] += 1
    for group, members in people.items():
        counts[(group, "individuals")] = len(members)


async def _consent_counts(
    session: AsyncSession,
    by_id: dict[uuid.UUID, _Case],
    start: date,
    end: date,
    counts: dict[tuple[str, str], int],
) -> None:
    """Active at the end of the period; withdrawn within it."""
    end_moment = datetime.combine(end, time.max, tzinfo=UTC)
    consents = await session.execute(
        select(
            Consent.case_id,
            Consent.valid_from,
            Consent.valid_until,
            Consent.withdrawn_at,
            Consent.superseded_at,
        ).where(Consent.case_id.in_(list(by_id)))
    )
    for case_id, valid_from, valid_until, withdrawn, superseded in consents.all():
        group = by_id[case_id].group
        ended = min(m for m in (withdrawn, superseded, valid_until) if m is not None)
        if valid_from <= end_moment < ended:
            counts[(group, "consents_active")] += 1
        if withdrawn is not None and _within(withdrawn.date(), start, end):
            counts[(group, "consents_withdrawn")] += 1


async def _plan_counts(
    session: AsyncSession,
    by_id: dict[uuid.UUID, _Case],
    start: date,
    end: date,
    counts: dict[tuple[str, str], int],
) -> dict[uuid.UUID, date]:
    """Goals set in the period by status; actions done in it, and on time; and each case's
    first action's day (for the median)."""
    goals = await session.execute(
        select(Goal.case_id, Goal.status, Goal.set_on).where(Goal.case_id.in_(list(by_id)))
    )
    for case_id, status, set_on in goals.all():
        if _within(set_on, start, end):
            counts[(by_id[case_id].group, f"goals_{status}")] += 1
    actions = await session.execute(
        select(
            CaseAction.case_id,
            CaseAction.status,
            CaseAction.due_date,
            CaseAction.updated_at,
            CaseAction.created_at,
        ).where(CaseAction.case_id.in_(list(by_id)))
    )
    first: dict[uuid.UUID, date] = {}
    for case_id, status, due, updated, created in actions.all():
        group = by_id[case_id].group
        first[case_id] = min(first.get(case_id, created.date()), created.date())
        if status == ActionStatus.DONE.value and _within(updated.date(), start, end):
            counts[(group, "actions_done")] += 1
            if due is None or updated.date() <= due:
                counts[(group, "actions_done_on_time")] += 1
    return first


async def _counts(
    session: AsyncSession, cases: list[_Case], start: date, end: date
) -> tuple[dict[tuple[str, str], int], dict[str, list[int]]]:
    counts: dict[tuple[str, str], int] = defaultdict(int)
    by_id = {c.id: c for c in cases}
    _case_counts(cases, start, end, counts)
    await _consent_counts(session, by_id, start, end, counts)
    first = await _plan_counts(session, by_id, start, end, counts)
    days: dict[str, list[int]] = defaultdict(list)
    for case in cases:
        if _within(case.opened, start, end) and case.id in first:
            days[case.group].append((first[case.id] - case.opened).days)
    return counts, days


def _table(
    groups: list[str], counts: dict[tuple[str, str], int], days: dict[str, list[int]]
) -> tuple[list[dict[str, Count]], int]:
    """The rows with the total row, suppressed: every line a total and its parts (each
    measure over the groups; the cases closed over their reasons, in every row)."""
    values: dict[Hashable, int] = {}
    for group in groups:
        for measure in MEASURES:
            values[(group, measure)] = counts.get((group, measure), 0)
    for measure in MEASURES:
        values[(TOTAL, measure)] = sum(values[(g, measure)] for g in groups)
    # individuals may be in two groups (two programmes): the total counts each person once
    values[(TOTAL, "individuals")] = max(
        values[(TOTAL, "individuals")], max((values[(g, "individuals")] for g in groups), default=0)
    )
    lines = [Line((TOTAL, m), tuple((g, m) for g in groups)) for m in MEASURES]
    lines += [
        Line((row, "cases_closed"), tuple((row, c) for c in CLOSED)) for row in [*groups, TOTAL]
    ]
    hidden = suppress(values, lines)
    all_days = [d for g in groups for d in days.get(g, [])]
    rows: list[dict[str, Count]] = []
    for row in [*groups, TOTAL]:
        shown: dict[str, Count] = {"group": row}
        for measure in MEASURES:
            shown[measure] = SUPPRESSED if (row, measure) in hidden else values[(row, measure)]
        basis = all_days if row == TOTAL else days.get(row, [])
        shown[MEDIAN] = round(median(basis)) if len(basis) >= 5 else SUPPRESSED
        rows.append(shown)
    return rows, len(hidden)


async def statistics(
    session: AsyncSession,
    actor: Actor,
    *,
    group_by: GroupBy,
    start: date | None,
    end: date | None,
    programme: Programme | None,
) -> Statistics:
    """Coordinators and auditors (403 otherwise); the period defaults to this year so far.
    ``median_days_to_first_action`` is shown where at least 5 cases give it."""
    decision = enforce.require(
        session,
        actor,
        Action.STATISTICS_READ,
        AgencyFacts(id=actor.agency_id),
        audit_action="statistics.read",
        hidden=False,
        detail="Follow-up statistics are for coordinators and auditors.",
        resource_type="statistics",
    )
    today = datetime.now(UTC).date()
    start = start or date(today.year, 1, 1)
    end = end or today
    if start > end:
        raise ValidationFailed.for_field("query.from", "from comes before to.", "period")
    cases = await _cases(session, actor, group_by, programme)
    counts, days = await _counts(session, cases, start, end)
    rows, hidden = _table(_groups(group_by, cases), counts, days)
    fields: dict[str, Any] = {"programme": programme.value if programme else None}
    await audit.append(
        session,
        actor.record(
            "statistics.read",
            resource_type="statistics",
            policy_id=decision.policy_id,
            reason=f"{group_by.value}, {start}..{end}, {len(rows)} row(s), {hidden} suppressed",
        ),
    )
    return Statistics.model_validate(
        {
            "from": start,
            "to": end,
            "group_by": group_by,
            "rows": rows,
            "suppressed": hidden,
            **fields,
        }
    )

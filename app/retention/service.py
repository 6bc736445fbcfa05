"""Culling (gallring) by the rules in policies/retention.yaml.

Order of a run: the records inside cases whose own rule is due (entries, actions, goals,
meetings, emergency grants, consents and their documents, per agency kind where rules
differ), then whole cases with whatever is still in them, then individuals with no case
left, then idempotency keys and outbox rows, and last the audit log up to its cut. Every
step goes in batches; a batch is one transaction that removes the rows, writes a tombstone
for each culled record, its ``retention_batch`` row and its audit record — so a run killed
at any moment leaves each record either culled with its tombstone or untouched, and the
next run, which asks the database again what is due, carries on where it stopped.

Nothing under a legal hold (requested, active or lift requested; app.holds) is culled:
not the case, not the individual, not an audit record that names them, nor anything after
it in the log (the log is cut as a prefix).
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    case,
    delete,
    exists,
    func,
    insert,
    not_,
    null,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.actions.models import CaseAction
from app.agencies.models import Agency
from app.audit import checkpoints
from app.audit import writer as audit
from app.audit.models import AuditEvent, AuditReadVolume
from app.audit.records import Record
from app.cases.models import Case, CaseAssignment, CaseLink, CaseParticipant, CaseStatus
from app.consents.models import (
    Consent,
    ConsentAgency,
    ConsentCategory,
    ConsentDocument,
    ConsentSignatory,
)
from app.emergency.models import EmergencyGrant, EmergencyGrantCategory
from app.entries.models import Entry, EntryVersion
from app.events.models import Event
from app.external_refs.models import ExternalRef
from app.goals.models import Goal, GoalFollowUp
from app.holds.models import PROTECTING, LegalHold
from app.idempotency.models import IdempotencyKey
from app.individuals.models import Guardian, Individual, IndividualVersion
from app.meetings.models import Meeting, MeetingAttendee
from app.retention.models import RetentionBatch, Tombstone
from app.retention.rules import RecordKind, RetentionRules, Rule, Trigger
from app.webhooks.models import WebhookDelivery

_PROTECTING = [s.value for s in PROTECTING]


def _case_held(case_id: Any, individual_id: Any) -> ColumnElement[bool]:
    """A protecting hold on the case, or on its individual as a whole."""
    return exists().where(
        LegalHold.status.in_(_PROTECTING),
        or_(
            LegalHold.case_id == case_id,
            and_(LegalHold.case_id.is_(None), LegalHold.individual_id == individual_id),
        ),
    )


def _individual_held(individual_id: Any) -> ColumnElement[bool]:
    return exists().where(
        LegalHold.status.in_(_PROTECTING), LegalHold.individual_id == individual_id
    )


@dataclass(frozen=True, slots=True)
class Part:
    """A kind of record inside a case."""

    kind: RecordKind
    model: Any
    resource_type: str
    agency: Any | None  # the owning agency's column, for rules per agency kind
    created: Any
    # rows that hang on it, deleted first: (model, column naming it)
    children: tuple[tuple[Any, Any], ...] = ()
    # references to it from rows that stay, set to NULL: (model, column)
    detach: tuple[tuple[Any, Any], ...] = ()


_CONSENT_ENDED = case(
    (Consent.withdrawn_at.is_not(None), Consent.withdrawn_at),
    (Consent.superseded_at.is_not(None), Consent.superseded_at),
    else_=Consent.valid_until,
)

PARTS: tuple[Part, ...] = (
    Part(
        RecordKind.ENTRY,
        Entry,
        "entry",
        Entry.source_agency_id,
        Entry.created_at,
        children=((EntryVersion, EntryVersion.entry_id),),
    ),
    Part(
        RecordKind.ACTION,
        CaseAction,
        "action",
        CaseAction.source_agency_id,
        CaseAction.created_at,
    ),
    Part(
        RecordKind.GOAL,
        Goal,
        "goal",
        Goal.agency_id,
        Goal.created_at,
        children=((GoalFollowUp, GoalFollowUp.goal_id),),
    ),
    Part(
        RecordKind.MEETING,
        Meeting,
        "meeting",
        Meeting.agency_id,
        Meeting.created_at,
        children=((MeetingAttendee, MeetingAttendee.meeting_id),),
        detach=((CaseAction, CaseAction.meeting_id),),
    ),
    Part(
        RecordKind.EMERGENCY_GRANT,
        EmergencyGrant,
        "emergency_grant",
        EmergencyGrant.agency_id,
        EmergencyGrant.created_at,
        children=((EmergencyGrantCategory, EmergencyGrantCategory.grant_id),),
    ),
    Part(
        RecordKind.CONSENT_DOCUMENT,
        ConsentDocument,
        "consent_document",
        None,
        ConsentDocument.uploaded_at,
    ),
    Part(
        RecordKind.CONSENT,
        Consent,
        "consent",
        None,
        Consent.registered_at,
        children=(
            (ConsentAgency, ConsentAgency.consent_id),
            (ConsentCategory, ConsentCategory.consent_id),
            (ConsentSignatory, ConsentSignatory.consent_id),
            (ConsentDocument, ConsentDocument.consent_id),
        ),
        detach=((Consent, Consent.supersedes_id),),
    ),
)


def _key(part: Part) -> Any:
    """The column that identifies a row of ``part`` (a document is its consent's)."""
    return part.model.consent_id if part.model is ConsentDocument else part.model.id


def _case_of(part: Part) -> Any:
    return Consent.case_id if part.model is ConsentDocument else part.model.case_id


_DUE_COLUMNS = ("id", "case_id", "individual_id", "created_at", "trigger_at", "agency_id")


def _due(*columns: Any) -> Select[Any]:
    """What is due, always in the same six columns (the tombstone's and the plan's)."""
    return select(*(c.label(n) for c, n in zip(columns, _DUE_COLUMNS, strict=True)))


def _part_due(part: Part, rule: Rule, rules: RetentionRules, now: datetime) -> Select[Any]:
    """(id, case id, individual id, created, trigger time, agency id) of the rows of
    ``part`` past ``rule``'s period."""
    cutoff = rule.cutoff(now)
    if rule.trigger is Trigger.CONSENT_ENDED:
        started: Any = _CONSENT_ENDED
        due: ColumnElement[bool] = cutoff > _CONSENT_ENDED
    else:
        started = Case.closed_at
        due = and_(Case.status == CaseStatus.CLOSED.value, Case.closed_at < cutoff)
    agency = part.agency if part.agency is not None else Case.lead_agency_id
    query = _due(_key(part), Case.id, Case.individual_id, part.created, started, agency)
    query = query.select_from(part.model)
    if part.model is ConsentDocument:
        query = query.join(Consent, Consent.id == ConsentDocument.consent_id)
    query = query.join(Case, Case.id == _case_of(part)).where(
        due, not_(_case_held(Case.id, Case.individual_id))
    )
    if part.agency is not None:
        own = [r.agency_kind.value for r in rules.of_kind(part.kind) if r.agency_kind]
        kind_of = select(Agency.kind).where(Agency.id == part.agency).scalar_subquery()
        if rule.agency_kind is not None:
            query = query.where(kind_of == rule.agency_kind.value)
        elif own:
            query = query.where(kind_of.not_in(own))
    return query


def _cases_due(rule: Rule, now: datetime) -> Select[Any]:
    return _due(
        Case.id, Case.id, Case.individual_id, Case.created_at, Case.closed_at, Case.lead_agency_id
    ).where(
        Case.status == CaseStatus.CLOSED.value,
        Case.closed_at < rule.cutoff(now),
        not_(_case_held(Case.id, Case.individual_id)),
    )


def _individuals_due(rules: RetentionRules, now: datetime) -> Select[Any]:
    """Individuals past their period whose every case is culled (or due in this run)."""
    rule = rules.for_kind(RecordKind.INDIVIDUAL)
    cutoff = rule.cutoff(now)
    case_cutoff = rules.for_kind(RecordKind.CASE).cutoff(now)
    case_stays = exists().where(
        Case.individual_id == Individual.id,
        or_(
            Case.status != CaseStatus.CLOSED.value,
            Case.closed_at >= case_cutoff,
            Case.closed_at >= cutoff,
            _case_held(Case.id, Case.individual_id),
        ),
    )
    closed_lately = exists().where(
        Tombstone.individual_id == Individual.id,
        Tombstone.resource_type == "case",
        Tombstone.trigger_at >= cutoff,
    )
    last = func.coalesce(Individual.updated_at, Individual.created_at)
    return _due(
        Individual.id,
        null(),
        Individual.id,
        Individual.created_at,
        last,
        Individual.registering_agency_id,
    ).where(
        Individual.created_at < cutoff,
        last < cutoff,
        not_(case_stays),
        not_(closed_lately),
        not_(_individual_held(Individual.id)),
    )


@dataclass(slots=True)
class Batch:
    """What one batch culled."""

    kind: RecordKind
    counts: Counter[str] = field(default_factory=Counter)
    rules: set[str] = field(default_factory=set)
    anchor_seq: int | None = None

    def summary(self) -> str:
        counts = ", ".join(f"{k} {n}" for k, n in sorted(self.counts.items()))
        anchored = f"; anchor seq {self.anchor_seq}" if self.anchor_seq is not None else ""
        return f"{','.join(sorted(self.rules))}: {counts}{anchored}"


@dataclass(slots=True)
class _Culling:
    """The rows a batch removes, with their tombstones, in one transaction."""

    connection: AsyncConnection
    batch: Batch
    batch_id: uuid.UUID
    now: datetime
    tombstones: list[dict[str, Any]] = field(default_factory=list)

    def bury(self, resource_type: str, rows: Iterable[Sequence[Any]], rule_id: str) -> None:
        for row in rows:
            self.tombstones.append(
                {
                    "resource_type": resource_type,
                    "resource_id": str(row[0]),
                    "case_id": row[1],
                    "individual_id": row[2],
                    "created_at": row[3],
                    "trigger_at": row[4],
                    "culled_at": self.now,
                    "rule_id": rule_id,
                    "batch_id": self.batch_id,
                }
            )
            self.batch.counts[resource_type] += 1
        self.batch.rules.add(rule_id)

    async def remove(self, model: Any, column: Any, ids: Sequence[Any]) -> None:
        if ids:
            await self.connection.execute(delete(model).where(column.in_(ids)))

    async def part(self, part: Part, rows: Sequence[Sequence[Any]], rule_id: str) -> None:
        ids = [row[0] for row in rows]
        if not ids:
            return
        self.bury(part.resource_type, rows, rule_id)
        for model, column in part.detach:
            await self.connection.execute(
                update(model).where(column.in_(ids)).values({column.key: None})
            )
        for model, column in part.children:
            await self.remove(model, column, ids)
        await self.remove(part.model, _key(part), ids)

    async def cases(self, rows: Sequence[Sequence[Any]], rule_id: str) -> None:
        ids = [row[0] for row in rows]
        for part in PARTS:
            if part.model is ConsentDocument:
                continue  # a consent takes its document
            inside = (
                await self.connection.execute(
                    select(_key(part), Case.id, Case.individual_id, part.created, Case.closed_at)
                    .join(Case, Case.id == part.model.case_id)
                    .where(part.model.case_id.in_(ids))
                )
            ).all()
            await self.part(part, inside, rule_id)
        for model, column in (
            (CaseParticipant, CaseParticipant.case_id),
            (CaseAssignment, CaseAssignment.case_id),
            (CaseLink, CaseLink.case_id),
            (CaseLink, CaseLink.linked_case_id),
            (ExternalRef, ExternalRef.case_id),
            (LegalHold, LegalHold.case_id),  # none protecting: a held case is not due
            (IdempotencyKey, IdempotencyKey.case_id),
        ):
            await self.remove(model, column, ids)
        self.bury("case", rows, rule_id)
        await self.remove(Case, Case.id, ids)

    async def individuals(self, rows: Sequence[Sequence[Any]], rule_id: str) -> None:
        ids = [row[0] for row in rows]
        guardians = (
            await self.connection.execute(
                select(Guardian.id, null(), Guardian.individual_id, null(), null()).where(
                    Guardian.individual_id.in_(ids)
                )
            )
        ).all()
        self.bury("guardian", guardians, rule_id)
        for model, column in (
            (IndividualVersion, IndividualVersion.individual_id),
            (Guardian, Guardian.individual_id),
            (ExternalRef, ExternalRef.individual_id),
            (LegalHold, LegalHold.individual_id),
            (IdempotencyKey, IdempotencyKey.individual_id),
            (AuditReadVolume, AuditReadVolume.individual_id),
        ):
            await self.remove(model, column, ids)
        self.bury("individual", rows, rule_id)
        await self.remove(Individual, Individual.id, ids)

    async def finish(self) -> None:
        if self.tombstones:
            await self.connection.execute(insert(Tombstone), self.tombstones)


# ------------------------------------------------------------------ plan


@dataclass(frozen=True, slots=True)
class Step:
    """One query of what is due: ``kind`` under ``rule``; ``key`` orders it (the id)."""

    kind: RecordKind
    rule: Rule
    query: Select[Any]
    key: Any
    part: Part | None = None


def steps(rules: RetentionRules, now: datetime) -> list[Step]:
    """What a run does, in order (the audit log and housekeeping apart)."""
    found = [
        Step(part.kind, rule, _part_due(part, rule, rules, now), _key(part), part)
        for part in PARTS
        for rule in rules.of_kind(part.kind)
    ]
    case_rule = rules.for_kind(RecordKind.CASE)
    found.append(Step(RecordKind.CASE, case_rule, _cases_due(case_rule, now), Case.id))
    found.append(
        Step(
            RecordKind.INDIVIDUAL,
            rules.for_kind(RecordKind.INDIVIDUAL),
            _individuals_due(rules, now),
            Individual.id,
        )
    )
    return found


async def audit_cut(
    connection: AsyncConnection, rules: RetentionRules, now: datetime
) -> tuple[int, int]:
    """(the anchor's seq now, the highest seq the log may be cut at): every record up to it
    is past the audit rule's period, and none names a case or individual under a hold."""
    anchor = await checkpoints.newest_anchor(connection)
    start = anchor.seq if anchor is not None else 0
    cutoff = rules.for_kind(RecordKind.AUDIT_RECORD).cutoff(now)
    first_young = await connection.scalar(
        select(func.min(AuditEvent.seq)).where(AuditEvent.at >= cutoff)
    )
    held = select(LegalHold.individual_id).where(LegalHold.status.in_(_PROTECTING))
    held_cases = select(LegalHold.case_id).where(
        LegalHold.status.in_(_PROTECTING), LegalHold.case_id.is_not(None)
    )
    first_held = await connection.scalar(
        select(func.min(AuditEvent.seq)).where(
            AuditEvent.seq > start,
            or_(AuditEvent.individual_id.in_(held), AuditEvent.case_id.in_(held_cases)),
        )
    )
    head = await connection.scalar(select(func.max(AuditEvent.seq))) or start
    limit = min(
        (first_young - 1) if first_young is not None else head,
        (first_held - 1) if first_held is not None else head,
    )
    return start, max(start, limit)


async def plan(connection: AsyncConnection, rules: RetentionRules, now: datetime) -> dict[str, Any]:
    """What a run would cull now and why: counts per kind, rule and agency; no personal
    data (ids of agencies only, with their names)."""
    kinds: dict[str, dict[str, Any]] = {}
    agencies: set[uuid.UUID] = set()

    def note(kind: str, rule: Rule, count: int, by_agency: dict[str, int] | None = None) -> None:
        entry = kinds.setdefault(kind, {"due": 0, "by_rule": {}, "by_agency": {}})
        entry["due"] += count
        if count:
            entry["by_rule"][rule.id] = entry["by_rule"].get(rule.id, 0) + count
        for agency, n in (by_agency or {}).items():
            entry["by_agency"][agency] = entry["by_agency"].get(agency, 0) + n

    for step in steps(rules, now):
        due = step.query.subquery()
        agency_column = due.c.agency_id
        rows = (
            await connection.execute(select(agency_column, func.count()).group_by(agency_column))
        ).all()
        agencies.update(a for a, _ in rows if a is not None)
        kind = step.part.resource_type if step.part is not None else step.kind.value
        note(kind, step.rule, sum(n for _, n in rows), {str(a): n for a, n in rows})
    for kind, count in (await _housekeeping_counts(connection, rules, now)).items():
        note(kind.value, rules.for_kind(kind), count)
    start, limit = await audit_cut(connection, rules, now)
    note(RecordKind.AUDIT_RECORD.value, rules.for_kind(RecordKind.AUDIT_RECORD), limit - start)
    kinds[RecordKind.AUDIT_RECORD.value]["anchor_seq_now"] = start
    kinds[RecordKind.AUDIT_RECORD.value]["cut_through_seq"] = limit
    named = await connection.execute(select(Agency.id, Agency.name).where(Agency.id.in_(agencies)))
    names = dict(named.all())
    held = await connection.scalar(
        select(func.count()).select_from(LegalHold).where(LegalHold.status.in_(_PROTECTING))
    )
    return {
        "as_of": now.isoformat(),
        "rules_file": rules.path,
        "kinds": kinds,
        "agencies": {str(a): names.get(a) for a in sorted(agencies, key=str)},
        "legal_holds_protecting": held,
        "rules": {
            r.id: {
                "kind": r.kind.value,
                "agency_kind": r.agency_kind.value if r.agency_kind else None,
                "trigger": r.trigger.value,
                "period_days": r.period_days,
                "cutoff": r.cutoff(now).isoformat(),
                "why": r.why,
            }
            for r in rules.rules
        },
    }


def _idempotency_due(rules: RetentionRules, now: datetime) -> Select[uuid.UUID, str]:
    cutoff = rules.for_kind(RecordKind.IDEMPOTENCY).cutoff(now)
    return select(IdempotencyKey.caller_id, IdempotencyKey.key).where(
        IdempotencyKey.created_at < cutoff
    )


def _outbox_due(rules: RetentionRules, now: datetime) -> tuple[Select[Any], Select[Any]]:
    cutoff = rules.for_kind(RecordKind.OUTBOX).cutoff(now)
    return (
        select(Event.seq).where(Event.occurred_at < cutoff),
        select(WebhookDelivery.id).where(WebhookDelivery.created_at < cutoff),
    )


async def _housekeeping_counts(
    connection: AsyncConnection, rules: RetentionRules, now: datetime
) -> dict[RecordKind, int]:
    async def count(query: Select[Any] | Select[uuid.UUID, str]) -> int:
        return int(await connection.scalar(select(func.count()).select_from(query.subquery())) or 0)

    events, deliveries = _outbox_due(rules, now)
    return {
        RecordKind.IDEMPOTENCY: await count(_idempotency_due(rules, now)),
        RecordKind.OUTBOX: await count(events) + await count(deliveries),
    }


# ------------------------------------------------------------------ run

# Told after each batch: the kind, and the records culled so far in the run.
Tell = Callable[[str, int], None]


def _quiet(kind: str, done: int) -> None:
    """No one is watching."""


@dataclass(slots=True)
class RunResult:
    run_id: uuid.UUID
    batches: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    anchor_seq: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "run_id": str(self.run_id),
            "batches": self.batches,
            "culled": dict(sorted(self.counts.items())),
            "anchor_seq": self.anchor_seq,
        }


async def _record_batch(
    session: AsyncSession, run_id: uuid.UUID, batch: Batch, batch_id: uuid.UUID, now: datetime
) -> None:
    """The batch's audit record and row, in the batch's transaction."""
    seq = await audit.append(
        session,
        Record(
            action="retention.cull",
            resource_type="retention_batch",
            resource_id=str(batch_id),
            basis="retention",
            policy_id=",".join(sorted(batch.rules))[:100],
            reason=batch.summary()[:2000],
        ),
    )
    connection = await session.connection()
    await connection.execute(
        insert(RetentionBatch).values(
            id=batch_id,
            run_id=run_id,
            kind=batch.kind.value,
            at=now,
            counts=dict(batch.counts),
            rule_ids=",".join(sorted(batch.rules))[:400],
            anchor_seq=batch.anchor_seq,
            audit_seq=seq,
        )
    )


async def run(
    sessionmaker: Callable[[], AsyncSession],
    rules: RetentionRules,
    signer: checkpoints.CheckpointSigner,
    now: datetime,
    *,
    batch_size: int = 200,
    audit_batch_size: int = 50_000,
    tell: Tell = _quiet,
) -> RunResult:
    """Cull everything due at ``now``, a batch per transaction; see the module's text."""
    result = RunResult(uuid.uuid4())
    # The log is cut no further than what was due when the run began: the run's own
    # records (and, under a test's clock, the records of its batches) are not chased.
    async with sessionmaker() as session:
        _, audit_limit = await audit_cut(await session.connection(), rules, now)

    async def batch_of(kind: RecordKind, work: Callable[[_Culling], Awaitable[bool]]) -> bool:
        """One batch as one unit of work, as the webhook worker's: the transaction commits
        when the block ends, and rolls back (culling nothing) on any error."""
        async with sessionmaker() as session, session.begin():
            batch_id = uuid.uuid4()
            culling = _Culling(await session.connection(), Batch(kind), batch_id, now)
            if not await work(culling):
                return False  # nothing was due: an empty transaction
            await culling.finish()
            await _record_batch(session, result.run_id, culling.batch, batch_id, now)
        result.batches += 1
        result.counts.update(culling.batch.counts)
        result.anchor_seq = culling.batch.anchor_seq or result.anchor_seq
        tell(kind.value, sum(result.counts.values()))
        return True

    for step in steps(rules, now):
        after = _After()
        while await batch_of(step.kind, partial(_cull_step, step, batch_size, after)):
            pass
    while await batch_of(RecordKind.IDEMPOTENCY, partial(_cull_keys, rules, now, batch_size)):
        pass
    while await batch_of(RecordKind.OUTBOX, partial(_cull_outbox, rules, now, batch_size)):
        pass
    cut_log = partial(_cull_log, rules, signer, now, audit_limit, audit_batch_size)
    while await batch_of(RecordKind.AUDIT_RECORD, cut_log):
        pass
    return result


@dataclass(slots=True)
class _After:
    """Where a step's next batch starts: after the last id the step looked at. What it
    passed over (held, or another agency kind's) stays so for the run's ``now``; without
    it, every batch would scan again past the rows the batches before it deleted."""

    key: Any = None


async def _cull_step(step: Step, batch_size: int, after: _After, culling: _Culling) -> bool:
    query = step.query.order_by(step.key).limit(batch_size)
    if after.key is not None:
        query = query.where(step.key > after.key)
    rows = (await culling.connection.execute(query)).all()
    if not rows:
        return False
    after.key = rows[-1][0]
    if step.part is not None:
        await culling.part(step.part, rows, step.rule.id)
    elif step.kind is RecordKind.CASE:
        await culling.cases(rows, step.rule.id)
    else:
        await culling.individuals(rows, step.rule.id)
    return True


async def _cull_keys(
    rules: RetentionRules, now: datetime, batch_size: int, culling: _Culling
) -> bool:
    rows = (
        await culling.connection.execute(_idempotency_due(rules, now).limit(batch_size * 10))
    ).all()
    if not rows:
        return False
    await culling.connection.execute(
        delete(IdempotencyKey).where(
            tuple_(IdempotencyKey.caller_id, IdempotencyKey.key).in_([tuple(r) for r in rows])
        )
    )
    culling.batch.counts["idempotency"] += len(rows)
    culling.batch.rules.add(rules.for_kind(RecordKind.IDEMPOTENCY).id)
    return True


async def _cull_outbox(
    rules: RetentionRules, now: datetime, batch_size: int, culling: _Culling
) -> bool:
    events, deliveries = _outbox_due(rules, now)
    limit = batch_size * 10
    delivery_ids = (await culling.connection.execute(deliveries.limit(limit))).scalars().all()
    seqs = (await culling.connection.execute(events.limit(limit))).scalars().all()
    if not delivery_ids and not seqs:
        return False
    await culling.remove(WebhookDelivery, WebhookDelivery.id, delivery_ids)
    await culling.remove(Event, Event.seq, seqs)
    culling.batch.counts["webhook_delivery"] += len(delivery_ids)
    culling.batch.counts["event"] += len(seqs)
    culling.batch.rules.add(rules.for_kind(RecordKind.OUTBOX).id)
    return True


async def _cull_log(
    rules: RetentionRules,
    signer: checkpoints.CheckpointSigner,
    now: datetime,
    audit_limit: int,
    audit_batch_size: int,
    culling: _Culling,
) -> bool:
    start, limit = await audit_cut(culling.connection, rules, now)
    limit = min(limit, audit_limit)
    if limit <= start:
        return False
    through = min(limit, start + audit_batch_size)
    rule = rules.for_kind(RecordKind.AUDIT_RECORD)
    anchor = await checkpoints.cut(culling.connection, signer, through=through, rule_id=rule.id)
    culling.batch.counts["audit_record"] += through - start
    culling.batch.rules.add(rule.id)
    culling.batch.anchor_seq = anchor.seq
    return True

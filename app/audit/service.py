"""The auditors' side of the log (loggkontroll): search, one record, review marks, exports,
an individual's access extract, chain verification. Auditors only — and they never read
case content here: records hold identifiers, never names or text of entries.

Every use is itself audited: searches and exports name the filters used (not their
values, except the individual and case ids, which go to their own columns so that the
individual's extract shows that the log was searched for them).
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.agencies.models import Agency
from app.audit import checkpoints, flags
from app.audit import writer as audit
from app.audit.chain import GENESIS, Progress, verify_chain
from app.audit.models import AuditEvent, AuditReview, Decision
from app.audit.records import Record
from app.audit.schemas import (
    AccessLogEntry,
    AccessLogRead,
    AnchorRead,
    AuditEventDetail,
    AuditEventRead,
    AuditFilters,
    CheckpointRead,
    ReviewCreate,
    ReviewRead,
    SubjectRead,
    VerifyRead,
)
from app.auth.actor import Actor
from app.errors import Conflict, NotFound
from app.individuals import service as individual_service
from app.individuals.models import Individual
from app.pagination import Page, cursor_int, decode_cursor, encode_cursor
from app.policy import enforce
from app.policy.engine import Action
from app.policy.entities import AgencyFacts, AuditRecordFacts
from app.retention import tombstones
from app.users.models import User

EXPORT_BATCH = 2000

# What a record means, in words an individual understands (access extract).
_WHAT: dict[str, tuple[str, str]] = {
    "individual.create": ("Registrerade dina uppgifter", "Registered your details"),
    "individual.read": ("Läste dina personuppgifter", "Read your personal details"),
    "individual.search": ("Sökte på ditt personnummer", "Searched for your personal number"),
    "case.create": ("Öppnade ett ärende om dig", "Opened a case about you"),
    "case.read": ("Läste ditt ärende", "Read your case"),
    "case.list": ("Listade ärenden", "Listed cases"),
    "case.update": ("Ändrade ditt ärende", "Changed your case"),
    "participant.add": ("Lade till en myndighet i ärendet", "Added an agency to the case"),
    "participant.remove": ("Tog bort en myndighet från ärendet", "Removed an agency"),
    "consent.register": ("Registrerade ett samtycke", "Registered a consent"),
    "consent.read": ("Läste ett samtycke", "Read a consent"),
    "consent.list": ("Listade samtycken", "Listed consents"),
    "consent.withdraw": ("Registrerade återkallelse av samtycke", "Recorded a withdrawal"),
    "consent.document.store": ("Sparade samtyckesblanketten", "Stored the consent form"),
    "consent.document.read": ("Läste samtyckesblanketten", "Read the consent form"),
    "entry.create": ("Skrev en anteckning", "Wrote an entry"),
    "entry.read": ("Läste en anteckning", "Read an entry"),
    "entry.list": ("Listade anteckningar", "Listed entries"),
    "entry.correct": ("Rättade en anteckning", "Corrected an entry"),
    "action.create": ("Planerade en insats", "Planned an action"),
    "action.read": ("Läste en insats", "Read an action"),
    "action.list": ("Listade insatser", "Listed actions"),
    "action.update": ("Ändrade en insats", "Changed an action"),
    "emergency.grant": ("Begärde nödåtkomst", "Invoked emergency access"),
    "audit.search": ("Granskade loggen", "Reviewed the log"),
    "audit.export": ("Exporterade loggen", "Exported the log"),
    "audit.read": ("Granskade en loggpost", "Reviewed a log record"),
    "audit.review": ("Markerade en loggpost som granskad", "Marked a log record reviewed"),
    "audit.access_log": ("Tog fram detta loggutdrag", "Produced this extract"),
    "audit.subject_lookup": (
        "Sökte fram personens registreringar för ett loggutdrag",
        "Looked up the person's registrations for an extract",
    ),
}


async def _require_auditor(
    session: AsyncSession, actor: Actor, action: str, resource_id: str | None = None
) -> None:
    enforce.require(
        session,
        actor,
        Action.AUDIT_USE,
        AgencyFacts(id=actor.agency_id),
        audit_action=action,
        hidden=False,
        resource_type="audit_event",
        resource_id=resource_id,
    )


def _conditions(filters: AuditFilters) -> list[ColumnElement[bool]]:
    # _query outer-joins audit_review: a reviewed record is one with a review row.
    reviewed = AuditReview.seq.is_not(None)
    conditions: list[ColumnElement[bool]] = []
    for value, column in (
        (filters.individual_id, AuditEvent.individual_id),
        (filters.user_id, AuditEvent.actor_user_id),
        (filters.agency_id, AuditEvent.actor_agency_id),
        (filters.case_id, AuditEvent.case_id),
        (filters.action, AuditEvent.action),
    ):
        if value is not None:
            conditions.append(column == value)
    if filters.decision is not None:
        conditions.append(AuditEvent.decision == filters.decision.value)
    if filters.flagged is not None:
        # ``flagged=true`` is what needs a human: any flag but ``invalid`` alone
        quiet = AuditEvent.flags.in_(["", *flags.NOT_FOR_REVIEW])
        conditions.append(~quiet if filters.flagged else quiet)
    if filters.reviewed is not None:
        conditions.append(reviewed if filters.reviewed else AuditReview.seq.is_(None))
    if filters.from_ is not None:
        conditions.append(AuditEvent.at >= filters.from_)
    if filters.to is not None:
        conditions.append(AuditEvent.at < filters.to)
    return conditions


def _query(filters: AuditFilters) -> Select[Any]:
    """Rows of every audit_event column plus ``review_seq`` (null when not reviewed)."""
    return (
        select(*AuditEvent.__table__.columns, AuditReview.review_seq.label("review_seq"))
        .outerjoin(AuditReview, AuditReview.seq == AuditEvent.seq)
        .where(*_conditions(filters))
    )


def _split(value: str) -> list[str]:
    return [part for part in value.split(",") if part]


def to_read(event: Any) -> AuditEventRead:
    """From a row of :func:`_query`."""
    return AuditEventRead(
        seq=event.seq,
        at=event.at,
        actor_user_id=event.actor_user_id,
        actor_agency_id=event.actor_agency_id,
        actor_roles=_split(event.actor_roles),
        client_id=event.actor_client_id,
        action=event.action,
        resource_type=event.resource_type,
        resource_id=event.resource_id,
        individual_id=event.individual_id,
        case_id=event.case_id,
        decision=Decision(event.decision),
        basis=event.basis,
        policy_id=event.policy_id,
        consent_id=event.consent_id,
        legal_basis=event.legal_basis,
        reason=event.reason,
        request_id=event.request_id,
        auth_method=event.auth_method,
        flags=_split(event.flags),
        reviewed=event.review_seq is not None,
        prev_hash=event.prev_hash,
        hash=event.hash,
    )


def _usage_record(actor: Actor, action: str, filters: AuditFilters, reason: str) -> Record:
    named = ", ".join(filters.named()) or "none"
    return actor.record(
        action,
        resource_type="audit_event",
        individual_id=filters.individual_id,
        case_id=filters.case_id,
        basis="auditor",
        reason=f"filters: {named}; {reason}",
    )


async def search(
    session: AsyncSession, actor: Actor, *, filters: AuditFilters, limit: int, cursor: str | None
) -> Page[AuditEventRead]:
    """Newest first; keyset pages on ``seq``."""
    await _require_auditor(session, actor, "audit.search")
    query = _query(filters)
    key = decode_cursor(cursor, 1)
    if key is not None:
        query = query.where(AuditEvent.seq < cursor_int(key[0]))
    rows = (await session.execute(query.order_by(AuditEvent.seq.desc()).limit(limit + 1))).all()
    more = len(rows) > limit
    rows = rows[:limit]
    items = [to_read(row) for row in rows]
    await audit.append(
        session, _usage_record(actor, "audit.search", filters, f"{len(items)} hit(s)")
    )
    return Page[AuditEventRead](
        items=items, next_cursor=encode_cursor([str(items[-1].seq)]) if more else None
    )


async def get_event(session: AsyncSession, actor: Actor, *, seq: int) -> AuditEventDetail:
    await _require_auditor(session, actor, "audit.read", str(seq))
    event = (await session.execute(_query(AuditFilters()).where(AuditEvent.seq == seq))).first()
    if event is None:
        raise NotFound()
    await audit.append(
        session,
        actor.record(
            "audit.read",
            resource_type="audit_event",
            resource_id=str(seq),
            individual_id=event.individual_id,
            case_id=event.case_id,
            basis="auditor",
        ),
    )
    mark = await session.get(AuditReview, seq)
    review = (
        ReviewRead(
            seq=mark.seq,
            reviewer_user_id=mark.reviewer_user_id,
            reviewed_at=mark.reviewed_at,
            note=mark.note,
            review_seq=mark.review_seq,
        )
        if mark is not None
        else None
    )
    culled = await tombstones.of_resource(session, event.resource_type, event.resource_id)
    return AuditEventDetail(**to_read(event).model_dump(), review=review, culled=culled)


def _user_named(event: AuditEvent) -> uuid.UUID | None:
    """The account a record is about (a user read, changed or signed out), if any."""
    if event.resource_type != "user" or not event.resource_id:
        return None
    try:
        return uuid.UUID(event.resource_id)
    except ValueError:
        return None


async def review(
    session: AsyncSession, actor: Actor, *, seq: int, data: ReviewCreate
) -> ReviewRead:
    """One review mark per record; the review is itself an audit record. The note stays in
    the review (it may name what was found); the audit record says which record it is on."""
    await _require_auditor(session, actor, "audit.review", str(seq))
    event = await session.get(AuditEvent, seq)
    if event is None:
        raise NotFound()
    enforce.require(
        session,
        actor,
        Action.AUDIT_REVIEW,
        AuditRecordFacts(
            seq=seq,
            actor_user_id=event.actor_user_id,
            about_user_id=_user_named(event),
        ),
        audit_action="audit.review",
        hidden=False,
        detail="Nobody marks reviewed a record of what they did or of their own account.",
        resource_type="audit_event",
        resource_id=str(seq),
    )
    if await session.get(AuditReview, seq, with_for_update=True) is not None:
        raise Conflict("This record is reviewed already.")
    review_seq = await audit.append(
        session,
        actor.record(
            "audit.review",
            resource_type="audit_event",
            resource_id=str(seq),
            individual_id=event.individual_id,
            case_id=event.case_id,
            basis="auditor",
        ),
    )
    mark = AuditReview(
        seq=seq,
        reviewer_user_id=actor.id,
        reviewed_at=datetime.now(UTC),
        note=data.note,
        review_seq=review_seq,
    )
    session.add(mark)
    await session.flush()
    return ReviewRead(
        seq=mark.seq,
        reviewer_user_id=mark.reviewer_user_id,
        reviewed_at=mark.reviewed_at,
        note=mark.note,
        review_seq=mark.review_seq,
    )


async def verify_all(
    connection: AsyncConnection,
    signer: checkpoints.CheckpointSigner,
    extra: Sequence[checkpoints.Checkpoint] = (),
    *,
    jobs: int = 1,
    progress: Progress | None = None,
) -> VerifyRead:
    """The chain recomputed, then checked against every stored checkpoint and any kept
    elsewhere (``extra``): the API and ``samverkan audit verify`` report the same."""
    anchor = await checkpoints.newest_anchor(connection)
    problems: list[str] = []
    start = GENESIS
    if anchor is not None:
        start = (anchor.seq, anchor.hash)
        if not signer.valid(anchor.signed, checkpoints.ANCHOR):
            problems.append(
                f"anchor seq {anchor.seq}: signature does not verify with key {signer.key_id}"
            )
    result = await verify_chain(connection, jobs=jobs, progress=progress, start=start)
    known = [*await checkpoints.stored(connection), *extra]
    problems += await checkpoints.problems(
        connection, signer, known, result.head_seq, anchor.signed if anchor else None
    )
    return VerifyRead(
        ok=result.ok and not problems,
        anchor=None
        if anchor is None
        else AnchorRead(
            seq=anchor.seq,
            hash=anchor.hash,
            at=anchor.signed.at,
            rule_id=anchor.rule_id,
            last_culled_at=anchor.last_culled_at,
        ),
        checked=result.checked,
        first_bad_seq=result.first_bad_seq,
        head_seq=result.head_seq,
        head_hash=result.head_hash,
        problem=result.problem,
        checkpoints_checked=len(known),
        checkpoint_problems=problems,
    )


async def verify(
    session: AsyncSession, actor: Actor, signer: checkpoints.CheckpointSigner
) -> VerifyRead:
    await _require_auditor(session, actor, "audit.verify")
    result = await verify_all(await session.connection(), signer)
    await audit.append(
        session,
        actor.record(
            "audit.verify",
            resource_type="audit_event",
            basis="auditor",
            reason=(
                f"ok={result.ok} checked={result.checked} first_bad={result.first_bad_seq} "
                f"checkpoint_problems={len(result.checkpoint_problems)}"
            ),
            flags=[] if result.ok else ["chain_broken"],
        ),
    )
    return result


def checkpoint_read(checkpoint: checkpoints.Checkpoint) -> CheckpointRead:
    return CheckpointRead(
        seq=checkpoint.seq,
        hash=checkpoint.hash,
        at=checkpoint.at,
        signature=checkpoint.signature,
        key_id=checkpoint.key_id,
    )


async def create_checkpoint(
    session: AsyncSession, actor: Actor | None, signer: checkpoints.CheckpointSigner
) -> CheckpointRead:
    """Record the act first, then sign the head, which is that record: a checkpoint always
    covers its own making. ``actor`` is None for ``samverkan audit checkpoint``."""
    if actor is not None:
        await _require_auditor(session, actor, "audit.checkpoint")
        record = actor.record("audit.checkpoint", resource_type="audit_event", basis="auditor")
    else:
        record = Record(
            action="audit.checkpoint", resource_type="audit_event", reason="command line"
        )
    await audit.append(session, record)
    return checkpoint_read(await checkpoints.create(await session.connection(), signer))


async def list_checkpoints(
    session: AsyncSession, actor: Actor, *, limit: int, cursor: str | None
) -> Page[CheckpointRead]:
    """Newest first; the cursor is the seq of the last one shown."""
    await _require_auditor(session, actor, "audit.checkpoint.list")
    key = decode_cursor(cursor, 1)
    below = cursor_int(key[0]) if key is not None else None
    stored = await checkpoints.stored(await session.connection())
    newest_first = [c for c in reversed(stored) if below is None or c.seq < below]
    found = newest_first[:limit]
    await audit.append(
        session,
        actor.record(
            "audit.checkpoint.list",
            resource_type="audit_checkpoint",
            basis="auditor",
            reason=f"{len(found)} checkpoint(s)",
        ),
    )
    more = len(newest_first) > limit
    return Page[CheckpointRead](
        items=[checkpoint_read(c) for c in found],
        next_cursor=encode_cursor([str(found[-1].seq)]) if more else None,
    )


async def start_export(
    session: AsyncSession, actor: Actor, *, filters: AuditFilters, export_format: str
) -> int:
    """Check the role and record the export (committed before the first byte is sent);
    returns the newest ``seq`` the export covers, so it is a fixed snapshot."""
    await _require_auditor(session, actor, "audit.export")
    return await audit.append(
        session, _usage_record(actor, "audit.export", filters, f"format {export_format}")
    )


EXPORT_COLUMNS = tuple(AuditEventRead.model_fields)


async def export_rows(
    connection: AsyncConnection, filters: AuditFilters, up_to_seq: int
) -> AsyncIterator[AuditEventRead]:
    """Every matching record up to ``up_to_seq``, newest first, in batches: constant memory
    for any size of log."""
    below = up_to_seq + 1
    while True:
        rows = (
            await connection.execute(
                _query(filters)
                .where(AuditEvent.seq < below)
                .order_by(AuditEvent.seq.desc())
                .limit(EXPORT_BATCH)
            )
        ).all()
        if not rows:
            return
        for row in rows:
            yield to_read(row)
        below = rows[-1].seq


def csv_safe(value: Any) -> str:
    """A cell as text, defused against spreadsheet formula injection."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        value = ",".join(str(v) for v in value)
    text = value.isoformat() if isinstance(value, datetime) else str(value)
    if text[:1] in {"=", "+", "-", "@", "\t", "\r"}:
        text = "'" + text
    return text


def csv_line(values: Sequence[Any]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerow([csv_safe(v) for v in values])
    return buffer.getvalue()


def jsonl_line(item: AuditEventRead) -> str:
    return json.dumps(item.model_dump(mode="json"), ensure_ascii=False) + "\n"


async def access_log(
    session: AsyncSession, actor: Actor, *, individual_id: uuid.UUID
) -> AccessLogRead:
    """The individual's access extract (loggutdrag): who — which agency and user — read or
    changed what about them, when, and on which basis, refusals included. Oldest first."""
    await _require_auditor(session, actor, "audit.access_log", str(individual_id))
    culled = await tombstones.of_individual(session, individual_id)
    exists = await session.get(Individual, individual_id) is not None
    if not exists and not any(c.resource_type == "individual" for c in culled):
        raise NotFound()
    rows = (
        await session.execute(
            select(AuditEvent, Agency.name, User.display_name)
            .outerjoin(Agency, Agency.id == AuditEvent.actor_agency_id)
            .outerjoin(User, User.id == AuditEvent.actor_user_id)
            .where(AuditEvent.individual_id == individual_id)
            .order_by(AuditEvent.seq)
        )
    ).all()
    entries = []
    for event, agency_name, user_name in rows:
        what_sv, what_en = _WHAT.get(event.action, (event.action, event.action))
        if event.decision == Decision.DENY.value:
            what_sv, what_en = f"Nekades: {what_sv.lower()}", f"Refused: {what_en.lower()}"
        entries.append(
            AccessLogEntry(
                seq=event.seq,
                at=event.at,
                agency_id=event.actor_agency_id,
                agency_name=agency_name,
                user_id=event.actor_user_id,
                user_name=user_name,
                action=event.action,
                what_sv=what_sv,
                what_en=what_en,
                decision=Decision(event.decision),
                basis=event.basis,
                consent_id=event.consent_id,
                legal_basis=event.legal_basis,
            )
        )
    await audit.append(
        session,
        actor.record(
            "audit.access_log",
            resource_type="individual",
            resource_id=str(individual_id),
            individual_id=individual_id,
            basis="auditor",
            reason=f"{len(entries)} record(s), {len(culled)} culled",
        ),
    )
    return AccessLogRead(
        individual_id=individual_id,
        generated_at=datetime.now(UTC),
        entries=entries,
        culled=culled,
    )


async def find_subjects(
    session: AsyncSession, actor: Actor, *, personal_number: str
) -> Page[SubjectRead]:
    """Every registration of the person with ``personal_number`` (each agency registers
    the people it works with), for an access extract (GDPR art. 15). The number is not
    written to the log; the lookup is, flagged ``subject_lookup``, with one record per
    registration found so that the lookup shows in that person's own extract."""
    await _require_auditor(session, actor, "audit.subject_lookup")
    number = individual_service.parse_number(personal_number, "query.personal_number")
    rows = await session.execute(
        select(Individual.id, Individual.registering_agency_id)
        .where(Individual.personal_number == number.value)
        .order_by(Individual.created_at, Individual.id)
    )
    found = [SubjectRead(individual_id=i, registering_agency_id=a) for i, a in rows]
    records = [
        actor.record(
            "audit.subject_lookup",
            resource_type="individual",
            basis="auditor",
            reason=f"{len(found)} registration(s)",
            flags=[flags.SUBJECT_LOOKUP],
        )
    ]
    records += [
        actor.record(
            "audit.subject_lookup",
            resource_type="individual",
            resource_id=str(subject.individual_id),
            individual_id=subject.individual_id,
            basis="auditor",
            reason="registration found",
            flags=[flags.SUBJECT_LOOKUP],
        )
        for subject in found
    ]
    for record in records:
        await audit.append(session, record)
    return Page[SubjectRead](items=found, next_cursor=None)

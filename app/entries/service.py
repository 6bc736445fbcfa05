"""Entries: recorded by a participating agency in a category its kind may record; read
under the sharing rule (own agency, consent, or emergency grant); corrected only by the
recording agency, as a new version. Every read and denial is audited with its basis."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import ARRAY, Uuid, any_, bindparam, func, select
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncSession

from app.agencies import service as agency_service
from app.audit import writer as audit
from app.audit.records import Record
from app.auth.actor import Actor
from app.cases import service as case_service
from app.db import on_postgresql, rows_of
from app.entries.models import Entry, EntryVersion
from app.entries.schemas import CorrectionCreate, EntryCreate, EntryRead, EntryVersionRead
from app.errors import ValidationFailed
from app.events import service as events
from app.events.models import EventType, ResourceType
from app.individuals import service as individual_service
from app.individuals.service import read_basis
from app.pagination import Page
from app.policy import enforce, filters, get_engine, reads
from app.policy.engine import Action, PolicyDecision
from app.policy.entities import CaseFacts, EntryFacts
from app.policy.reads import SharedKind


def _now() -> datetime:
    return datetime.now(UTC)


async def _facts(session: AsyncSession, entry: Entry, case: CaseFacts | None) -> EntryFacts:
    return await case_service.recorded_facts(
        session, entry, case, source_agency_id=entry.source_agency_id, category=entry.category
    )


def _read_record(actor: Actor, action: str, entry: Entry, decision: PolicyDecision) -> Record:
    basis = read_basis(decision, "own_agency")
    sensitive = get_engine().reference.categories[entry.category].sensitive
    if sensitive and entry.source_agency_id != actor.agency_id:
        basis["flags"].append("sensitive_category")
    return actor.record(action, policy_id=decision.policy_id, **ENTRIES.fields(entry), **basis)


_VERSION_COLUMNS = (
    EntryVersion.entry_id,
    EntryVersion.version,
    EntryVersion.title,
    EntryVersion.body,
    EntryVersion.reason,
    EntryVersion.author_id,
    EntryVersion.recorded_at,
)
_SHOWN = tuple(c.key for c in _VERSION_COLUMNS[1:])  # EntryVersionRead's fields

# An entry's versions, oldest first, as one value of its row: an array of records (asyncpg
# reads each as a tuple of the version's shown fields), so that a page asks for its entries
# and their versions in one statement (PostgreSQL; docs/performance.md, seventh round).
_SHOWN_VERSIONS = (
    select(
        func.array_agg(aggregate_order_by(func.row(*_VERSION_COLUMNS[1:]), EntryVersion.version))
    )
    .where(EntryVersion.entry_id == Entry.id)
    .correlate(Entry)
    .scalar_subquery()
)

ENTRIES: SharedKind[Entry, EntryFacts] = SharedKind(
    model=Entry,
    resource_type="entry",
    read=Action.ENTRY_READ,
    facts=_facts,
    visible=filters.entries_visible_to,
    record=_read_record,
    shown=_SHOWN_VERSIONS,
)


_ORDER = (EntryVersion.entry_id, EntryVersion.version)
_VERSIONS = (
    select(*_VERSION_COLUMNS)
    .where(EntryVersion.entry_id.in_(bindparam("entry_ids", expanding=True)))
    .order_by(*_ORDER)
)
# The same on PostgreSQL with the ids as one array, so that it can go through rows_of.
_VERSIONS_IN_ARRAY = (
    select(*_VERSION_COLUMNS)
    .where(EntryVersion.entry_id == any_(bindparam("entry_ids", type_=ARRAY(Uuid))))
    .order_by(*_ORDER)
)
_VERSIONS_OF_ONE = (
    select(*_VERSION_COLUMNS)
    .where(EntryVersion.entry_id == bindparam("entry_id"))
    .order_by(*_ORDER)
)


# A single read's entry and its versions in one statement (a row per version), so that
# the read asks the database once for what it decides on and what it shows
# (docs/performance.md, issue 21's fourth round).
_ENTRY_COLUMNS, _ENTRY_KEYS = reads.columns_of(Entry)
_WITH_VERSIONS = (
    select(*_ENTRY_COLUMNS, *_VERSION_COLUMNS[1:])
    .join(EntryVersion, EntryVersion.entry_id == Entry.id)
    .where(Entry.id == bindparam("entry_id"))
    .order_by(EntryVersion.version)
)


async def _to_reads(session: AsyncSession, entries: list[Entry]) -> list[EntryRead]:
    """The entries as shown, their versions loaded in one statement (a page, or one)."""
    if not entries:
        return []
    versions: dict[uuid.UUID, list[EntryVersionRead]] = {e.id: [] for e in entries}
    if len(entries) == 1:
        rows = await rows_of(session, _VERSIONS_OF_ONE, {"entry_id": entries[0].id})
    elif on_postgresql(session):
        rows = await rows_of(session, _VERSIONS_IN_ARRAY, {"entry_ids": list(versions)})
    else:
        rows = (await session.execute(_VERSIONS, {"entry_ids": list(versions)})).all()
    for entry_id, *version in rows:
        versions[entry_id].append(EntryVersionRead(**dict(zip(_SHOWN, version, strict=True))))
    return [_shown(entry, versions[entry.id]) for entry in entries]


async def _to_read(session: AsyncSession, entry: Entry) -> EntryRead:
    [shown] = await _to_reads(session, [entry])
    return shown


def _shown(entry: Entry, versions: list[EntryVersionRead]) -> EntryRead:
    current = versions[-1]
    return EntryRead(
        id=entry.id,
        case_id=entry.case_id,
        category=entry.category,
        source_agency_id=entry.source_agency_id,
        recorded_at=entry.created_at,
        version=current.version,
        title=current.title,
        body=current.body,
        history=versions,
    )


async def create_entry(
    session: AsyncSession, actor: Actor, *, case_id: uuid.UUID, data: EntryCreate
) -> EntryRead:
    """Only in categories the caller's agency kind may record (policies/categories.yaml)."""
    case, _, decision = await case_service.load_case(
        session,
        actor,
        case_id,
        action=Action.ENTRY_CREATE,
        audit_action="entry.create",
        read_only=True,
    )
    case_service.require_open(case)
    category = get_engine().reference.categories.get(data.category)
    if category is None:
        raise ValidationFailed.for_field("body.category", "Unknown category.", "unknown_category")
    kind = await agency_service.kind_of(session, actor.agency_id)
    if not category.recorded_by_kind(kind):
        raise ValidationFailed.for_field(
            "body.category", "Your agency may not record in this category.", "category_not_allowed"
        )
    now = _now()
    entry = Entry(
        id=uuid.uuid4(),
        case_id=case.id,
        individual_id=case.individual_id,
        source_agency_id=actor.agency_id,
        category=data.category,
        created_by=actor.id,
        created_at=now,
        current_version=1,
    )
    first = EntryVersion(
        entry_id=entry.id,
        version=1,
        title=data.title,
        body=data.body,
        reason=None,
        author_id=actor.id,
        recorded_at=now,
    )
    session.add_all([entry, first])  # one flush: the entry's row goes first (foreign key)
    await session.flush()
    await events.emit_about(session, EventType.ENTRY_RECORDED, ResourceType.ENTRY, entry)
    await audit.append(
        session,
        actor.record(
            "entry.create",
            policy_id=decision.policy_id,
            basis="own_agency",
            **ENTRIES.fields(entry),
        ),
    )
    return _shown(entry, [EntryVersionRead.model_validate(first, from_attributes=True)])


# On PostgreSQL the same and, in the same statement, what the read is decided on: the
# individual's facts and the case's grounds (one round trip for all a read asks).
_WITH_VERSIONS_AND_FACTS = individual_service.beside_facts_and_grounds(
    _WITH_VERSIONS,
    individual_id=select(Entry.individual_id)
    .where(Entry.id == bindparam("entry_id"))
    .scalar_subquery(),
    case_id=select(Entry.case_id).where(Entry.id == bindparam("entry_id")).scalar_subquery(),
)
_VERSION_AT = len(_ENTRY_KEYS)  # a row's version number: its versions' order


async def get_entry(session: AsyncSession, actor: Actor, *, entry_id: uuid.UUID) -> EntryRead:
    asked = None
    if on_postgresql(session):
        found, asked = await individual_service.read_beside(
            session,
            actor,
            _WITH_VERSIONS_AND_FACTS,
            {"entry_id": entry_id},
            keys=_ENTRY_KEYS,
            now=_now(),
        )
        found.sort(key=lambda row: row[_VERSION_AT])
    else:
        found = list(await rows_of(session, _WITH_VERSIONS, {"entry_id": entry_id}))
    width = len(_ENTRY_KEYS)
    loaded = reads.copy_of(Entry, _ENTRY_KEYS, found[0][:width]) if found else None
    entry, _, decision = await reads.decided(
        session, actor, ENTRIES, loaded, row_id=entry_id, audit_action="entry.read", asked=asked
    )
    audit.append_at_commit(session, [_read_record(actor, "entry.read", entry, decision)])
    versions = [EntryVersionRead(**dict(zip(_SHOWN, row[width:], strict=True))) for row in found]
    return _shown(entry, versions)


async def correct_entry(
    session: AsyncSession, actor: Actor, *, entry_id: uuid.UUID, data: CorrectionCreate
) -> EntryRead:
    entry, facts, _ = await reads.readable(
        session, actor, ENTRIES, entry_id, audit_action="entry.correct", for_update=True
    )
    decision = enforce.require(
        session,
        actor,
        Action.ENTRY_CORRECT,
        facts,
        audit_action="entry.correct",
        hidden=False,
        **ENTRIES.fields(entry),
    )
    current = await session.get(EntryVersion, (entry.id, entry.current_version))
    assert current is not None
    entry.current_version += 1
    session.add(
        EntryVersion(
            entry_id=entry.id,
            version=entry.current_version,
            title=data.title or current.title,
            body=data.body,
            reason=data.reason,
            author_id=actor.id,
            recorded_at=_now(),
        )
    )
    await session.flush()
    await events.emit_about(session, EventType.ENTRY_CORRECTED, ResourceType.ENTRY, entry)
    await audit.append(
        session,
        actor.record(
            "entry.correct",
            policy_id=decision.policy_id,
            basis="own_agency",
            reason=f"version {entry.current_version}",
            **ENTRIES.fields(entry),
        ),
    )
    return await _to_read(session, entry)


async def list_entries(
    session: AsyncSession, actor: Actor, *, case_id: uuid.UUID, limit: int, cursor: str | None
) -> Page[EntryRead]:
    """Only the entries the sharing rule lets the caller read, filtered in SQL; newest first.
    One audit record per entry returned, with its basis."""
    rows, next_cursor, _case_facts, shown = await case_service.case_page(
        session, actor, ENTRIES, case_id=case_id, limit=limit, cursor=cursor, newest_first=True
    )
    if shown is None:  # SQLite: the versions in a statement of their own
        return Page[EntryRead](items=await _to_reads(session, rows), next_cursor=next_cursor)
    items = [
        _shown(entry, [EntryVersionRead(**dict(zip(_SHOWN, v, strict=True))) for v in versions])
        for entry, versions in zip(rows, shown, strict=True)
    ]
    return Page[EntryRead](items=items, next_cursor=next_cursor)

"""Reading shared content — entries, actions — under the sharing rule: one path for a single
item and one for a case's page, so every kind is decided, filtered and audited alike.

A kind says what its rows are (:class:`SharedKind`); the services keep what differs (what
the row holds, how it is shown, what a change needs).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Select, bindparam, select
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from app.audit import writer as audit
from app.audit.records import Record
from app.auth.actor import Actor
from app.cases.models import Case
from app.db import on_postgresql, rows_of
from app.individuals import service as individual_service
from app.pagination import cursor_datetime, cursor_uuid, decode_cursor, encode_cursor
from app.policy import enforce, filters, get_engine
from app.policy.engine import Action, PolicyDecision
from app.policy.entities import CaseFacts, Grounds, Resource

if TYPE_CHECKING:
    from app.individuals.service import KnownFacts

# A mapped row with ``id``, ``case_id``, ``individual_id`` and ``created_at`` (Entry,
# CaseAction). Not a Protocol: mypy does not match Mapped[...] columns against one.
RowT = TypeVar("RowT")
FactsT = TypeVar("FactsT", bound=Resource)


@dataclass(frozen=True, slots=True)
class SharedKind(Generic[RowT, FactsT]):
    model: type[RowT]
    resource_type: str  # as the audit record names it
    read: Action
    # the facts a decision needs; the case's facts are passed in when already loaded
    facts: Callable[[AsyncSession, RowT, CaseFacts | None], Awaitable[FactsT]]
    # the same rule as ``read`` in SQL (app/policy/filters.py)
    visible: Callable[[Actor, filters.Moment], ColumnElement[bool]]
    # the permit record of a read (basis, consent id or legal basis, flags)
    record: Callable[[Actor, str, RowT, PolicyDecision], Record]
    # what a page shows of each row besides its columns (a correlated subquery on the
    # row: an entry's versions), asked in the page's statement on PostgreSQL
    shown: ColumnElement[Any] | None = None

    def fields(self, row: RowT) -> dict[str, Any]:
        item: Any = row
        return {
            "resource_type": self.resource_type,
            "resource_id": str(item.id),
            "case_id": item.case_id,
            "individual_id": item.individual_id,
        }


async def readable(
    session: AsyncSession,
    actor: Actor,
    kind: SharedKind[RowT, FactsT],
    row_id: uuid.UUID,
    *,
    audit_action: str,
    for_update: bool = False,
) -> tuple[RowT, FactsT, PolicyDecision]:
    """The row if the sharing rule lets the caller read it now; else an audited 404 that
    reads exactly like one for a row that does not exist. ``for_update`` locks the row
    (PostgreSQL), so two changes of it never interleave."""
    row = (
        await session.get(kind.model, row_id, with_for_update=True)
        if for_update
        else await row_for_reading(session, kind.model, row_id)
    )
    return await decided(session, actor, kind, row, row_id=row_id, audit_action=audit_action)


async def decided(
    session: AsyncSession,
    actor: Actor,
    kind: SharedKind[RowT, FactsT],
    row: RowT | None,
    *,
    row_id: uuid.UUID,
    audit_action: str,
    asked: tuple[KnownFacts | None, Grounds] | None = None,
) -> tuple[RowT, FactsT, PolicyDecision]:
    """:func:`readable` for a row its service has loaded (``None``: there is none), with
    what the read shows in the same statement (an entry with its versions). ``asked``:
    the facts and grounds, when that statement asked them too
    (app.individuals.service.beside_facts_and_grounds)."""
    if row is None:
        # the same statements and decision as for a hidden row, so that the answer takes
        # as long: the time must not tell a guessed id exists
        await individual_service.decoy_decision(
            session, actor, kind.read, grounds=True, asked=asked is not None
        )
        raise enforce.not_found(
            session,
            actor,
            audit_action=audit_action,
            resource_type=kind.resource_type,
            resource_id=str(row_id),
        )
    # decided now, on the individual's active consents and the actor's live grants, asked
    # with the facts in one statement
    item: Any = row
    known, grounds = asked or await individual_service.facts_and_grounds(
        session,
        actor,
        individual_id=item.individual_id,
        case_id=item.case_id,
        now=datetime.now(UTC),
    )
    assert known is not None  # foreign key
    facts = await kind.facts(session, row, known.cases[item.case_id])
    decision = enforce.decide(actor, kind.read, facts, grounds)
    if not decision.allowed:
        raise enforce.deny(
            session,
            actor,
            audit_action=audit_action,
            policy_id=decision.policy_id,
            hidden=True,
            **kind.fields(row),
        )
    return row, facts, decision


def columns_of(model: type[Any]) -> tuple[list[ColumnElement[Any]], tuple[str, ...]]:
    """The mapped class's columns, and the attribute each is loaded into."""
    attributes = sa_inspect(model).column_attrs
    return [a.columns[0] for a in attributes], tuple(a.key for a in attributes)


def copy_of(model: type[RowT], keys: tuple[str, ...], values: Sequence[Any]) -> RowT:
    """A read-only copy of a row as the mapped class, filled as the ORM fills what it
    loads (its instance dictionary) but without the ORM's loading or its constructor's
    attribute events: 1.3 µs against 17 µs a row (docs/performance.md). Never added to
    a session; a change reads the row through the session, locked."""
    instance: RowT = sa_inspect(model).class_manager.new_instance()
    instance.__dict__.update(zip(keys, values, strict=True))
    return instance


_BY_ID: dict[type[Any], tuple[Select[Any], tuple[str, ...]]] = {}


async def row_for_reading(
    session: AsyncSession, model: type[RowT], row_id: uuid.UUID
) -> RowT | None:
    """The row as a detached copy of the mapped class, for reading only (a change loads
    it with ``for_update`` through the session): one statement on the hot path of every
    single read, without the ORM's loading (docs/performance.md)."""
    if model not in _BY_ID:
        [key] = sa_inspect(model).primary_key  # one id column
        columns, keys = columns_of(model)
        _BY_ID[model] = (select(*columns).where(key == bindparam("row_id")), keys)
    statement, keys = _BY_ID[model]
    found = await rows_of(session, statement, {"row_id": row_id})
    if not found:
        return None
    return copy_of(model, keys, found[0])


async def read_page(
    session: AsyncSession,
    actor: Actor,
    kind: SharedKind[RowT, FactsT],
    *,
    case: Case,
    case_facts: CaseFacts,
    grounds: Grounds,
    now: datetime,
    list_policy_id: str,
    limit: int,
    cursor: str | None,
    newest_first: bool,
) -> tuple[list[RowT], str | None, list[Any] | None]:
    """One page of the case's rows the caller may read, filtered in SQL (a page never counts
    or skips a hidden row), each confirmed by the decision point and audited with its basis,
    and one record for the list. The caller has checked that the actor may see the case
    (``list_policy_id`` is the permit that said so) and asked the case's ``grounds`` at
    ``now``: one moment for them, the filter and the decisions (every row of the page is of
    this case and individual, so one set of grounds serves them all)."""
    key = decode_cursor(cursor, 2)
    shown = kind.shown is not None and on_postgresql(session)
    statement, keys = _page_statement(
        kind, actor, newest_first=newest_first, after=key is not None, shown=shown
    )
    params = {"case_id": case.id, "limit": limit + 1, **filters.stand_in_params(actor, now)}
    if key is not None:
        params |= {"at": cursor_datetime(key[0]), "after": cursor_uuid(key[1])}
    found = await rows_of(session, statement, params)
    width = len(keys)
    rows: list[Any] = [copy_of(kind.model, keys, values[:width]) for values in found]
    more = len(rows) > limit
    rows = rows[:limit]
    extras = [values[width] for values in found[:limit]] if shown else None
    records = []
    facts = [await kind.facts(session, row, case_facts) for row in rows]
    for row, decision in zip(
        rows, enforce.decide_each(actor, kind.read, facts, grounds), strict=True
    ):
        if not decision.allowed:  # the SQL filter and the policy disagree: fail closed
            raise RuntimeError(f"{kind.resource_type} filter and policy disagree")
        records.append(kind.record(actor, f"{kind.resource_type}.read", row, decision))
    records.append(
        actor.record(
            f"{kind.resource_type}.list",
            policy_id=list_policy_id,
            resource_type=kind.resource_type,
            case_id=case.id,
            individual_id=case.individual_id,
            reason=f"{len(rows)} item(s)",
        )
    )
    audit.append_at_commit(session, records)
    next_cursor = (
        encode_cursor([rows[-1].created_at.isoformat(), str(rows[-1].id)]) if more else None
    )
    return rows, next_cursor, extras


# By kind, the actor's shape, the order, whether after a cursor, and the policy engine
# (whose legal bases the filter spells out): a page's statement, built and compiled once
# (app.db.rows_of keeps its compiled form too). The keys are finite: four kinds, the role
# and scope sets, two orders, two cursor states.
_PAGES: dict[tuple[object, ...], tuple[Select[Any], tuple[str, ...]]] = {}


def _page_statement(
    kind: SharedKind[Any, Any], actor: Actor, *, newest_first: bool, after: bool, shown: bool
) -> tuple[Select[Any], tuple[str, ...]]:
    """A page of ``kind``'s rows of one case (``case_id``) that ``actor`` may read, after a
    cursor (``at``, ``after``) or from the start, ``limit`` rows: the sharing rule's filter
    built for the actor's stand-in (app.policy.filters), so that every actor of this shape
    shares the statement and only its parameters change. With ``shown``, each row's
    ``kind.shown`` after its columns."""
    shape = (kind, filters.shape_of(actor), newest_first, after, shown, get_engine())
    found = _PAGES.get(shape)
    if found is not None:
        return found
    model: Any = kind.model  # the mapped class: its attributes are columns here
    created: InstrumentedAttribute[datetime] = model.created_at
    ident: InstrumentedAttribute[uuid.UUID] = model.id
    columns, keys = columns_of(model)
    extra = [kind.shown] if shown and kind.shown is not None else []
    query = select(*columns, *extra).where(
        model.case_id == bindparam("case_id"),
        kind.visible(filters.stand_in(actor), filters.NOW),
    )
    if after:
        at = bindparam("at", type_=created.type)
        last = bindparam("after", type_=ident.type)
        if newest_first:
            query = query.where((created < at) | ((created == at) & (ident < last)))
        else:
            query = query.where((created > at) | ((created == at) & (ident > last)))
    order = (created.desc(), ident.desc()) if newest_first else (created, ident)
    built = (query.order_by(*order).limit(bindparam("limit")), keys)
    _PAGES[shape] = built
    return built

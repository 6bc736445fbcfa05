"""Reading shared content — entries, actions — under the sharing rule: one path for a single
item and one for a case's page, so every kind is decided, filtered and audited alike.

A kind says what its rows are (:class:`SharedKind`); the services keep what differs (what
the row holds, how it is shown, what a change needs).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Select, bindparam, select
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from app.audit import writer as audit
from app.audit.records import Record
from app.auth.actor import Actor
from app.cases.models import Case
from app.db import rows_of
from app.individuals import service as individual_service
from app.pagination import cursor_datetime, cursor_uuid, decode_cursor, encode_cursor
from app.policy import enforce
from app.policy.engine import Action, PolicyDecision
from app.policy.entities import CaseFacts, Resource
from app.policy.grounds import grounds_for

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
    visible: Callable[[Actor, datetime], ColumnElement[bool]]
    # the permit record of a read (basis, consent id or legal basis, flags)
    record: Callable[[Actor, str, RowT, PolicyDecision], Record]

    def fields(self, row: RowT) -> dict[str, Any]:
        item: Any = row
        return {
            "resource_type": self.resource_type,
            "resource_id": str(item.id),
            "case_id": item.case_id,
            "individual_id": item.individual_id,
        }


async def decide_read(
    session: AsyncSession, actor: Actor, kind: SharedKind[RowT, FactsT], row: RowT, facts: FactsT
) -> PolicyDecision:
    """Decided now, on the individual's active consents and the actor's live grants."""
    item: Any = row
    grounds = await grounds_for(
        session,
        actor,
        individual_id=item.individual_id,
        case_id=item.case_id,
        now=datetime.now(UTC),
    )
    return enforce.decide(actor, kind.read, facts, grounds)


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
        else await _row_to_read(session, kind.model, row_id)
    )
    if row is None:
        # the same statements and decision as for a hidden row, so that the answer takes
        # as long: the time must not tell a guessed id exists
        await individual_service.decoy_decision(session, actor, kind.read, grounds=True)
        raise enforce.not_found(
            session,
            actor,
            audit_action=audit_action,
            resource_type=kind.resource_type,
            resource_id=str(row_id),
        )
    facts = await kind.facts(session, row, None)
    decision = await decide_read(session, actor, kind, row, facts)
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


_BY_ID: dict[type[Any], tuple[Select[Any], tuple[str, ...]]] = {}


async def _row_to_read(session: AsyncSession, model: type[RowT], row_id: uuid.UUID) -> RowT | None:
    """The row as a detached copy of the mapped class, for reading only (a change loads
    it with ``for_update`` through the session): one statement on the hot path of every
    single read, without the ORM's loading (docs/performance.md)."""
    if model not in _BY_ID:
        mapper = sa_inspect(model)
        [key] = mapper.primary_key  # one id column
        attributes = mapper.column_attrs
        statement = select(*(a.columns[0] for a in attributes)).where(key == bindparam("row_id"))
        _BY_ID[model] = (statement, tuple(a.key for a in attributes))
    statement, keys = _BY_ID[model]
    found = await rows_of(session, statement, {"row_id": row_id})
    if not found:
        return None
    return model(**dict(zip(keys, found[0], strict=True)))


async def read_page(
    session: AsyncSession,
    actor: Actor,
    kind: SharedKind[RowT, FactsT],
    *,
    case: Case,
    case_facts: CaseFacts,
    list_policy_id: str,
    limit: int,
    cursor: str | None,
    newest_first: bool,
) -> tuple[list[RowT], str | None]:
    """One page of the case's rows the caller may read, filtered in SQL (a page never counts
    or skips a hidden row), each confirmed by the decision point and audited with its basis,
    and one record for the list. The caller has checked that the actor may see the case
    (``list_policy_id`` is the permit that said so)."""
    model: Any = kind.model  # the mapped class: its attributes are columns here
    created: InstrumentedAttribute[datetime] = model.created_at
    ident: InstrumentedAttribute[uuid.UUID] = model.id
    # One moment for the filter and the decisions; every row of the page is of this case
    # and individual, so one set of grounds serves them all.
    now = datetime.now(UTC)
    grounds = await grounds_for(
        session, actor, individual_id=case.individual_id, case_id=case.id, now=now
    )
    query = select(kind.model).where(model.case_id == case.id, kind.visible(actor, now))
    key = decode_cursor(cursor, 2)
    if key is not None:
        at, after = cursor_datetime(key[0]), cursor_uuid(key[1])
        if newest_first:
            query = query.where((created < at) | ((created == at) & (ident < after)))
        else:
            query = query.where((created > at) | ((created == at) & (ident > after)))
    order = (created.desc(), ident.desc()) if newest_first else (created, ident)
    rows: list[Any] = list(
        (await session.execute(query.order_by(*order).limit(limit + 1))).scalars()
    )
    more = len(rows) > limit
    rows = rows[:limit]
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
    return rows, next_cursor

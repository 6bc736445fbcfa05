"""Emitting events in the change's transaction, and the caller's feed of them.

:func:`emit` is called by each service next to the change and its audit record: if the
change commits, its event exists; if it rolls back, so does the event. The feed shows a
caller only events about what it may read when it asks (app.policy.filters.events_visible_to,
the sharing rule in SQL), and is itself audited.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import String, Table, Uuid, bindparam, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit import writer as audit
from app.audit.models import AuditChainHead
from app.auth.actor import Actor
from app.db import UtcDateTime, before_commit
from app.errors import ValidationFailed
from app.events import outbox
from app.events.models import Event, EventType, ResourceType
from app.events.schemas import EventPage, EventRead
from app.pagination import cursor_int, decode_cursor, encode_cursor
from app.policy import enforce, filters
from app.policy.engine import Action
from app.policy.entities import AgencyFacts

_COLUMNS = (
    "id",
    "type",
    "occurred_at",
    "case_id",
    "individual_id",
    "resource_type",
    "resource_id",
)
# The chain head is locked (PostgreSQL; SQLite's write lock serialises anyway) before the
# event's ``seq`` is drawn. Every change also appends to the audit chain, which holds that
# lock until COMMIT, so events commit in ``seq`` order: a feed reader that has seen seq N
# will never later find an event below N committed. Usually already held: then free.
# the table, not the mapped class: an ORM insert with parameters is a bulk insert
_TABLE = cast(Table, Event.__table__)
_HEAD = select(AuditChainHead.id).where(AuditChainHead.id == 1).with_for_update().cte("head")
_EMIT = (
    insert(_TABLE)
    .from_select(
        list(_COLUMNS),
        select(
            bindparam("id", type_=Uuid()),
            bindparam("type", type_=String()),
            bindparam("occurred_at", type_=UtcDateTime()),
            bindparam("case_id", type_=Uuid()),
            bindparam("individual_id", type_=Uuid()),
            bindparam("resource_type", type_=String()),
            bindparam("resource_id", type_=Uuid()),
        ).select_from(_HEAD),
    )
    .returning(_TABLE.c.seq)
)


class EventNotWritten(RuntimeError):
    """The outbox insert wrote no row (no chain head): the change must not commit."""


async def emit(
    session: AsyncSession,
    type: EventType,
    *,
    resource_type: ResourceType,
    resource_id: uuid.UUID,
    case_id: uuid.UUID | None = None,
    individual_id: uuid.UUID | None = None,
    at: datetime | None = None,
) -> None:
    """The change's event, in the session's transaction (the outbox): it commits with the
    change or not at all. Emitted before the change's audit record is appended, it is
    written in the same round trip as the record (PostgreSQL); otherwise, at the latest,
    just before COMMIT."""
    first = outbox.queue(
        session,
        outbox.Waiting(
            id=uuid.uuid4(),
            type=type.value,
            occurred_at=at or datetime.now(UTC),
            case_id=case_id,
            individual_id=individual_id,
            resource_type=resource_type.value,
            resource_id=resource_id,
        ),
    )
    if first:
        before_commit(session, write_waiting)


async def write_waiting(session: AsyncSession) -> None:
    """Just before COMMIT: the events no audit append took along (SQLite; an event emitted
    after its record), each under the chain head's lock."""
    while (event := outbox.take(session)) is not None:
        result = await session.execute(_EMIT, event.params())
        if result.scalar_one_or_none() is None:
            raise EventNotWritten(event.type)


async def emit_about(
    session: AsyncSession,
    type: EventType,
    resource_type: ResourceType,
    row: Any,
    *,
    at: datetime | None = None,
) -> None:
    """:func:`emit` for a row of a case (a consent, an entry, an action, a grant): its
    ``id``, ``case_id`` and ``individual_id``."""
    await emit(
        session,
        type,
        resource_type=resource_type,
        resource_id=row.id,
        case_id=row.case_id,
        individual_id=row.individual_id,
        at=at,
    )


def disclosure_fields(event: Event) -> dict[str, Any]:
    """What a record of an event shown (in the feed, or sent to a webhook) names: the event,
    whom and which case it is about, and the rule that lets it be shown."""
    return {
        "resource_type": "event",
        "resource_id": str(event.id),
        "case_id": event.case_id,
        "individual_id": event.individual_id,
        "basis": "policy",
        "policy_id": "event.list.case_staff",
    }


def _cursor(actor: Actor, seq: int) -> str:
    return encode_cursor([str(seq), str(actor.id)])


def _after(actor: Actor, after: str | None) -> int:
    """The seq in a cursor this caller was handed; another caller's cursor is a 422."""
    key = decode_cursor(after, 2)
    if key is None:
        return 0
    if key[1] != str(actor.id):
        raise ValidationFailed.for_field(
            "query.after", "This cursor was handed to another caller.", "cursor_invalid"
        )
    return cursor_int(key[0])


async def feed(session: AsyncSession, actor: Actor, *, after: str | None, limit: int) -> EventPage:
    """Events after the cursor, oldest first, that the caller may see now."""
    seq = _after(actor, after)
    enforce.require(
        session,
        actor,
        Action.EVENT_LIST,
        AgencyFacts(id=actor.agency_id),
        audit_action="event.list",
        hidden=False,
        resource_type="event",
    )
    now = datetime.now(UTC)
    rows = list(
        (
            await session.execute(
                select(Event)
                .where(Event.seq > seq, filters.events_visible_to(actor, now))
                .order_by(Event.seq)
                .limit(limit)
            )
        ).scalars()
    )
    # one record per event shown (it tells the caller something happened to whom), and
    # the list's own; written together just before the commit
    audit.append_at_commit(
        session,
        [
            *(
                actor.record("event.read", reason=row.type, **disclosure_fields(row))
                for row in rows
            ),
            actor.record("event.list", resource_type="event", reason=f"{len(rows)} item(s)"),
        ],
    )
    last = rows[-1].seq if rows else seq
    return EventPage(
        items=[
            EventRead(
                id=row.id,
                type=EventType(row.type),
                occurred_at=row.occurred_at,
                case_id=row.case_id,
                individual_id=row.individual_id,
                resource_type=ResourceType(row.resource_type),
                resource_id=row.resource_id,
            )
            for row in rows
        ],
        next_cursor=_cursor(actor, last),
    )

"""Events that time makes, not a request: ``consent.expiring`` 14 days before a consent
ends, ``action.overdue`` the day after an unfinished action was due. Emitted by the worker,
once each (the event log itself says whether one was emitted already).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.actions.models import ActionStatus, CaseAction
from app.consents.models import Consent
from app.events import service as events
from app.events.models import Event, EventType, ResourceType
from app.policy.filters import consent_active

EXPIRING_WITHIN = timedelta(days=14)
BATCH = 200


def _not_yet(type: EventType, resource_type: ResourceType, column: Any) -> ColumnElement[bool]:
    return ~exists(
        select(Event.seq).where(
            Event.resource_type == resource_type.value,
            Event.resource_id == column,
            Event.type == type.value,
        )
    )


async def emit_due(session: AsyncSession, now: datetime | None = None) -> int:
    """Emit the time-driven events that are due and not emitted yet; returns how many."""
    now = now or datetime.now(UTC)
    today: date = now.date()
    emitted = 0
    expiring = await session.execute(
        select(Consent)
        .where(
            consent_active(now),
            Consent.valid_until <= now + EXPIRING_WITHIN,
            _not_yet(EventType.CONSENT_EXPIRING, ResourceType.CONSENT, Consent.id),
        )
        .limit(BATCH)
    )
    for consent in expiring.scalars():
        await events.emit_about(
            session, EventType.CONSENT_EXPIRING, ResourceType.CONSENT, consent, at=now
        )
        emitted += 1
    overdue = await session.execute(
        select(CaseAction)
        .where(
            CaseAction.due_date < today,
            CaseAction.status.in_([ActionStatus.PLANNED.value, ActionStatus.IN_PROGRESS.value]),
            _not_yet(EventType.ACTION_OVERDUE, ResourceType.ACTION, CaseAction.id),
        )
        .limit(BATCH)
    )
    for action in overdue.scalars():
        await events.emit_about(
            session, EventType.ACTION_OVERDUE, ResourceType.ACTION, action, at=now
        )
        emitted += 1
    await events.write_waiting(session)  # no audit record takes these along
    return emitted

"""Events waiting in a session to be written with the change's audit record.

:func:`app.events.service.emit` queues the event here; the audit writer, appending the
change's record on PostgreSQL, writes the first waiting event in the same statement (one
round trip for both, after the chain head is locked, so the event's ``seq`` follows commit
order); whatever still waits at COMMIT is written then (app.events.service). A module of
its own, importing nothing of the audit or the events service, so both can use it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

_WAITING = "samverkan.events.waiting"


@dataclass(frozen=True, slots=True)
class Waiting:
    id: uuid.UUID
    type: str
    occurred_at: datetime
    case_id: uuid.UUID | None
    individual_id: uuid.UUID | None
    resource_type: str
    resource_id: uuid.UUID

    def params(self, prefix: str = "") -> dict[str, Any]:
        return {
            f"{prefix}id": self.id,
            f"{prefix}type": self.type,
            f"{prefix}occurred_at": self.occurred_at,
            f"{prefix}case_id": self.case_id,
            f"{prefix}individual_id": self.individual_id,
            f"{prefix}resource_type": self.resource_type,
            f"{prefix}resource_id": self.resource_id,
        }


def queue(session: AsyncSession, event: Waiting) -> bool:
    """Queue ``event``; ``True`` if the queue was empty (the caller arranges the commit)."""
    waiting: list[Waiting] = session.info.setdefault(_WAITING, [])
    waiting.append(event)
    return len(waiting) == 1


def take(session: AsyncSession) -> Waiting | None:
    """The oldest waiting event, removed from the queue."""
    waiting: list[Waiting] = session.info.get(_WAITING, [])
    return waiting.pop(0) if waiting else None

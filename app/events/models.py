"""Events: one row per change, written in the change's own transaction (an outbox).

An event is thin: its type, when, and the identifiers of what changed, never content or
names, so that whoever receives it reads the resource with their own rights.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Index, Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UtcDateTime


class EventType(StrEnum):
    """API.md, "Integration with municipal systems"; ``emergency.ended`` and
    ``case.threat_raised`` (a raise to high or critical: seen only by whoever may read the
    threat assessment) are additions."""

    INDIVIDUAL_REGISTERED = "individual.registered"
    INDIVIDUAL_UPDATED = "individual.updated"
    CASE_OPENED = "case.opened"
    CASE_UPDATED = "case.updated"
    CASE_CLOSED = "case.closed"
    PARTICIPANT_ADDED = "participant.added"
    PARTICIPANT_REMOVED = "participant.removed"
    CONSENT_REGISTERED = "consent.registered"
    CONSENT_WITHDRAWN = "consent.withdrawn"
    CONSENT_SUPERSEDED = "consent.superseded"
    CONSENT_EXPIRING = "consent.expiring"
    ENTRY_RECORDED = "entry.recorded"
    ENTRY_CORRECTED = "entry.corrected"
    ACTION_PLANNED = "action.planned"
    ACTION_UPDATED = "action.updated"
    ACTION_OVERDUE = "action.overdue"
    EMERGENCY_GRANTED = "emergency.granted"
    EMERGENCY_ENDED = "emergency.ended"
    GOAL_UPDATED = "goal.updated"
    MEETING_RECORDED = "meeting.recorded"
    CASE_THREAT_RAISED = "case.threat_raised"


class ResourceType(StrEnum):
    """What an event's ``resource_id`` names; decides who may see the event."""

    INDIVIDUAL = "individual"
    CASE = "case"
    PARTICIPANT = "participant"  # resource_id: the agency that joined or left the case
    CONSENT = "consent"
    ENTRY = "entry"
    ACTION = "action"
    EMERGENCY_GRANT = "emergency_grant"
    GOAL = "goal"
    MEETING = "meeting"
    THREAT = "threat_assessment"  # resource_id: the case whose threat assessment changed


class Event(Base):
    """``seq`` orders the feed. It is drawn while the transaction holds the audit chain's
    head (app.events.service.emit), so events commit in ``seq`` order and a reader's
    cursor never passes an event that commits later."""

    __tablename__ = "event"
    __table_args__ = (
        Index("ix_event_resource", "resource_type", "resource_id"),
        Index("ix_event_occurred_at", "occurred_at"),
    )

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True)
    type: Mapped[str] = mapped_column(String(40))
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime)
    case_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    individual_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    resource_type: Mapped[str] = mapped_column(String(32))
    resource_id: Mapped[uuid.UUID] = mapped_column(Uuid)

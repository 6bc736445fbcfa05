"""Cases (ärenden) and the agencies that take part in them."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UtcDateTime


class Programme(StrEnum):
    SIG = "sig"
    TREFAS = "trefas"
    SSPF = "sspf"
    OTHER = "other"


class CaseStatus(StrEnum):
    OPEN = "open"
    ACTIVE = "active"
    PAUSED = "paused"
    CLOSED = "closed"


class ClosureReason(StrEnum):
    COMPLETED = "completed"
    DISCONTINUED = "discontinued"
    MOVED = "moved"
    CONSENT_WITHDRAWN = "consent_withdrawn"
    OTHER = "other"


# open -> active -> paused -> closed; the lead coordinator reopens a closed case as active.
TRANSITIONS: dict[CaseStatus, frozenset[CaseStatus]] = {
    CaseStatus.OPEN: frozenset({CaseStatus.ACTIVE, CaseStatus.CLOSED}),
    CaseStatus.ACTIVE: frozenset({CaseStatus.PAUSED, CaseStatus.CLOSED}),
    CaseStatus.PAUSED: frozenset({CaseStatus.ACTIVE, CaseStatus.CLOSED}),
    CaseStatus.CLOSED: frozenset({CaseStatus.ACTIVE}),
}


class Case(Base):
    __tablename__ = "case_file"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    individual_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("individual.id"), index=True)
    programme: Mapped[str] = mapped_column(String(10))
    lead_agency_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agency.id"), index=True)
    status: Mapped[str] = mapped_column(String(10))
    closure_reason: Mapped[str | None] = mapped_column(String(20))
    created_by: Mapped[uuid.UUID] = mapped_column(Uuid)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class CaseParticipant(Base):
    """An agency taking part in a case; removing the row ends its access."""

    __tablename__ = "case_participant"

    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("case_file.id"), primary_key=True)
    agency_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("agency.id"), primary_key=True, index=True
    )
    added_at: Mapped[datetime] = mapped_column(UtcDateTime)
    added_by: Mapped[uuid.UUID] = mapped_column(Uuid)


class CaseAssignment(Base):
    """A user of a participating agency assigned to the case."""

    __tablename__ = "case_assignment"

    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("case_file.id"), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("app_user.id"), primary_key=True)
    agency_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agency.id"))

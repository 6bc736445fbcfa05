"""Cases (ärenden) and the agencies that take part in them."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import Date, ForeignKey, String, UniqueConstraint, Uuid
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
    EXITED = "exited"
    RELOCATED = "relocated"
    IN_CUSTODY = "in_custody"
    DECEASED = "deceased"
    DECLINED = "declined"


class CustodyStatus(StrEnum):
    """Frihetsberövande: none, häktad (remanded), avtjänar straff (serving), frigiven."""

    NONE = "none"
    REMANDED = "remanded"
    SERVING = "serving"
    RELEASED = "released"


class ThreatLevel(StrEnum):
    """The joint threat assessment (hotbedömning); high and critical bring in the police's
    witness and person protection and are flagged for the lead coordinator."""

    NONE = "none"
    LOW = "low"
    ELEVATED = "elevated"
    HIGH = "high"
    CRITICAL = "critical"


RAISED_THREAT = frozenset({ThreatLevel.HIGH, ThreatLevel.CRITICAL})
# Days to the next threat review when the assessment names none.
REVIEW_INTERVAL_DAYS: dict[ThreatLevel, int] = {
    ThreatLevel.LOW: 90,
    ThreatLevel.ELEVATED: 30,
    ThreatLevel.HIGH: 14,
    ThreatLevel.CRITICAL: 7,
}


class ExitStatus(StrEnum):
    """Avhopp: a young person's wish to leave crime, and how far it has come."""

    NONE = "none"
    CONSIDERING = "considering"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"


class LinkKind(StrEnum):
    CONTINUES = "continues"  # the case continues an earlier one (Trefas continues as SIG)
    RELATED = "related"


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
    # Custody and exit: information of category ``plan``, recorded by the lead agency.
    custody_status: Mapped[str] = mapped_column(
        String(10), default=CustodyStatus.NONE.value, server_default="none"
    )
    release_on: Mapped[date | None] = mapped_column(Date)
    exit_status: Mapped[str] = mapped_column(
        String(12), default=ExitStatus.NONE.value, server_default="none"
    )
    exit_requested_on: Mapped[date | None] = mapped_column(Date)
    # The threat assessment: category ``threat_assessment``, recorded by ``threat_agency_id``.
    threat_level: Mapped[str] = mapped_column(
        String(10), default=ThreatLevel.NONE.value, server_default="none"
    )
    threat_reviewed_on: Mapped[date | None] = mapped_column(Date)
    threat_review_due_on: Mapped[date | None] = mapped_column(Date)
    threat_agency_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("agency.id"))
    # set when the level is raised to high or critical; cleared by the next review
    threat_flagged_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


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


class CaseLink(Base):
    """A link made on ``case_id`` to ``linked_case_id``: ``continues`` points at the case it
    continues (of the same individual), ``related`` at any other case."""

    __tablename__ = "case_link"
    __table_args__ = (UniqueConstraint("case_id", "linked_case_id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("case_file.id"), index=True)
    linked_case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("case_file.id"), index=True)
    kind: Mapped[str] = mapped_column(String(10))
    created_by: Mapped[uuid.UUID] = mapped_column(Uuid)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)

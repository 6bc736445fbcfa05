"""Legal holds (bevarandebeslut): a case or an individual that retention never culls."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UtcDateTime


class HoldStatus(StrEnum):
    """requested -> active (approved) or rejected; active -> lift_requested -> lifted
    (approved) or back to active (rejected)."""

    REQUESTED = "requested"
    ACTIVE = "active"
    LIFT_REQUESTED = "lift_requested"
    LIFTED = "lifted"
    REJECTED = "rejected"


# A hold protects from the moment it is asked for until its lifting is approved: a run
# between a request and its decision keeps the data, as a decision may yet need it.
PROTECTING = frozenset({HoldStatus.REQUESTED, HoldStatus.ACTIVE, HoldStatus.LIFT_REQUESTED})


class LegalHold(Base):
    __tablename__ = "legal_hold"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    individual_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("individual.id"), index=True)
    case_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("case_file.id"), index=True)
    agency_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agency.id"), index=True)
    status: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text)
    requested_by: Mapped[uuid.UUID] = mapped_column(Uuid)
    requested_at: Mapped[datetime] = mapped_column(UtcDateTime)
    decided_by: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    decision_note: Mapped[str | None] = mapped_column(Text)
    lift_reason: Mapped[str | None] = mapped_column(Text)
    lift_requested_by: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    lift_requested_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    lifted_by: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    lifted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

"""Emergency access (break-the-glass): a time-limited grant under a named legal basis."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UtcDateTime


class EmergencyGrant(Base):
    __tablename__ = "emergency_grant"
    __table_args__ = (Index("ix_emergency_grant_user_id_case_id", "user_id", "case_id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("case_file.id"), index=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("app_user.id"))
    agency_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agency.id"))
    legal_basis: Mapped[str] = mapped_column(String(40))
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # ended before it expired (DELETE /emergency-access/{id})
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    ended_by: Mapped[uuid.UUID | None] = mapped_column(Uuid)


class EmergencyGrantCategory(Base):
    __tablename__ = "emergency_grant_category"

    grant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("emergency_grant.id"), primary_key=True)
    category: Mapped[str] = mapped_column(String(40), primary_key=True)

"""Meetings (samverkansmöten) of a case: who met, whether the young person was there, the
minutes, and the decisions, each of which became a planned action. Information of category
``plan``, recorded by the agency of whoever recorded the meeting."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UtcDateTime


class MeetingKind(StrEnum):
    INTAKE = "intake"
    PLANNING = "planning"
    FOLLOW_UP = "follow_up"
    RELEASE_PLANNING = "release_planning"
    CLOSING = "closing"
    OTHER = "other"


class Meeting(Base):
    __tablename__ = "meeting"
    __table_args__ = (Index("ix_meeting_case_id_created_at", "case_id", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("case_file.id"))
    individual_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("individual.id"), index=True)
    agency_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agency.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    held_at: Mapped[datetime] = mapped_column(UtcDateTime)
    individual_present: Mapped[bool] = mapped_column(Boolean)
    minutes: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[uuid.UUID] = mapped_column(Uuid)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class MeetingAttendee(Base):
    """A participating agency's representative (``agency_id``, optionally the user), or a
    guardian of the young person (``guardian_id``: a private person, identity data)."""

    __tablename__ = "meeting_attendee"

    meeting_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("meeting.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    agency_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("agency.id"))
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("app_user.id"))
    guardian_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("guardian.id"))
    role: Mapped[str | None] = mapped_column(String(100))

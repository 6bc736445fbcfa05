"""Goals (mål) of a case's plan: what the young person and the agencies aim for, by area,
followed up until achieved or given up. Information of category ``plan``, recorded by the
goal's agency (the agency of whoever set it)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, Date, ForeignKey, Index, Integer, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UtcDateTime


class GoalArea(StrEnum):
    EDUCATION = "education"
    WORK = "work"
    HOUSING = "housing"
    HEALTH = "health"
    FAMILY = "family"
    LEISURE = "leisure"
    CRIMINALITY = "criminality"
    SUBSTANCE_USE = "substance_use"
    OTHER = "other"


class GoalStatus(StrEnum):
    OPEN = "open"
    ACHIEVED = "achieved"
    PARTLY_ACHIEVED = "partly_achieved"
    NOT_ACHIEVED = "not_achieved"
    ABANDONED = "abandoned"


class Goal(Base):
    __tablename__ = "goal"
    __table_args__ = (
        Index("ix_goal_case_id_created_at", "case_id", "created_at"),
        CheckConstraint(
            "status IN ('open', 'achieved', 'partly_achieved', 'not_achieved', 'abandoned')",
            name="status",
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("case_file.id"))
    individual_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("individual.id"), index=True)
    agency_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agency.id"), index=True)
    area: Mapped[str] = mapped_column(String(20))
    description: Mapped[str] = mapped_column(Text)
    set_on: Mapped[date] = mapped_column(Date)
    target_date: Mapped[date] = mapped_column(Date)
    follow_up_on: Mapped[date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(20))
    outcome: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer)
    created_by: Mapped[uuid.UUID] = mapped_column(Uuid)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_by: Mapped[uuid.UUID] = mapped_column(Uuid)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class GoalFollowUp(Base):
    """One follow-up of a goal: the status, outcome and next date it left, and a note."""

    __tablename__ = "goal_follow_up"

    goal_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("goal.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    status: Mapped[str] = mapped_column(String(20))
    follow_up_on: Mapped[date | None] = mapped_column(Date)
    outcome: Mapped[str | None] = mapped_column(Text)
    note: Mapped[str | None] = mapped_column(Text)
    recorded_by: Mapped[uuid.UUID] = mapped_column(Uuid)
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime)

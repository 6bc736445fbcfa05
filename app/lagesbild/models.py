"""The weekly lägesbild: each area of a district rated jointly by social services and the
police on a five-level scale, week by week. No personal data belongs here."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import IntEnum, StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UtcDateTime


class Level(IntEnum):
    """1 normalt läge … 5 kritiskt läge (labels: policies/labels.yaml, lagesbild_level)."""

    NORMAL = 1
    DEVIATING = 2
    WORRYING = 3
    SERIOUS = 4
    CRITICAL = 5


class CriticalEvent(StrEnum):
    SHOOTING = "shooting"
    EXPLOSION = "explosion"
    ARSON = "arson"
    OTHER_VIOLENCE = "other_violence"


class Area(Base):
    """An area of a district (e.g. Vällingby centrum), read by the staff of the agencies of
    its municipality."""

    __tablename__ = "area"
    __table_args__ = (UniqueConstraint("municipality", "name_key"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    municipality: Mapped[str] = mapped_column(String(100), index=True)
    district: Mapped[str | None] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(100))
    name_key: Mapped[str] = mapped_column(String(100))  # the name, case-folded: unique
    created_by: Mapped[uuid.UUID] = mapped_column(Uuid)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Assessment(Base):
    """One area's level in one ISO week, and which agencies agreed on it."""

    __tablename__ = "lagesbild_assessment"
    __table_args__ = (CheckConstraint("level BETWEEN 1 AND 5", name="level"),)

    area_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("area.id"), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    week: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    level: Mapped[int] = mapped_column(Integer)
    critical_events: Mapped[list[str]] = mapped_column(JSON)
    note: Mapped[str | None] = mapped_column(Text)
    agreed_by: Mapped[list[str]] = mapped_column(JSON)  # agency ids
    version: Mapped[int] = mapped_column(Integer)
    recorded_by: Mapped[uuid.UUID] = mapped_column(Uuid)
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime)


class AssessmentVersion(Base):
    """What a correction replaced."""

    __tablename__ = "lagesbild_assessment_version"

    area_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("area.id"), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    week: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    before: Mapped[dict[str, Any]] = mapped_column(JSON)
    recorded_by: Mapped[uuid.UUID] = mapped_column(Uuid)
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime)

"""Individuals (the young person) and their guardians (vårdnadshavare)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, Date, ForeignKey, Integer, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UtcDateTime


class Sex(StrEnum):
    """Optional, for follow-up statistics; ``unknown`` unless given."""

    FEMALE = "female"
    MALE = "male"
    UNKNOWN = "unknown"


class Individual(Base):
    """One agency's registration of a person. The same person registered by two agencies
    is two records: a registration never reveals that another agency knows the person."""

    __tablename__ = "individual"
    __table_args__ = (
        UniqueConstraint("registering_agency_id", "personal_number"),
        UniqueConstraint("reserve_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    registering_agency_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agency.id"), index=True)
    personal_number: Mapped[str | None] = mapped_column(String(12))
    number_kind: Mapped[str | None] = mapped_column(String(20))
    reserve_id: Mapped[str | None] = mapped_column(String(20))
    given_name: Mapped[str] = mapped_column(String(100))
    family_name: Mapped[str] = mapped_column(String(100))
    birth_date: Mapped[date] = mapped_column(Date)
    protected_identity: Mapped[bool] = mapped_column(Boolean)
    sex: Mapped[str] = mapped_column(
        String(10), default=Sex.UNKNOWN.value, server_default=Sex.UNKNOWN.value
    )
    created_by: Mapped[uuid.UUID] = mapped_column(Uuid)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    updated_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class Guardian(Base):
    __tablename__ = "guardian"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    individual_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("individual.id"), index=True)
    given_name: Mapped[str] = mapped_column(String(100))
    family_name: Mapped[str] = mapped_column(String(100))
    personal_number: Mapped[str | None] = mapped_column(String(12))
    has_custody: Mapped[bool] = mapped_column(Boolean)
    contact: Mapped[str | None] = mapped_column(String(200))


class IndividualVersion(Base):
    """One change of an individual or one of their guardians: who, when, and the values
    before it (identity data: shown only where the identity is)."""

    __tablename__ = "individual_version"

    individual_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("individual.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    guardian_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("guardian.id"))
    change: Mapped[str] = mapped_column(String(20))
    before: Mapped[dict[str, Any]] = mapped_column(JSON)
    changed_by: Mapped[uuid.UUID] = mapped_column(Uuid)
    changed_at: Mapped[datetime] = mapped_column(UtcDateTime)

"""Individuals (the young person) and their guardians (vårdnadshavare)."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import Boolean, Date, ForeignKey, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UtcDateTime


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
    created_by: Mapped[uuid.UUID] = mapped_column(Uuid)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Guardian(Base):
    __tablename__ = "guardian"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    individual_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("individual.id"), index=True)
    given_name: Mapped[str] = mapped_column(String(100))
    family_name: Mapped[str] = mapped_column(String(100))
    personal_number: Mapped[str | None] = mapped_column(String(12))
    has_custody: Mapped[bool] = mapped_column(Boolean)

"""One row per reference: the agency that registered it, the system, the id there.

Unique per (agency, system, id): one agency's Treserva id names one record of theirs.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UtcDateTime


class ExternalRef(Base):
    __tablename__ = "external_ref"
    __table_args__ = (
        UniqueConstraint("agency_id", "system", "external_id", name="uq_external_ref_agency"),
        CheckConstraint("(individual_id IS NULL) <> (case_id IS NULL)", name="individual_or_case"),
        Index("ix_external_ref_lookup", "system", "external_id"),
        Index("ix_external_ref_individual_id", "individual_id"),
        Index("ix_external_ref_case_id", "case_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    agency_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agency.id"))
    system: Mapped[str] = mapped_column(String(64))
    external_id: Mapped[str] = mapped_column(String(128))
    individual_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("individual.id"))
    case_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("case_file.id"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_by: Mapped[uuid.UUID] = mapped_column(Uuid)

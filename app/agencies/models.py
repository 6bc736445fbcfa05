"""Agencies: the organisation units that take part in cases."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UtcDateTime


class AgencyKind(StrEnum):
    SOCIALTJANST = "socialtjanst"
    POLIS = "polis"
    KRIMINALVARD = "kriminalvard"
    SKOLA = "skola"
    FRITID = "fritid"
    OTHER = "other"


class Agency(Base):
    __tablename__ = "agency"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    # Ten digits, no separator. Not unique: a municipality's units share its number.
    organisation_number: Mapped[str] = mapped_column(String(10))
    municipality: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)

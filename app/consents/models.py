"""Consents (samtycken): immutable once registered; withdrawal is a separate, dated event."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Integer, LargeBinary, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UtcDateTime


class ConsentMethod(StrEnum):
    PAPER = "paper"
    DIGITAL = "digital"


class SignatoryRole(StrEnum):
    INDIVIDUAL = "individual"
    GUARDIAN = "guardian"


class ConsentStatus(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    EXPIRED = "expired"
    WITHDRAWN = "withdrawn"
    SUPERSEDED = "superseded"


class Consent(Base):
    __tablename__ = "consent"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("case_file.id"), index=True)
    individual_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("individual.id"), index=True)
    purpose: Mapped[str] = mapped_column(Text)
    valid_from: Mapped[datetime] = mapped_column(UtcDateTime)
    valid_until: Mapped[datetime] = mapped_column(UtcDateTime)
    method: Mapped[str] = mapped_column(String(10))
    supersedes_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("consent.id"))
    # the successor's valid_from: from then on this consent no longer applies
    superseded_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    registered_by: Mapped[uuid.UUID] = mapped_column(Uuid)
    registered_at: Mapped[datetime] = mapped_column(UtcDateTime)
    withdrawn_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    withdrawal_reason: Mapped[str | None] = mapped_column(Text)
    withdrawn_by: Mapped[uuid.UUID | None] = mapped_column(Uuid)


class ConsentAgency(Base):
    __tablename__ = "consent_agency"

    consent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("consent.id"), primary_key=True)
    agency_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("agency.id"), primary_key=True, index=True
    )


class ConsentCategory(Base):
    __tablename__ = "consent_category"

    consent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("consent.id"), primary_key=True)
    category: Mapped[str] = mapped_column(String(40), primary_key=True)


class ConsentSignatory(Base):
    __tablename__ = "consent_signatory"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    consent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("consent.id"), index=True)
    role: Mapped[str] = mapped_column(String(10))
    guardian_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("guardian.id"))
    name: Mapped[str] = mapped_column(String(200))
    signed_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ConsentDocument(Base):
    """The signed form, stored once with its SHA-256."""

    __tablename__ = "consent_document"

    consent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("consent.id"), primary_key=True)
    media_type: Mapped[str] = mapped_column(String(40))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(Integer)
    content: Mapped[bytes] = mapped_column(LargeBinary)
    uploaded_by: Mapped[uuid.UUID] = mapped_column(Uuid)
    uploaded_at: Mapped[datetime] = mapped_column(UtcDateTime)

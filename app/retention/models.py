"""What culling leaves: a tombstone per culled record, and a row per batch."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UtcDateTime


class Tombstone(Base):
    """A culled record: its ids and dates, never its content. An audit record's
    ``resource_id`` resolves here to "culled on D under rule R"."""

    __tablename__ = "retention_tombstone"
    __table_args__ = (
        Index("ix_retention_tombstone_individual_id", "individual_id"),
        Index("ix_retention_tombstone_case_id", "case_id"),
    )

    resource_type: Mapped[str] = mapped_column(String(32), primary_key=True)
    resource_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    individual_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    case_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    created_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # When the rule's period began (the case's closing, the consent's end, ...).
    trigger_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    culled_at: Mapped[datetime] = mapped_column(UtcDateTime)
    rule_id: Mapped[str] = mapped_column(String(60))
    batch_id: Mapped[uuid.UUID] = mapped_column(Uuid)


class RetentionBatch(Base):
    """One batch of a run, committed with what it culled and its audit record."""

    __tablename__ = "retention_batch"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    run_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    kind: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    # kind -> rows culled; rule ids applied
    counts: Mapped[dict[str, Any]] = mapped_column(JSON)
    rule_ids: Mapped[str] = mapped_column(String(400))
    # the audit anchor this batch cut the log at (audit batches), and its own record
    anchor_seq: Mapped[int | None] = mapped_column(BigInteger)
    audit_seq: Mapped[int] = mapped_column(BigInteger)

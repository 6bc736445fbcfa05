"""The audit log: append-only records chained by SHA-256, and the chain's head."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    Uuid,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UtcDateTime

GENESIS_HASH = "0" * 64


class Decision(StrEnum):
    PERMIT = "permit"
    DENY = "deny"


class AuditEvent(Base):
    """One access or change. Holds identifiers, never case content or names.

    The database refuses UPDATE, DELETE and TRUNCATE of this table (triggers; see the
    migration), and ``hash`` chains every record to the one before it.
    """

    __tablename__ = "audit_event"
    __table_args__ = (
        CheckConstraint("decision IN ('permit', 'deny')", name="decision"),
        Index("ix_audit_event_actor_user_id_seq", "actor_user_id", "seq"),
        Index("ix_audit_event_individual_id_seq", "individual_id", "seq"),
        Index("ix_audit_event_case_id_seq", "case_id", "seq"),
        Index("ix_audit_event_at", "at"),
        Index("ix_audit_event_actor_agency_id_seq", "actor_agency_id", "seq"),
        Index("ix_audit_event_action_seq", "action", "seq"),
        Index("ix_audit_event_actor_user_id_at", "actor_user_id", "at"),
        # The auditors' work queue: flagged records, newest first.
        Index(
            "ix_audit_event_flagged_seq",
            "seq",
            postgresql_where=text("flags <> ''"),
            sqlite_where=text("flags <> ''"),
        ),
    )

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    actor_user_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    actor_client_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    actor_agency_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    actor_roles: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    resource_type: Mapped[str | None] = mapped_column(String(32))
    resource_id: Mapped[str | None] = mapped_column(String(64))
    individual_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    case_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    decision: Mapped[str] = mapped_column(String(8))
    basis: Mapped[str | None] = mapped_column(String(32))
    policy_id: Mapped[str | None] = mapped_column(String(100))
    consent_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    legal_basis: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text)
    request_id: Mapped[str | None] = mapped_column(String(128))
    client_address: Mapped[str | None] = mapped_column(String(64))
    flags: Mapped[str] = mapped_column(String(200))
    # How the actor signed in: password, client_credentials or oidc:<provider id>. Part of
    # the hash when set (app.audit.chain.OPTIONAL_FIELDS); older records have none.
    auth_method: Mapped[str | None] = mapped_column(String(80))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditChainHead(Base):
    """The single row that the next append locks: seq and hash of the newest record."""

    __tablename__ = "audit_chain_head"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


class AuditReview(Base):
    """An auditor's review mark on one record. The review is itself an audit record
    (``review_seq``); a record is reviewed once."""

    __tablename__ = "audit_review"

    seq: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("audit_event.seq"), primary_key=True, autoincrement=False
    )
    reviewer_user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("app_user.id"))
    reviewed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    note: Mapped[str] = mapped_column(Text)
    review_seq: Mapped[int] = mapped_column(BigInteger)


class _SignedHead:
    """A signed statement of the chain's hash at ``seq`` (at time ``at``): the columns a
    checkpoint and an anchor share (app.audit.checkpoints signs and checks both)."""

    seq: Mapped[int] = mapped_column(BigInteger, index=True)
    hash: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    signature: Mapped[str] = mapped_column(String(200))
    key_id: Mapped[str] = mapped_column(String(64))


class AuditCheckpoint(_SignedHead, Base):
    """A signed statement that the chain had ``hash`` at ``seq`` at time ``at``."""

    __tablename__ = "audit_checkpoint"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)


class AuditAnchor(_SignedHead, Base):
    """Where the chain now begins: retention removed the records up to ``seq``, and this
    signed statement of record ``seq``'s hash is what the first remaining record chains to
    (docs/audit.md, "Retention"). Append-only; the newest is the chain's anchor, and the
    database refuses to delete a record above it."""

    __tablename__ = "audit_anchor"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    rule_id: Mapped[str] = mapped_column(String(60))
    # the time of record ``seq``, the newest one culled
    last_culled_at: Mapped[datetime] = mapped_column(UtcDateTime)


class AuditReadVolume(Base):
    """When a user was last let at an individual's information: derived from the permit
    records as they are appended, for the ``volume`` flag only (the log stays the record).

    The flag asks how many other individuals a user was let at in the last hour. Counting
    that in ``audit_event`` grows with the user's records in the hour (a busy reader's
    every read scanned thousands of rows); here it is one row per (user, individual) and
    the question stops at the threshold.
    """

    __tablename__ = "audit_read_volume"
    __table_args__ = (
        Index("ix_audit_read_volume_actor_user_id_last_at", "actor_user_id", "last_at"),
    )

    actor_user_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    individual_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    last_at: Mapped[datetime] = mapped_column(UtcDateTime)

"""User accounts: people who sign in, each in one agency with a set of roles."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, ForeignKey, Index, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UtcDateTime


class Role(StrEnum):
    CASEWORKER = "caseworker"
    COORDINATOR = "coordinator"
    AUDITOR = "auditor"
    ADMIN = "admin"


# Roles that open case content: a change that grants one is for review, and a weak
# sign-in at an identity provider never gives one.
CONTENT_ROLES = frozenset({Role.CASEWORKER, Role.COORDINATOR})


def parse_roles(value: str) -> frozenset[Role]:
    return frozenset(Role(r) for r in value.split(",") if r)


def format_roles(roles: frozenset[Role] | set[Role] | list[Role]) -> str:
    return ",".join(sorted(r.value for r in roles))


class User(Base):
    __tablename__ = "app_user"
    __table_args__ = (
        # One account per identity at a provider (API.md: found by issuer and sub).
        Index(
            "ix_app_user_identity_issuer_subject",
            "identity_issuer",
            "identity_subject",
            unique=True,
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    # Stored case-folded; the unique constraint makes usernames case-insensitive.
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    agency_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agency.id"), index=True)
    roles: Mapped[str] = mapped_column(String(100))
    active: Mapped[bool] = mapped_column(Boolean)
    password_hash: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # The identity at an OpenID Connect provider this account signs in as (app.oidc): the
    # provider's id in policies/identity_providers.yaml, its issuer and the subject (sub).
    identity_provider: Mapped[str | None] = mapped_column(String(63))
    identity_issuer: Mapped[str | None] = mapped_column(String(500))
    identity_subject: Mapped[str | None] = mapped_column(String(255))

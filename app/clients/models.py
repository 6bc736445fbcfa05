"""Integration clients: municipal systems that call the API machine-to-machine."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UtcDateTime


class Scope(StrEnum):
    """API.md; what each lets a client do is policies/integration.cedar (read:actions is an
    addition). A client never does more than a caseworker of its agency."""

    READ_INDIVIDUALS = "read:individuals"
    READ_CASES = "read:cases"
    READ_ENTRIES = "read:entries"
    READ_ACTIONS = "read:actions"
    WRITE_ENTRIES = "write:entries"
    EVENTS = "events"
    WEBHOOKS = "webhooks"


class IntegrationClient(Base):
    __tablename__ = "integration_client"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    client_id: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    agency_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agency.id"), index=True)
    scopes: Mapped[str] = mapped_column(String(200))
    secret_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

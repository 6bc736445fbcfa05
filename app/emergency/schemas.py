from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from app.inputs import InputModel


class EmergencyAccessCreate(InputModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    legal_basis: Annotated[str, Field(min_length=1, max_length=40)]
    reason: Annotated[str, Field(min_length=10, max_length=2000)]
    categories: Annotated[list[str], Field(min_length=1, max_length=20)] | None = None


class GrantStatus(StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"
    ENDED = "ended"


class EmergencyAccessRead(BaseModel):
    """A grant as its own agency's staff and the lead coordinator see it."""

    id: uuid.UUID
    case_id: uuid.UUID
    legal_basis: str
    categories: list[str]
    expires_at: datetime
    user_id: uuid.UUID
    agency_id: uuid.UUID
    reason: str
    created_at: datetime
    ended_at: datetime | None
    status: GrantStatus

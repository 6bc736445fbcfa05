from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from app.cases.models import CaseStatus, ClosureReason, Programme
from app.individuals.schemas import IndividualRead
from app.inputs import InputModel


class CaseCreate(InputModel):
    model_config = ConfigDict(extra="forbid")

    individual_id: uuid.UUID
    programme: Programme


class CaseUpdate(InputModel):
    """Status moves open → active → paused → closed; closing needs a ``closure_reason``."""

    model_config = ConfigDict(extra="forbid")

    status: CaseStatus
    closure_reason: ClosureReason | None = None


class ParticipantCreate(InputModel):
    model_config = ConfigDict(extra="forbid")

    agency_id: uuid.UUID
    user_ids: Annotated[list[uuid.UUID], Field(max_length=20)] = []  # noqa: RUF012 - pydantic copies it


class ParticipantRead(BaseModel):
    agency_id: uuid.UUID
    user_ids: list[uuid.UUID]
    added_at: datetime


class CaseRead(BaseModel):
    id: uuid.UUID
    individual: IndividualRead
    programme: Programme
    lead_agency_id: uuid.UUID
    status: CaseStatus
    closure_reason: ClosureReason | None
    participants: list[ParticipantRead]
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None

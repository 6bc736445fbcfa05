from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.cases.models import CaseStatus, ClosureReason, Programme
from app.external_refs.schemas import ExternalRefRead, ExternalRefsIn
from app.individuals.schemas import IndividualRead
from app.inputs import InputModel


class CaseCreate(InputModel):
    model_config = ConfigDict(extra="forbid")

    individual_id: uuid.UUID
    programme: Programme
    external_refs: ExternalRefsIn = []  # noqa: RUF012 - pydantic copies it


class CaseUpdate(InputModel):
    """Status moves open → active → paused → closed; closing needs a ``closure_reason``.
    ``external_refs`` replaces your agency's references on the case (others' stay)."""

    model_config = ConfigDict(extra="forbid")

    status: CaseStatus | None = None
    closure_reason: ClosureReason | None = None
    external_refs: ExternalRefsIn | None = None

    @model_validator(mode="after")
    def _something(self) -> CaseUpdate:
        if self.status is None and self.external_refs is None:
            raise ValueError("Give a status, external_refs, or both.")
        return self


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
    external_refs: list[ExternalRefRead] = Field(
        description="Ids in the agencies' own systems: shown with the individual's identity."
    )

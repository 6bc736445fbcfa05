from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field, model_validator

from app.holds.models import HoldStatus
from app.inputs import InputModel

Reason = Annotated[str, Field(min_length=1, max_length=2000)]


class LegalHoldCreate(InputModel):
    """A hold on a case, or on an individual as a whole (every case of theirs): one of the
    two. It protects from the moment it is asked for."""

    case_id: uuid.UUID | None = None
    individual_id: uuid.UUID | None = None
    reason: Reason

    @model_validator(mode="after")
    def _one_target(self) -> LegalHoldCreate:
        if (self.case_id is None) == (self.individual_id is None):
            raise ValueError("give case_id or individual_id, not both")
        return self


class LegalHoldLift(InputModel):
    reason: Reason


class LegalHoldDecision(InputModel):
    note: Annotated[str, Field(min_length=1, max_length=2000)] | None = None


class LegalHoldRead(BaseModel):
    id: uuid.UUID
    individual_id: uuid.UUID
    case_id: uuid.UUID | None
    agency_id: uuid.UUID
    status: HoldStatus
    reason: str
    requested_by: uuid.UUID
    requested_at: datetime
    decided_by: uuid.UUID | None
    decided_at: datetime | None
    decision_note: str | None
    lift_reason: str | None
    lift_requested_by: uuid.UUID | None
    lift_requested_at: datetime | None
    lifted_by: uuid.UUID | None
    lifted_at: datetime | None

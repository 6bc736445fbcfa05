from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.goals.models import GoalArea, GoalStatus
from app.inputs import InputModel

Text = Annotated[str, Field(min_length=1, max_length=4000)]


class GoalCreate(InputModel):
    """A goal of the plan, set today by your agency: its area, what it is, when it should be
    reached (``target_date``) and when it is next followed up (``follow_up_on``); neither
    before today."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    area: GoalArea
    description: Text
    target_date: date
    follow_up_on: date | None = None


class GoalUpdate(InputModel):
    """A follow-up: the status now, the next follow-up date (``null``: none planned), the
    outcome (needed once the goal is no longer open), and a note. Kept as a version."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    status: GoalStatus | None = None
    follow_up_on: date | None = None
    outcome: Text | None = None
    note: Text | None = None

    @model_validator(mode="after")
    def _something_to_change(self) -> GoalUpdate:
        if not self.model_fields_set:
            raise ValueError("Name at least one field to change.")
        if "status" in self.model_fields_set and self.status is None:
            raise ValueError("status cannot be cleared.")
        return self


class GoalFollowUpRead(BaseModel):
    version: int
    status: GoalStatus
    follow_up_on: date | None
    outcome: str | None
    note: str | None
    recorded_by: uuid.UUID
    recorded_at: datetime


class GoalRead(BaseModel):
    id: uuid.UUID
    case_id: uuid.UUID
    agency_id: uuid.UUID = Field(
        description="The goal's agency: it and the lead coordinators change it."
    )
    area: GoalArea
    description: str
    set_on: date
    target_date: date
    follow_up_on: date | None
    status: GoalStatus
    outcome: str | None
    follow_ups: list[GoalFollowUpRead]
    created_at: datetime
    updated_at: datetime

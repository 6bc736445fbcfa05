from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.actions.models import ActionStatus
from app.inputs import InputModel

Title = Annotated[str, Field(min_length=1, max_length=200)]
Text = Annotated[str, Field(min_length=1, max_length=20000)]


class ActionCreate(InputModel):
    """An action for the caller's own agency, or, under a consent that covers the plan and
    names both agencies, for another participating agency."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    type: Annotated[str, Field(min_length=1, max_length=60)]
    title: Title
    description: Text | None = None
    responsible_agency_id: uuid.UUID
    assignee_id: uuid.UUID | None = None
    due_date: date | None = None


class ActionUpdate(InputModel):
    """By the responsible agency only. Status moves planned → in_progress → done, or to
    cancelled before it is done; done and cancelled need an ``outcome`` and are final.
    ``null`` clears ``assignee_id``, ``due_date`` or ``description``."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    status: ActionStatus | None = None
    outcome: Text | None = None
    title: Title | None = None
    description: Text | None = None
    assignee_id: uuid.UUID | None = None
    due_date: date | None = None

    @model_validator(mode="after")
    def _something_to_change(self) -> ActionUpdate:
        if not self.model_fields_set:
            raise ValueError("Name at least one field to change.")
        for name in ("status", "outcome", "title"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be cleared.")
        return self


class ActionRead(BaseModel):
    id: uuid.UUID
    case_id: uuid.UUID
    type: str
    title: str
    description: str | None
    source_agency_id: uuid.UUID
    responsible_agency_id: uuid.UUID
    assignee_id: uuid.UUID | None
    due_date: date | None
    status: ActionStatus
    outcome: str | None
    meeting_id: uuid.UUID | None = Field(description="The meeting whose decision it is, if one.")
    created_at: datetime
    updated_at: datetime

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.inputs import Flag, InputModel, Timestamp
from app.meetings.models import MeetingKind

Title = Annotated[str, Field(min_length=1, max_length=200)]


class AttendeeIn(InputModel):
    """A participating agency's representative (``agency_id``, and ``user_id`` if they have
    an account), or one of the young person's guardians (``guardian_id``)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    agency_id: uuid.UUID | None = None
    user_id: uuid.UUID | None = None
    guardian_id: uuid.UUID | None = None
    role: Annotated[str, Field(min_length=1, max_length=100)] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> AttendeeIn:
        if (self.agency_id is None) == (self.guardian_id is None):
            raise ValueError("An attendee is an agency's (agency_id) or a guardian (guardian_id).")
        if self.user_id is not None and self.agency_id is None:
            raise ValueError("user_id needs the user's agency_id.")
        return self


class DecisionIn(InputModel):
    """A decision of the meeting: it becomes an action planned for the responsible agency."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    title: Title
    responsible_agency_id: uuid.UUID
    due_date: date | None = None


class MeetingCreate(InputModel):
    """A meeting that was held (``held_at`` not in the future)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    held_at: Timestamp
    kind: MeetingKind
    attendees: Annotated[list[AttendeeIn], Field(max_length=40)] = []  # noqa: RUF012 - pydantic copies it
    individual_present: Flag
    minutes: Annotated[str, Field(min_length=1, max_length=20000)] | None = None
    decisions: Annotated[list[DecisionIn], Field(max_length=30)] = []  # noqa: RUF012 - pydantic copies it


class AttendeeRead(BaseModel):
    agency_id: uuid.UUID | None
    user_id: uuid.UUID | None
    display_name: str | None = Field(
        description="The staff member's name: to staff of the case's participating agencies."
    )
    guardian_id: uuid.UUID | None
    name: str | None = Field(description="A guardian's name: only with the identity.")
    role: str | None


class MeetingRead(BaseModel):
    id: uuid.UUID
    case_id: uuid.UUID
    agency_id: uuid.UUID = Field(description="The agency that recorded the meeting.")
    kind: MeetingKind
    held_at: datetime
    individual_present: bool
    minutes: str | None
    attendees: list[AttendeeRead]
    action_ids: list[uuid.UUID] = Field(
        description="The actions its decisions became, as far as you may see them."
    )
    created_at: datetime

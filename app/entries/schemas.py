from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from app.inputs import InputModel

Title = Annotated[str, Field(min_length=1, max_length=200)]
Body = Annotated[str, Field(min_length=1, max_length=20000)]


class EntryCreate(InputModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    category: Annotated[str, Field(min_length=1, max_length=40)]
    title: Title
    body: Body


class CorrectionCreate(InputModel):
    """A correction is a new version; the old ones stay readable, as in a journal."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    body: Body
    reason: Annotated[str, Field(min_length=1, max_length=2000)]
    title: Title | None = None


class EntryVersionRead(BaseModel):
    version: int
    title: str
    body: str
    reason: str | None
    author_id: uuid.UUID
    recorded_at: datetime


class EntryRead(BaseModel):
    id: uuid.UUID
    case_id: uuid.UUID
    category: str
    source_agency_id: uuid.UUID
    recorded_at: datetime
    version: int
    title: str
    body: str
    history: list[EntryVersionRead]

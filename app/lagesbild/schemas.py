from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from app.inputs import InputModel
from app.lagesbild.models import CriticalEvent

# A personnummer or samordningsnummer in any spelling: no personal data belongs here.
_PERSONAL_NUMBER = re.compile(r"(?<!\d)(?:\d{2})?\d{6}[-+ ]?\d{4}(?!\d)")


def no_personal_number(value: str) -> str:
    if _PERSONAL_NUMBER.search(value):
        raise ValueError(
            "The lägesbild holds no personal data: remove what looks like a personnummer."
        )
    return value


Name = Annotated[str, Field(min_length=1, max_length=100), AfterValidator(no_personal_number)]
Note = Annotated[str, Field(min_length=1, max_length=2000), AfterValidator(no_personal_number)]


class AreaCreate(InputModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: Name
    district: Name | None = None


class AreaRead(BaseModel):
    id: uuid.UUID
    name: str
    district: str | None
    municipality: str


class AssessmentPut(InputModel):
    """The level agreed for the week, 1 (normalt läge) to 5 (kritiskt läge); critical events;
    a note without personal data; and the other agencies that agreed (your own always)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    level: Annotated[int, Field(ge=1, le=5, strict=True)]
    critical_events: Annotated[list[CriticalEvent], Field(max_length=4)] = []  # noqa: RUF012 - pydantic copies it
    note: Note | None = None
    agreed_with: Annotated[list[uuid.UUID], Field(max_length=5)] = []  # noqa: RUF012 - pydantic copies it


class AssessmentRead(BaseModel):
    area_id: uuid.UUID
    year: int
    week: int
    level: int
    level_sv: str
    level_en: str
    critical_events: list[CriticalEvent]
    note: str | None
    agreed_by: list[uuid.UUID] = Field(description="The agencies that agreed on the level.")
    version: int
    recorded_by: uuid.UUID
    recorded_at: datetime


class WeekRow(BaseModel):
    week: int
    levels: dict[str, int | None]
    critical: dict[str, list[CriticalEvent]]


class AreaSummary(BaseModel):
    area: str
    mean: float | None
    max: int | None
    weeks_at_4_or_more: int


class AreaRef(BaseModel):
    id: uuid.UUID
    name: str


class YearTable(BaseModel):
    year: int
    areas: list[AreaRef]
    weeks: list[WeekRow]
    summary: list[AreaSummary]


class ImportResult(BaseModel):
    weeks: int
    areas: int
    assessments: int

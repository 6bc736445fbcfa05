from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from app.inputs import InputModel

MAX_REFS = 10
System = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        examples=["treserva"],
        description="The system's name: letters, digits, '.', '_' and '-'.",
    ),
]
ExternalId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=128,
        pattern=r"^[\x21-\x7e]+$",
        examples=["2026-0412"],
        description="The id in that system: visible ASCII, no spaces.",
    ),
]


class ExternalRefIn(InputModel):
    model_config = ConfigDict(extra="forbid")

    system: System
    id: ExternalId


class ExternalRefRead(BaseModel):
    system: str
    id: str
    agency_id: uuid.UUID = Field(description="The agency whose system this is.")


ExternalRefsIn = Annotated[list[ExternalRefIn], Field(max_length=MAX_REFS)]

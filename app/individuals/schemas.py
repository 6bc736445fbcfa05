from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from app.external_refs.schemas import ExternalRefRead, ExternalRefsIn
from app.inputs import Flag, InputModel

Name = Annotated[str, Field(min_length=1, max_length=100)]
NumberText = Annotated[str, Field(min_length=10, max_length=13)]


class GuardianCreate(InputModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    given_name: Name
    family_name: Name
    personal_number: NumberText | None = None
    has_custody: Flag


class IndividualCreate(InputModel):
    """Personnummer or samordningsnummer; without one, ``birth_date`` is required and a
    reserve id is assigned."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    personal_number: NumberText | None = None
    given_name: Name
    family_name: Name
    birth_date: date | None = None
    protected_identity: Flag = False
    guardians: Annotated[list[GuardianCreate], Field(max_length=4)] = []  # noqa: RUF012 - pydantic copies it
    external_refs: ExternalRefsIn = []  # noqa: RUF012 - pydantic copies it


class GuardianRead(BaseModel):
    id: uuid.UUID
    given_name: str
    family_name: str
    personal_number: str | None
    has_custody: bool


class IndividualRead(BaseModel):
    """Identity fields are ``null`` unless the caller may see them; ``pseudonym`` is stable."""

    id: uuid.UUID
    pseudonym: str
    identity_visible: bool
    registering_agency_id: uuid.UUID
    protected_identity: bool
    personal_number: str | None = Field(examples=["20080101-1234"])
    number_kind: str | None
    reserve_id: str | None
    given_name: str | None
    family_name: str | None
    birth_date: date | None
    guardians: list[GuardianRead]
    external_refs: list[ExternalRefRead] = Field(
        description="Ids in the agencies' own systems: identity data, empty unless shown."
    )

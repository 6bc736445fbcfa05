from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.external_refs.schemas import ExternalRefRead, ExternalRefsIn
from app.individuals.models import Sex
from app.inputs import Flag, InputModel

Name = Annotated[str, Field(min_length=1, max_length=100)]
NumberText = Annotated[str, Field(min_length=10, max_length=13)]
Contact = Annotated[str, Field(min_length=1, max_length=200)]


def _changes_something(model: BaseModel, required: tuple[str, ...]) -> None:
    """A PATCH names at least one field, and never clears one that must have a value."""
    if not model.model_fields_set:
        raise ValueError("Name at least one field to change.")
    for name in required:
        if name in model.model_fields_set and getattr(model, name) is None:
            raise ValueError(f"{name} cannot be cleared.")


class GuardianCreate(InputModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    given_name: Name
    family_name: Name
    personal_number: NumberText | None = None
    has_custody: Flag
    contact: Contact | None = Field(default=None, description="Phone, e-mail or address.")


class GuardianUpdate(InputModel):
    """``null`` clears ``personal_number`` or ``contact``."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    given_name: Name | None = None
    family_name: Name | None = None
    personal_number: NumberText | None = None
    has_custody: Flag | None = None
    contact: Contact | None = None

    @model_validator(mode="after")
    def _something(self) -> GuardianUpdate:
        _changes_something(self, ("given_name", "family_name", "has_custody"))
        return self


class IndividualUpdate(InputModel):
    """Corrections by the registering agency's coordinators: names, a personnummer or
    samordningsnummer (attached to a reserve id, or corrected; the birth date follows it),
    protected identity on or off, and your agency's external references."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    given_name: Name | None = None
    family_name: Name | None = None
    personal_number: NumberText | None = None
    protected_identity: Flag | None = None
    sex: Sex | None = None
    external_refs: ExternalRefsIn | None = None

    @model_validator(mode="after")
    def _something(self) -> IndividualUpdate:
        _changes_something(
            self,
            (
                "given_name",
                "family_name",
                "personal_number",
                "protected_identity",
                "sex",
                "external_refs",
            ),
        )
        return self


class IndividualCreate(InputModel):
    """Personnummer or samordningsnummer; without one, ``birth_date`` is required and a
    reserve id is assigned."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    personal_number: NumberText | None = None
    given_name: Name
    family_name: Name
    birth_date: date | None = None
    protected_identity: Flag = False
    sex: Sex = Sex.UNKNOWN
    guardians: Annotated[list[GuardianCreate], Field(max_length=4)] = []  # noqa: RUF012 - pydantic copies it
    external_refs: ExternalRefsIn = []  # noqa: RUF012 - pydantic copies it


class GuardianRead(BaseModel):
    id: uuid.UUID
    given_name: str
    family_name: str
    personal_number: str | None
    has_custody: bool
    contact: str | None


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
    sex: Sex | None = Field(description="With the identity (a personnummer tells it too).")
    guardians: list[GuardianRead]
    external_refs: list[ExternalRefRead] = Field(
        description="Ids in the agencies' own systems: identity data, empty unless shown."
    )
    version: int = Field(description="1 at registration; one more with every change.")


class IndividualVersionRead(BaseModel):
    """One change: who made it, when, and the values it replaced (identity data)."""

    version: int
    change: str = Field(examples=["individual.update", "guardian.add", "guardian.update"])
    guardian_id: uuid.UUID | None
    before: dict[str, Any]
    changed_by: uuid.UUID
    changed_at: datetime

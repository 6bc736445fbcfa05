from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from stdnum.exceptions import ValidationError as StdnumError
from stdnum.se import orgnr

from app.agencies.models import AgencyKind


def _organisation_number(value: str) -> str:
    """Validated (Luhn, format) and normalised to ten digits."""
    try:
        return str(orgnr.validate(value))
    except StdnumError:
        raise ValueError("not a valid Swedish organisationsnummer") from None


OrganisationNumber = Annotated[
    str, Field(min_length=10, max_length=13), AfterValidator(_organisation_number)
]
Name = Annotated[str, Field(min_length=1, max_length=200)]
Municipality = Annotated[str, Field(min_length=1, max_length=100)]


class AgencyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: Name
    kind: AgencyKind
    organisation_number: OrganisationNumber
    municipality: Municipality | None = None


class AgencyUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: Name | None = None
    kind: AgencyKind | None = None
    organisation_number: OrganisationNumber | None = None
    municipality: Municipality | None = None


class AgencyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    kind: AgencyKind
    organisation_number: str = Field(examples=["212000-0142"])
    municipality: str | None

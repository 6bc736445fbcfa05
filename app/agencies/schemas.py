from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from stdnum.exceptions import ValidationError as StdnumError
from stdnum.se import orgnr

from app.agencies.models import AgencyKind
from app.inputs import InputModel


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


class AgencyCreate(InputModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: Name
    kind: AgencyKind
    organisation_number: OrganisationNumber
    municipality: Municipality | None = None


class AgencyUpdate(InputModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: Name | None = None
    kind: AgencyKind | None = None
    organisation_number: OrganisationNumber | None = None
    municipality: Municipality | None = None

    @model_validator(mode="after")
    def _required_fields_stay(self) -> AgencyUpdate:
        """Only ``municipality`` may be cleared with ``null`` (it was a 409 from the
        database's NOT NULL; schemathesis found it)."""
        for name in ("name", "kind", "organisation_number"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be cleared.")
        return self


class AgencyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    kind: AgencyKind
    organisation_number: str = Field(examples=["212000-0142"])
    municipality: str | None

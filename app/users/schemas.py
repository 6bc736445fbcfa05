from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from app.inputs import Flag, InputModel
from app.users.models import Role


def _username(value: str) -> str:
    folded = value.casefold()
    if not all(c.isascii() and (c.isalnum() or c in "._@-") for c in folded):
        raise ValueError("use letters a-z, digits and . _ @ - only")
    return folded


Username = Annotated[str, Field(min_length=3, max_length=64), AfterValidator(_username)]
DisplayName = Annotated[str, Field(min_length=1, max_length=200)]
# Length in characters here; the byte cap (password_max_bytes) is checked at sign-in.
Password = Annotated[str, Field(min_length=12, max_length=1024)]
Roles = Annotated[list[Role], Field(min_length=1, max_length=4)]


class IdentityLink(InputModel):
    """The account's identity at one of the configured providers (policies/
    identity_providers.yaml): its id there and the subject (``sub``) its tokens carry."""

    provider: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
    subject: Annotated[str, Field(min_length=1, max_length=255)]


class IdentityRead(BaseModel):
    provider: str
    issuer: str
    subject: str


class UserCreate(InputModel):
    """A password, an identity at a provider, or both (a break-glass account has a
    password; a provider's user usually has none)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    username: Username
    display_name: DisplayName
    agency_id: uuid.UUID
    roles: Roles
    password: Password | None = Field(default=None, json_schema_extra={"writeOnly": True})
    identity: IdentityLink | None = None

    @model_validator(mode="after")
    def _some_way_in(self) -> UserCreate:
        if self.password is None and self.identity is None:
            raise ValueError("give a password, an identity at a provider, or both")
        return self


class UserUpdate(InputModel):
    """``active: false`` deactivates: the user's tokens stop working at their next request."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    display_name: DisplayName | None = None
    agency_id: uuid.UUID | None = None
    roles: Roles | None = None
    active: Flag | None = None
    password: Password | None = Field(default=None, json_schema_extra={"writeOnly": True})
    identity: IdentityLink | None = Field(
        default=None, description="Link to an identity at a provider; null removes the link."
    )


class UserRead(BaseModel):
    id: uuid.UUID
    username: str
    display_name: str
    agency_id: uuid.UUID
    roles: list[Role]
    active: bool
    identity: IdentityRead | None = None

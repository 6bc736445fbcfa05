from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

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


class UserCreate(InputModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    username: Username
    display_name: DisplayName
    agency_id: uuid.UUID
    roles: Roles
    password: Password = Field(json_schema_extra={"writeOnly": True})


class UserUpdate(InputModel):
    """``active: false`` deactivates: the user's tokens stop working at their next request."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    display_name: DisplayName | None = None
    agency_id: uuid.UUID | None = None
    roles: Roles | None = None
    active: Flag | None = None
    password: Password | None = Field(default=None, json_schema_extra={"writeOnly": True})


class UserRead(BaseModel):
    id: uuid.UUID
    username: str
    display_name: str
    agency_id: uuid.UUID
    roles: list[Role]
    active: bool

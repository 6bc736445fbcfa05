from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from app.clients.models import Scope
from app.inputs import InputModel


class ClientCreate(InputModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: Annotated[str, Field(min_length=1, max_length=200)]
    agency_id: uuid.UUID
    scopes: Annotated[list[Scope], Field(max_length=len(Scope))] = []  # noqa: RUF012 - pydantic copies it


class ClientRead(BaseModel):
    id: uuid.UUID
    client_id: str
    name: str
    agency_id: uuid.UUID
    scopes: list[Scope]
    created_at: datetime
    revoked_at: datetime | None


class ClientCreated(ClientRead):
    client_secret: str = Field(description="Shown once, now; only its hash is stored.")

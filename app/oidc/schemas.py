from __future__ import annotations

import uuid

from pydantic import BaseModel


class ProviderRead(BaseModel):
    """For the front-end's sign-in page (API.md)."""

    id: str
    name: str
    agency_id: uuid.UUID
    issuer: str

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel


class CulledRead(BaseModel):
    """A record retention removed: its ids and dates, never its content."""

    resource_type: str
    resource_id: str
    case_id: uuid.UUID | None
    created_at: datetime | None
    trigger_at: datetime | None
    culled_at: datetime
    rule_id: str

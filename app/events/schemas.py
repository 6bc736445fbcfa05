from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from app.events.models import EventType, ResourceType


class EventRead(BaseModel):
    id: uuid.UUID
    type: EventType
    occurred_at: datetime
    case_id: uuid.UUID | None
    individual_id: uuid.UUID | None
    resource_type: ResourceType
    resource_id: uuid.UUID


class EventPage(BaseModel):
    items: list[EventRead]
    next_cursor: str = Field(description="Always set: pass it as `after` to poll for more.")

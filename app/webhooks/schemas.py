from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from app.events.models import EventType
from app.inputs import CleanStr, InputModel
from app.webhooks.models import DeliveryStatus, SubscriptionStatus


class WebhookCreate(InputModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    url: Annotated[
        str,
        Field(
            min_length=8,
            max_length=2048,
            examples=["https://treserva.example.se/samverkan/hooks"],
            description="https (http only in dev); no credentials in it; a public address.",
        ),
    ]
    types: Annotated[list[EventType], Field(min_length=1, max_length=len(EventType))]
    description: Annotated[CleanStr, Field(max_length=500)] | None = None


class WebhookRead(BaseModel):
    id: uuid.UUID
    agency_id: uuid.UUID
    url: str
    types: list[EventType]
    description: str | None
    status: SubscriptionStatus
    failing_since: datetime | None
    disabled_at: datetime | None
    created_at: datetime


class WebhookCreated(WebhookRead):
    secret: str = Field(
        description="The Standard Webhooks signing secret (`whsec_...`): shown once, now."
    )


class DeliveryRead(BaseModel):
    id: uuid.UUID = Field(description="Sent as `webhook-id`, the same on every attempt.")
    event_id: uuid.UUID
    event_type: EventType
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None

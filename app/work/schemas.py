from __future__ import annotations

import uuid
from datetime import date
from enum import StrEnum

from pydantic import BaseModel, Field


class WorkKind(StrEnum):
    ACTION = "action"
    GOAL = "goal"
    CONSENT = "consent"
    THREAT_REVIEW = "threat_review"
    THREAT_RAISED = "threat_raised"


class WorkItem(BaseModel):
    id: uuid.UUID = Field(description="The action, goal or consent; the case for a threat.")
    kind: WorkKind
    case_id: uuid.UUID
    due_on: date | None


class Work(BaseModel):
    """What the caller has to do, each list soonest first."""

    overdue_actions: list[WorkItem] = Field(
        description="Your agency's actions, yours or unassigned, past their due date."
    )
    follow_ups_due: list[WorkItem] = Field(
        description="Open goals to follow up within 7 days: your agency's, or any on a case "
        "your agency leads if you are a coordinator."
    )
    consents_expiring: list[WorkItem] = Field(
        description="Active consents ending within 30 days on cases your agency leads, with "
        "no successor registered."
    )
    reviews_due: list[WorkItem] = Field(
        description="Threat assessments your agency made, due for review within 7 days."
    )
    threats_raised: list[WorkItem] = Field(
        description="For the lead agency's coordinators: threat levels raised to high or "
        "critical and not reviewed since."
    )

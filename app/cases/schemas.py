from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.cases.models import (
    CaseStatus,
    ClosureReason,
    CustodyStatus,
    ExitStatus,
    LinkKind,
    Programme,
    ThreatLevel,
)
from app.external_refs.schemas import ExternalRefRead, ExternalRefsIn
from app.individuals.schemas import IndividualRead
from app.inputs import InputModel


class CaseCreate(InputModel):
    model_config = ConfigDict(extra="forbid")

    individual_id: uuid.UUID
    programme: Programme
    external_refs: ExternalRefsIn = []  # noqa: RUF012 - pydantic copies it


class Custody(InputModel):
    model_config = ConfigDict(extra="forbid")

    status: CustodyStatus
    release_on: date | None = None


class Exit(InputModel):
    """Avhopp: whether the young person wants to leave crime, and how far it has come."""

    model_config = ConfigDict(extra="forbid")

    status: ExitStatus
    requested_on: date | None = None


class CaseUpdate(InputModel):
    """Status moves open → active → paused → closed; closing needs a ``closure_reason``.
    ``external_refs`` replaces your agency's references on the case (others' stay).
    ``custody`` and ``exit`` are set by the lead coordinators. The threat assessment
    (``threat_level`` with the date it was assessed, ``threat_reviewed_on``, and optionally
    the next review, ``threat_review_due_on``) is recorded by a coordinator of a
    participating agency whose kind records ``threat_assessment``."""

    model_config = ConfigDict(extra="forbid")

    status: CaseStatus | None = None
    closure_reason: ClosureReason | None = None
    external_refs: ExternalRefsIn | None = None
    custody: Custody | None = None
    exit: Exit | None = None
    threat_level: ThreatLevel | None = None
    threat_reviewed_on: date | None = None
    threat_review_due_on: date | None = None

    @model_validator(mode="after")
    def _something(self) -> CaseUpdate:
        given = {name for name in self.model_fields_set if getattr(self, name) is not None}
        if not given - {"closure_reason"}:
            raise ValueError("Give a status, external_refs, custody, exit or a threat assessment.")
        return self

    @property
    def threat_given(self) -> bool:
        return any(
            getattr(self, name) is not None
            for name in ("threat_level", "threat_reviewed_on", "threat_review_due_on")
        )

    @property
    def case_fields_given(self) -> bool:
        return any(
            getattr(self, name) is not None
            for name in ("status", "closure_reason", "external_refs", "custody", "exit")
        )


class ParticipantCreate(InputModel):
    model_config = ConfigDict(extra="forbid")

    agency_id: uuid.UUID
    user_ids: Annotated[list[uuid.UUID], Field(max_length=20)] = []  # noqa: RUF012 - pydantic copies it


class ParticipantRead(BaseModel):
    agency_id: uuid.UUID
    user_ids: list[uuid.UUID]
    added_at: datetime


class CustodyRead(BaseModel):
    status: CustodyStatus
    release_on: date | None


class ExitRead(BaseModel):
    status: ExitStatus
    requested_on: date | None


class CaseRead(BaseModel):
    id: uuid.UUID
    individual: IndividualRead
    programme: Programme
    lead_agency_id: uuid.UUID
    status: CaseStatus
    closure_reason: ClosureReason | None
    participants: list[ParticipantRead]
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None
    external_refs: list[ExternalRefRead] = Field(
        description="Ids in the agencies' own systems: shown with the individual's identity."
    )
    custody: CustodyRead
    exit: ExitRead
    threat_level: ThreatLevel | None = Field(
        description="Category threat_assessment: null unless you may read it."
    )
    threat_reviewed_on: date | None
    threat_review_due_on: date | None
    threat_flagged: bool | None = Field(
        description="Raised to high or critical and not reviewed since (with the threat)."
    )


class LinkCreate(InputModel):
    """``continues``: this case continues ``case_id`` (an earlier case of the same
    individual); ``related``: any other case you take part in."""

    model_config = ConfigDict(extra="forbid")

    case_id: uuid.UUID
    kind: LinkKind


class LinkRead(BaseModel):
    id: uuid.UUID
    case_id: uuid.UUID = Field(description="The case the link was made on.")
    linked_case_id: uuid.UUID = Field(description="The case it points at.")
    kind: LinkKind
    created_at: datetime


class LinkCreated(LinkRead):
    consent_needed_for: list[uuid.UUID] = Field(
        description=(
            "Agencies of this case that no active consent names together with the registering "
            "agency: the earlier case's consent does not carry over; register a new one."
        )
    )

from __future__ import annotations

import uuid
from dataclasses import dataclass, fields
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from app.audit.models import Decision
from app.inputs import InputModel
from app.retention.schemas import CulledRead


@dataclass(frozen=True, slots=True)
class AuditFilters:
    """The filters of /audit/events and /audit/export (all optional, combined with AND)."""

    individual_id: uuid.UUID | None = None
    user_id: uuid.UUID | None = None
    agency_id: uuid.UUID | None = None
    case_id: uuid.UUID | None = None
    action: str | None = None
    decision: Decision | None = None
    flagged: bool | None = None
    reviewed: bool | None = None
    from_: datetime | None = None
    to: datetime | None = None

    def named(self) -> list[str]:
        """The filters in use, by name (for the audit record of a search; no values)."""
        return [f.name.rstrip("_") for f in fields(self) if getattr(self, f.name) is not None]


class ExportFormat(StrEnum):
    CSV = "csv"
    JSONL = "jsonl"


class ExtractFormat(StrEnum):
    JSON = "json"
    CSV = "csv"
    HTML = "html"


class AuditEventRead(BaseModel):
    seq: int
    at: datetime
    actor_user_id: uuid.UUID | None
    actor_agency_id: uuid.UUID | None
    actor_roles: list[str]
    client_id: uuid.UUID | None
    action: str
    resource_type: str | None
    resource_id: str | None
    individual_id: uuid.UUID | None
    case_id: uuid.UUID | None
    decision: Decision
    basis: str | None
    policy_id: str | None
    consent_id: uuid.UUID | None
    legal_basis: str | None
    reason: str | None
    request_id: str | None
    auth_method: str | None = Field(
        description="How the actor signed in: password, client_credentials or "
        "oidc:<provider id> (null on records written before this was kept)."
    )
    flags: list[str]
    reviewed: bool
    prev_hash: str
    hash: str


class ReviewCreate(InputModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    note: Annotated[str, Field(min_length=1, max_length=4000)]


class ReviewRead(BaseModel):
    seq: int
    reviewer_user_id: uuid.UUID
    reviewed_at: datetime
    note: str
    review_seq: int


class AuditEventDetail(AuditEventRead):
    """One record as GET /audit/events/{seq} shows it: with its review mark and note."""

    review: ReviewRead | None
    # the record's resource, where retention has culled it since: when, and under which rule
    culled: CulledRead | None = None


class AnchorRead(BaseModel):
    """Where the chain begins since retention removed older records: ``seq`` is the last
    record removed, ``hash`` its hash (signed), ``last_culled_at`` its time."""

    seq: int
    hash: str
    at: datetime
    rule_id: str
    last_culled_at: datetime


class VerifyRead(BaseModel):
    """``ok`` only when the chain recomputes *and* every signed checkpoint agrees with it;
    after retention, from the signed ``anchor`` (whose signature is checked too)."""

    ok: bool
    checked: int
    first_bad_seq: int | None
    head_seq: int
    head_hash: str
    problem: str | None = None
    checkpoints_checked: int = 0
    checkpoint_problems: list[str] = []
    anchor: AnchorRead | None = None


class CheckpointRead(BaseModel):
    seq: int
    hash: str
    at: datetime
    signature: str
    key_id: str


class AccessLogEntry(BaseModel):
    """One line of an individual's access extract (loggutdrag)."""

    seq: int
    at: datetime
    agency_id: uuid.UUID | None
    agency_name: str | None
    user_id: uuid.UUID | None
    user_name: str | None
    action: str
    what_sv: str
    what_en: str
    decision: Decision
    basis: str | None
    consent_id: uuid.UUID | None
    legal_basis: str | None


class SubjectRead(BaseModel):
    """One registration of a person: each agency registers the people it works with."""

    individual_id: uuid.UUID
    registering_agency_id: uuid.UUID


class AccessLogRead(BaseModel):
    individual_id: uuid.UUID
    generated_at: datetime
    entries: list[AccessLogEntry]
    # what retention culled about the individual (the individual too, once culled)
    culled: list[CulledRead] = []

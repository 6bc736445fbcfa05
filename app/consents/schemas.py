from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from app.consents.models import ConsentMethod, ConsentStatus, SignatoryRole
from app.inputs import InputModel, Timestamp


class SignatoryIn(InputModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    role: SignatoryRole
    guardian_id: uuid.UUID | None = None
    name: Annotated[str, Field(min_length=1, max_length=200)]
    signed_at: Timestamp


class ConsentCreate(InputModel):
    """Immutable once registered: a correction is a new consent that names the one it
    supersedes. Times without a zone are taken as UTC."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    signatories: Annotated[list[SignatoryIn], Field(min_length=1, max_length=6)]
    agency_ids: Annotated[list[uuid.UUID], Field(min_length=2, max_length=20)]
    categories: Annotated[list[str], Field(min_length=1, max_length=20)]
    purpose: Annotated[str, Field(min_length=1, max_length=2000)]
    valid_from: Timestamp
    valid_until: Timestamp
    method: ConsentMethod
    supersedes_id: uuid.UUID | None = None


class WithdrawalIn(InputModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    reason: Annotated[str, Field(min_length=1, max_length=2000)]
    withdrawn_at: Timestamp | None = None


class SignatoryRead(BaseModel):
    role: SignatoryRole
    guardian_id: uuid.UUID | None
    name: str | None = Field(description="null unless the reader may see the identity")
    signed_at: Timestamp


class DocumentRead(BaseModel):
    sha256: str
    media_type: str
    size_bytes: int
    uploaded_at: datetime


class ConsentRead(BaseModel):
    """The scope (agencies, categories, purpose, validity, status, method) is shown to every
    reader of the case; signatories' names and the withdrawal reason only with
    ``identity_visible``."""

    id: uuid.UUID
    case_id: uuid.UUID
    individual_id: uuid.UUID
    status: ConsentStatus
    identity_visible: bool
    signatories: list[SignatoryRead]
    agency_ids: list[uuid.UUID]
    categories: list[str]
    purpose: str
    valid_from: Timestamp
    valid_until: Timestamp
    method: ConsentMethod
    supersedes_id: uuid.UUID | None
    superseded_at: datetime | None
    registered_at: datetime
    withdrawn_at: datetime | None
    withdrawal_reason: str | None
    document: DocumentRead | None

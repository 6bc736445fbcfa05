"""What an audit record says, before it is written: the values the writer chains.

A module of its own, with nothing but the record's shape, so that the actor (which builds
records) needs neither the writer nor the flags, and the flags may ask the decision point
without an import circle (auth.actor -> audit.writer -> audit.flags -> policy -> auth.actor).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

from app.audit.models import Decision


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a request came from, as the audit record keeps it."""

    request_id: str | None = None
    client_address: str | None = None


@dataclass(frozen=True, slots=True)
class Record:
    """What to record. Identifiers only: no names, personal numbers or case content."""

    action: str
    decision: Decision = Decision.PERMIT
    actor_user_id: uuid.UUID | None = None
    actor_client_id: uuid.UUID | None = None
    actor_agency_id: uuid.UUID | None = None
    actor_roles: Iterable[str] = ()
    resource_type: str | None = None
    resource_id: str | None = None
    individual_id: uuid.UUID | None = None
    case_id: uuid.UUID | None = None
    basis: str | None = None
    policy_id: str | None = None
    consent_id: uuid.UUID | None = None
    legal_basis: str | None = None
    reason: str | None = None
    flags: Iterable[str] = ()
    origin: Origin = field(default_factory=Origin)
    # How the actor signed in (app.auth.actor.Actor.auth_method); None where no one did.
    auth_method: str | None = None

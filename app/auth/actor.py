"""Who is calling: a signed-in user or an integration client, as of this request."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from app.audit.models import Decision
from app.audit.records import Origin, Record
from app.users.models import Role


class ActorKind(StrEnum):
    USER = "user"
    CLIENT = "client"


@dataclass(frozen=True, slots=True)
class Actor:
    """Built from the database at every request, not from token claims, so a
    deactivation or a change of roles or agency takes effect at the next request."""

    kind: ActorKind
    id: uuid.UUID
    agency_id: uuid.UUID
    roles: frozenset[Role]
    scopes: frozenset[str]
    username: str
    name: str
    origin: Origin
    # How this actor signed in, kept in every audit record it causes: ``password``,
    # ``client_credentials``, or ``oidc:<provider id>`` for a provider-issued token.
    auth_method: str = "password"

    @property
    def content_roles(self) -> frozenset[Role]:
        """The roles the decision point weighs: a user's own; an integration client acts as
        a caseworker of its agency, never more (its scopes narrow it further)."""
        if self.kind is ActorKind.CLIENT:
            return frozenset({Role.CASEWORKER})
        return self.roles

    def has_any_role(self, *roles: Role) -> bool:
        return bool(self.roles.intersection(roles))

    def record(self, action: str, *, decision: Decision = Decision.PERMIT, **fields: Any) -> Record:
        """An audit record of ``action`` by this actor, from this request."""
        return Record(
            action=action,
            decision=decision,
            actor_user_id=self.id if self.kind is ActorKind.USER else None,
            actor_client_id=self.id if self.kind is ActorKind.CLIENT else None,
            actor_agency_id=self.agency_id,
            actor_roles=[r.value for r in self.roles],
            origin=self.origin,
            auth_method=self.auth_method,
            **fields,
        )

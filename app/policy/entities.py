"""Facts about the things a decision is about, and the small Cedar entity sets built from them.

Facts are plain values the services read from the database; they keep the decision point
free of SQL and make every decision testable without a database.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from app.auth.actor import Actor, ActorKind


@dataclass(frozen=True, slots=True)
class IndividualFacts:
    id: uuid.UUID
    registering_agency_id: uuid.UUID
    protected_identity: bool = False
    case_agency_ids: frozenset[uuid.UUID] = field(default_factory=frozenset)
    registering_agency_kind: str = "other"
    # agencies in a case of the individual that is not closed (identity is shared only
    # through an open case)
    open_case_agency_ids: frozenset[uuid.UUID] = field(default_factory=frozenset)


@dataclass(frozen=True, slots=True)
class CaseFacts:
    id: uuid.UUID
    lead_agency_id: uuid.UUID
    participant_agency_ids: frozenset[uuid.UUID]
    individual: IndividualFacts
    status: str


@dataclass(frozen=True, slots=True)
class AgencyFacts:
    id: uuid.UUID
    kind: str = "other"


@dataclass(frozen=True, slots=True)
class EntryFacts:
    id: uuid.UUID
    source_agency_id: uuid.UUID
    category: str
    case: CaseFacts
    source_agency_kind: str = "other"


@dataclass(frozen=True, slots=True)
class ActionFacts:
    """A planned action (insats): category ``plan``, planned by ``source``, carried out by
    ``responsible`` (often the same agency)."""

    id: uuid.UUID
    source_agency_id: uuid.UUID
    responsible_agency_id: uuid.UUID
    case: CaseFacts
    source_agency_kind: str = "other"
    responsible_agency_kind: str = "other"


@dataclass(frozen=True, slots=True)
class GrantFacts:
    """An emergency grant as a resource: who it was issued to, the agency it belongs to
    (the grantee's at the time), and its case."""

    id: uuid.UUID
    agency_id: uuid.UUID
    grantee_id: uuid.UUID
    case: CaseFacts


@dataclass(frozen=True, slots=True)
class AccountFacts:
    """A user account as administered: its agency and its roles as they would be."""

    id: uuid.UUID
    agency_id: uuid.UUID
    roles: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class AuditRecordFacts:
    """An audit record as reviewed: who acted, and the account it is about (if any)."""

    seq: int
    actor_user_id: uuid.UUID | None
    about_user_id: uuid.UUID | None


@dataclass(frozen=True, slots=True)
class AreaFacts:
    """A lägesbild area as read or written by ``actor_agency`` (whose kind and municipality
    the rules compare); ``municipality`` is the area's."""

    municipality: str
    actor_agency_id: uuid.UUID
    actor_agency_kind: str
    actor_agency_municipality: str | None
    id: str = "new"


@dataclass(frozen=True, slots=True)
class HoldFacts:
    """A legal hold as decided or read: the agency that asked for it, and who made the
    request now pending (the hold's, or its lifting's)."""

    id: uuid.UUID
    agency_id: uuid.UUID
    requested_by: uuid.UUID


@dataclass(frozen=True, slots=True)
class ConsentGrant:
    """An active consent of the individual: who it names and what it covers."""

    id: uuid.UUID
    agency_ids: frozenset[uuid.UUID]
    categories: frozenset[str]


@dataclass(frozen=True, slots=True)
class EmergencyGrant:
    """An unexpired break-the-glass grant of the reader for the case."""

    id: uuid.UUID
    legal_basis: str
    categories: frozenset[str]
    towards: frozenset[str]  # agency kinds whose information the basis can open


@dataclass(frozen=True, slots=True)
class Grounds:
    """What a read may rest on besides the reader's own agency."""

    consents: tuple[ConsentGrant, ...] = ()
    grants: tuple[EmergencyGrant, ...] = ()


Resource = (
    AgencyFacts
    | IndividualFacts
    | CaseFacts
    | EntryFacts
    | ActionFacts
    | GrantFacts
    | AccountFacts
    | AuditRecordFacts
    | AreaFacts
    | HoldFacts
)

# The user an audit record names where it names none (a system record; not about a user).
NOBODY = "nobody"


def consent_context(grant: ConsentGrant) -> dict[str, Any]:
    """A request resting on ``grant``: the consent, an entity (:func:`ground_entity`)."""
    return {"consent": _ref("Consent", grant.id)}


def grant_context(grant: EmergencyGrant) -> dict[str, Any]:
    """A request resting on ``grant``: the grant's ground, an entity (:func:`ground_entity`)."""
    return {"grant": _ref("GrantGround", grant.id)}


def ground_entity(ground: ConsentGrant | EmergencyGrant) -> dict[str, Any]:
    """The entity a request resting on ``ground`` names in its context."""
    if isinstance(ground, ConsentGrant):
        return {
            "uid": _uid("Consent", ground.id),
            "attrs": {
                "agencies": [_ref("Agency", a) for a in sorted(ground.agency_ids, key=str)],
                "categories": sorted(ground.categories),
            },
            "parents": [],
        }
    return {
        "uid": _uid("GrantGround", ground.id),
        "attrs": {
            "legal_basis": ground.legal_basis,
            "categories": sorted(ground.categories),
            "towards": sorted(ground.towards),
        },
        "parents": [],
    }


def _uid(kind: str, value: uuid.UUID | str) -> dict[str, str]:
    return {"type": kind, "id": str(value)}


def _ref(kind: str, value: uuid.UUID) -> dict[str, dict[str, str]]:
    return {"__entity": _uid(kind, value)}


def _agency(agency_id: uuid.UUID, kind: str) -> dict[str, Any]:
    return {"uid": _uid("Agency", agency_id), "attrs": {"kind": kind}, "parents": []}


_UNKNOWN_KIND = "other"


def _agencies(ids: Iterable[uuid.UUID]) -> list[dict[str, Any]]:
    """Agencies a decision refers to without depending on their kind (a stand-in kind), in
    the order of their ids: the same facts are the same text (app.policy.engine keeps
    parsed entities and answers by the text)."""
    return [
        {"uid": _uid("Agency", agency_id), "attrs": {"kind": _UNKNOWN_KIND}, "parents": []}
        for agency_id in sorted(ids, key=str)
    ]


def merged(entities: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entity per uid for a Cedar call about several resources: an agency whose kind
    is known wins over the stand-in another resource carries for it."""
    kept: dict[tuple[str, str], dict[str, Any]] = {}
    for entity in entities:
        key = (entity["uid"]["type"], entity["uid"]["id"])
        known = kept.get(key)
        if known is None or (key[0] == "Agency" and known["attrs"]["kind"] == _UNKNOWN_KIND):
            kept[key] = entity
    return list(kept.values())


def principal_entity(actor: Actor) -> tuple[dict[str, str], dict[str, Any]]:
    kind = "User" if actor.kind is ActorKind.USER else "Client"
    attrs: dict[str, Any] = {"agency": _ref("Agency", actor.agency_id)}
    attrs["roles"] = sorted(r.value for r in actor.content_roles)
    if actor.kind is ActorKind.CLIENT:
        attrs["scopes"] = sorted(actor.scopes)
    uid = _uid(kind, actor.id)
    return uid, {"uid": uid, "attrs": attrs, "parents": [_uid("Agency", actor.agency_id)]}


def _individual_entity(facts: IndividualFacts) -> dict[str, Any]:
    return {
        "uid": _uid("Individual", facts.id),
        "attrs": {
            "registering_agency": _ref("Agency", facts.registering_agency_id),
            "protected_identity": facts.protected_identity,
            "case_agencies": [_ref("Agency", a) for a in sorted(facts.case_agency_ids, key=str)],
            "open_case_agencies": [
                _ref("Agency", a) for a in sorted(facts.open_case_agency_ids, key=str)
            ],
        },
        "parents": [],
    }


def resource_entities(resource: Resource) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """The resource's uid and the entities a decision about it needs (agencies included)."""
    if isinstance(resource, AgencyFacts | AccountFacts | AuditRecordFacts | AreaFacts | HoldFacts):
        return _administration_entities(resource)
    if isinstance(resource, IndividualFacts):
        agencies = {resource.registering_agency_id, *resource.case_agency_ids}
        return _uid("Individual", resource.id), [
            _individual_entity(resource),
            # first, so that it is the entity kept for this uid: the kind matters
            _agency(resource.registering_agency_id, resource.registering_agency_kind),
            *_agencies(agencies),
        ]
    if isinstance(resource, EntryFacts):
        case_uid, case_entities = _case_entities(resource.case)
        entry_uid = _uid("Entry", resource.id)
        entry = {
            "uid": entry_uid,
            "attrs": {
                "source_agency": _ref("Agency", resource.source_agency_id),
                "category": resource.category,
                "case": {"__entity": case_uid},
            },
            "parents": [],
        }
        source = _agency(resource.source_agency_id, resource.source_agency_kind)
        return entry_uid, [entry, source, *case_entities]
    if isinstance(resource, ActionFacts):
        case_uid, case_entities = _case_entities(resource.case)
        action_uid = _uid("CaseAction", resource.id)
        action = {
            "uid": action_uid,
            "attrs": {
                "source_agency": _ref("Agency", resource.source_agency_id),
                "responsible_agency": _ref("Agency", resource.responsible_agency_id),
                "case": {"__entity": case_uid},
            },
            "parents": [],
        }
        return action_uid, [
            action,
            _agency(resource.source_agency_id, resource.source_agency_kind),
            _agency(resource.responsible_agency_id, resource.responsible_agency_kind),
            *case_entities,
        ]
    if isinstance(resource, GrantFacts):
        case_uid, case_entities = _case_entities(resource.case)
        grant_uid = _uid("EmergencyGrant", resource.id)
        grant = {
            "uid": grant_uid,
            "attrs": {
                "agency": _ref("Agency", resource.agency_id),
                "grantee": _ref("User", resource.grantee_id),
                "case": {"__entity": case_uid},
            },
            "parents": [],
        }
        return grant_uid, [grant, *_agencies([resource.agency_id]), *case_entities]
    case_uid, case_entities = _case_entities(resource)
    return case_uid, list(case_entities)


def _administration_entities(
    resource: AgencyFacts | AccountFacts | AuditRecordFacts | AreaFacts | HoldFacts,
) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """An agency, an account as administered, an audit record as reviewed, a legal hold as
    decided, or a lägesbild area (with the acting agency's kind and municipality, which its
    rules compare)."""
    if isinstance(resource, HoldFacts):
        uid = _uid("LegalHold", resource.id)
        hold = {
            "uid": uid,
            "attrs": {
                "agency": _ref("Agency", resource.agency_id),
                "requested_by": _ref("User", resource.requested_by),
            },
            "parents": [],
        }
        return uid, [hold, *_agencies([resource.agency_id])]
    if isinstance(resource, AreaFacts):
        uid = _uid("Area", resource.id)
        agency: dict[str, Any] = {"kind": resource.actor_agency_kind}
        if resource.actor_agency_municipality is not None:
            agency["municipality"] = resource.actor_agency_municipality
        return uid, [
            {"uid": uid, "attrs": {"municipality": resource.municipality}, "parents": []},
            {"uid": _uid("Agency", resource.actor_agency_id), "attrs": agency, "parents": []},
        ]
    if isinstance(resource, AgencyFacts):
        uid = _uid("Agency", resource.id)
        return uid, [{"uid": uid, "attrs": {"kind": resource.kind}, "parents": []}]
    if isinstance(resource, AccountFacts):
        uid = _uid("Account", resource.id)
        account = {
            "uid": uid,
            "attrs": {
                "agency": _ref("Agency", resource.agency_id),
                "roles": sorted(resource.roles),
            },
            "parents": [],
        }
        return uid, [account, *_agencies([resource.agency_id])]
    uid = _uid("AuditRecord", str(resource.seq))
    record = {
        "uid": uid,
        "attrs": {
            "actor": {"__entity": _uid("User", resource.actor_user_id or NOBODY)},
            "about": {"__entity": _uid("User", resource.about_user_id or NOBODY)},
        },
        "parents": [],
    }
    return uid, [record]


@functools.lru_cache(maxsize=1024)
def _case_entities(resource: CaseFacts) -> tuple[dict[str, str], tuple[dict[str, Any], ...]]:
    """The case, its individual and agencies as entities. Kept by the facts themselves
    (frozen): a page's items all carry their case's facts, and building them anew for
    each item was a fifth of a page's decision (docs/performance.md). The entities are
    read, never changed, by every caller."""
    individual = resource.individual
    agencies = {
        resource.lead_agency_id,
        *resource.participant_agency_ids,
        individual.registering_agency_id,
        *individual.case_agency_ids,
    }
    case_uid = _uid("Case", resource.id)
    case = {
        "uid": case_uid,
        "attrs": {
            "lead_agency": _ref("Agency", resource.lead_agency_id),
            "participants": [
                _ref("Agency", a) for a in sorted(resource.participant_agency_ids, key=str)
            ],
            "individual": _ref("Individual", individual.id),
            "status": resource.status,
        },
        "parents": [],
    }
    return case_uid, (case, _individual_entity(individual), *_agencies(agencies))

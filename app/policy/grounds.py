"""Loads what a read may rest on: the individual's active consents and the reader's
unexpired emergency grants. Only these few grants go to the decision point."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import CompoundSelect, Select, bindparam, literal, null, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.actor import Actor
from app.cases.models import Case
from app.consents.models import Consent, ConsentAgency, ConsentCategory
from app.db import rows_of
from app.emergency.models import EmergencyGrant as GrantRow
from app.emergency.models import EmergencyGrantCategory
from app.policy import get_engine
from app.policy.entities import ConsentGrant, EmergencyGrant, Grounds
from app.policy.filters import consent_active, grant_live


def towards_of(legal_basis: str) -> list[str]:
    """The agency kinds whose information ``legal_basis`` can open (none if unknown)."""
    basis = get_engine().reference.legal_bases.get(legal_basis)
    return [kind.value for kind in basis.towards] if basis else []


# Built once (a read asks them every time; building costs more than running them). One
# statement for both kinds of ground: a row per consent, named agency and covered category,
# and a row per grant and category (a few rows for a person).
_CONSENT_ROWS = (
    select(
        literal("consent").label("ground"),
        Consent.id,
        ConsentAgency.agency_id,
        ConsentCategory.category,
        null().label("legal_basis"),
    )
    .outerjoin(ConsentAgency, ConsentAgency.consent_id == Consent.id)
    .outerjoin(ConsentCategory, ConsentCategory.consent_id == Consent.id)
    .where(Consent.individual_id == bindparam("individual_id"), consent_active(bindparam("now")))
)
_GRANT_ROWS = (
    select(
        literal("grant"),
        GrantRow.id,
        null(),
        EmergencyGrantCategory.category,
        GrantRow.legal_basis,
    )
    .join(EmergencyGrantCategory, EmergencyGrantCategory.grant_id == GrantRow.id)
    .where(grant_live(bindparam("user_id"), bindparam("agency_id"), bindparam("now")))
)
# The rows for one case (``case_id``), and to be asked with other rows in one statement
# (app.individuals.service.facts_and_grounds): a row is (ground, id, agency id, category,
# legal basis); the parameters are :func:`grounds_params`'.
ROWS_FOR_CASE: tuple[Select[*tuple[Any, ...]], ...] = (
    _CONSENT_ROWS,
    _GRANT_ROWS.where(GrantRow.case_id == bindparam("case_id")),
)
_GROUNDS_FOR_CASE: CompoundSelect[Any] = union_all(*ROWS_FOR_CASE)
_GROUNDS: CompoundSelect[Any] = union_all(
    _CONSENT_ROWS,
    _GRANT_ROWS.where(
        GrantRow.case_id.in_(
            select(Case.id).where(Case.individual_id == bindparam("individual_id"))
        )
    ),
)


def grounds_params(
    actor: Actor, *, individual_id: uuid.UUID, case_id: uuid.UUID | None, now: datetime
) -> dict[str, Any]:
    """The parameters of the grounds' rows."""
    params = {
        "individual_id": individual_id,
        "user_id": actor.id,
        "agency_id": actor.agency_id,
        "now": now,
    }
    return params if case_id is None else params | {"case_id": case_id}


async def grounds_for(
    session: AsyncSession,
    actor: Actor,
    *,
    individual_id: uuid.UUID,
    case_id: uuid.UUID | None,
    now: datetime,
) -> Grounds:
    """Consents of the individual that apply now (app.policy.filters.consent_active); the
    actor's live grants (app.policy.filters.grant_live) for ``case_id`` (or, with ``None``,
    for any case of the individual)."""
    params = grounds_params(actor, individual_id=individual_id, case_id=case_id, now=now)
    statement = _GROUNDS if case_id is None else _GROUNDS_FOR_CASE
    rows = await rows_of(session, statement, params)
    return grounds_from(rows)


def grounds_from(rows: Sequence[Sequence[Any]]) -> Grounds:
    """The grounds in the rows of :data:`ROWS_FOR_CASE` (or of the same for any case)."""
    agencies: dict[uuid.UUID, set[uuid.UUID]] = {}
    categories: dict[uuid.UUID, set[str]] = {}
    grants: dict[uuid.UUID, tuple[str, set[str]]] = {}
    for ground, ground_id, agency_id, category, legal_basis in rows:
        if ground == "grant":
            grants.setdefault(ground_id, (legal_basis, set()))[1].add(category)
            continue
        named = agencies.setdefault(ground_id, set())
        covered = categories.setdefault(ground_id, set())
        if agency_id is not None:
            named.add(agency_id)
        if category is not None:
            covered.add(category)
    return Grounds(
        consents=tuple(
            ConsentGrant(
                id=c, agency_ids=frozenset(agencies[c]), categories=frozenset(categories[c])
            )
            for c in sorted(agencies, key=str)
        ),
        grants=tuple(
            EmergencyGrant(
                id=g,
                legal_basis=basis,
                categories=frozenset(cats),
                towards=frozenset(towards_of(basis)),
            )
            for g, (basis, cats) in sorted(grants.items(), key=lambda kv: str(kv[0]))
        ),
    )

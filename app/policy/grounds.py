"""Loads what a read may rest on: the individual's active consents and the reader's
unexpired emergency grants. Only these few grants go to the decision point."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.actor import Actor
from app.cases.models import Case
from app.consents.models import Consent, ConsentAgency, ConsentCategory
from app.emergency.models import EmergencyGrant as GrantRow
from app.emergency.models import EmergencyGrantCategory
from app.policy import get_engine
from app.policy.entities import ConsentGrant, EmergencyGrant, Grounds
from app.policy.filters import consent_active


def towards_of(legal_basis: str) -> list[str]:
    """The agency kinds whose information ``legal_basis`` can open (none if unknown)."""
    basis = get_engine().reference.legal_bases.get(legal_basis)
    return [kind.value for kind in basis.towards] if basis else []


# Built once (a read asks them every time; building costs more than running them).
_CONSENTS = (
    select(Consent.id, ConsentAgency.agency_id, ConsentCategory.category)
    .outerjoin(ConsentAgency, ConsentAgency.consent_id == Consent.id)
    .outerjoin(ConsentCategory, ConsentCategory.consent_id == Consent.id)
    .where(Consent.individual_id == bindparam("individual_id"), consent_active(bindparam("now")))
)
_GRANT_ROWS = (
    select(GrantRow.id, GrantRow.legal_basis, EmergencyGrantCategory.category)
    .join(EmergencyGrantCategory, EmergencyGrantCategory.grant_id == GrantRow.id)
    .where(GrantRow.user_id == bindparam("user_id"), GrantRow.expires_at > bindparam("now"))
)
_GRANTS_FOR_CASE = _GRANT_ROWS.where(GrantRow.case_id == bindparam("case_id"))
_GRANTS = _GRANT_ROWS.where(
    GrantRow.case_id.in_(select(Case.id).where(Case.individual_id == bindparam("individual_id")))
)


async def grounds_for(
    session: AsyncSession,
    actor: Actor,
    *,
    individual_id: uuid.UUID,
    case_id: uuid.UUID | None,
    now: datetime,
) -> Grounds:
    """Active consents of the individual; the actor's unexpired grants for ``case_id``
    (or, with ``None``, for any case of the individual)."""
    # One row per consent, named agency and covered category (a few rows for a person).
    agencies: dict[uuid.UUID, set[uuid.UUID]] = {}
    categories: dict[uuid.UUID, set[str]] = {}
    for consent_id, agency_id, category in await session.execute(
        _CONSENTS, {"individual_id": individual_id, "now": now}
    ):
        named = agencies.setdefault(consent_id, set())
        covered = categories.setdefault(consent_id, set())
        if agency_id is not None:
            named.add(agency_id)
        if category is not None:
            covered.add(category)
    if case_id is not None:
        grant_rows = await session.execute(
            _GRANTS_FOR_CASE, {"user_id": actor.id, "now": now, "case_id": case_id}
        )
    else:
        grant_rows = await session.execute(
            _GRANTS, {"user_id": actor.id, "now": now, "individual_id": individual_id}
        )
    grants: dict[uuid.UUID, tuple[str, set[str]]] = {}
    for grant_id, legal_basis, category in grant_rows:
        grants.setdefault(grant_id, (legal_basis, set()))[1].add(category)
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

"""Emergency access (break-the-glass): a participating agency's user invokes a legal basis
from policies/legal_bases.yaml, with a written reason, for a limited time. The grant and
every read under it are audited with the legal basis and flagged for review."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.agencies import service as agency_service
from app.audit import writer as audit
from app.auth.actor import Actor
from app.cases import service as case_service
from app.emergency.models import EmergencyGrant, EmergencyGrantCategory
from app.emergency.schemas import EmergencyAccessCreate, EmergencyAccessRead
from app.errors import ValidationFailed
from app.policy import get_engine
from app.policy.engine import Action


async def request_access(
    session: AsyncSession, actor: Actor, *, case_id: uuid.UUID, data: EmergencyAccessCreate
) -> EmergencyAccessRead:
    """422 for an unknown basis, a basis not open to the caller's agency kind, or
    categories the basis does not open; default categories: all the basis opens."""
    case, _, decision = await case_service.load_case(
        session, actor, case_id, action=Action.EMERGENCY_REQUEST, audit_action="emergency.grant"
    )
    basis = get_engine().reference.legal_bases.get(data.legal_basis)
    if basis is None:
        raise ValidationFailed.for_field("body.legal_basis", "Unknown legal basis.", "unknown")
    kind = await agency_service.kind_of(session, actor.agency_id)
    if kind not in {k.value for k in basis.used_by}:
        raise ValidationFailed.for_field(
            "body.legal_basis", "This legal basis is not open to your agency.", "not_allowed"
        )
    categories = set(data.categories or basis.categories)
    if not categories <= set(basis.categories):
        raise ValidationFailed.for_field(
            "body.categories", "The legal basis does not open these categories.", "not_allowed"
        )
    now = datetime.now(UTC)
    grant = EmergencyGrant(
        id=uuid.uuid4(),
        case_id=case.id,
        user_id=actor.id,
        agency_id=actor.agency_id,
        legal_basis=basis.code,
        reason=data.reason,
        created_at=now,
        expires_at=now + timedelta(hours=basis.max_duration_hours),
    )
    session.add(grant)
    await session.flush()
    session.add_all(EmergencyGrantCategory(grant_id=grant.id, category=c) for c in categories)
    await session.flush()
    await audit.append(
        session,
        actor.record(
            "emergency.grant",
            resource_type="emergency_grant",
            resource_id=str(grant.id),
            case_id=case.id,
            individual_id=case.individual_id,
            basis="emergency_access",
            legal_basis=basis.code,
            policy_id=decision.policy_id,
            reason=data.reason,
            flags=["emergency_access"],
        ),
    )
    return EmergencyAccessRead(
        id=grant.id,
        case_id=case.id,
        legal_basis=basis.code,
        categories=sorted(categories),
        expires_at=grant.expires_at,
    )
